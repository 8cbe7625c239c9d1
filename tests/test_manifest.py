"""The manifest: validated on read, hostile paths rejected, never followed."""

from __future__ import annotations

import json

import pytest

from offpkg.errors import ManifestError
from offpkg.manifest import FORMAT, FileEntry, Manifest, Package
from offpkg.target import Target

SHA = "a" * 64
TARGET = Target.from_options("3.11", ["manylinux_2_28_x86_64"]).to_json()


def _doc(**over):
    d = {"format": FORMAT, "format_version": 1, "offpkg_version": "0.1.0", "created": "2026-01-01T00:00:00Z",
         "targets": [TARGET], "requirements": ["x"],
         "packages": [{"name": "x", "version": "1", "filename": "x-1-py3-none-any.whl",
                       "path": "wheels/x-1-py3-none-any.whl", "sha256": SHA, "size": 10}],
         "files": [{"path": "requirements.txt", "sha256": SHA, "size": 5}]}
    d.update(over)
    return d


def test_roundtrip() -> None:
    m = Manifest.from_json(_doc())
    again = Manifest.loads(m.dumps())
    assert again == m
    assert again.all_entries() == {"wheels/x-1-py3-none-any.whl": (SHA, 10), "requirements.txt": (SHA, 5)}


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "wheels/../../x", "C:/x", "a\\b", "a//b", "./a",
                                  "a/./b", "", "x\x00y", "e\u0301"])
def test_hostile_paths_are_rejected(path) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_json(_doc(files=[{"path": path, "sha256": SHA, "size": 1}]))


@pytest.mark.parametrize("entry,needle", [
    ({"path": "a", "sha256": "xyz", "size": 1}, "sha256"),
    ({"path": "a", "sha256": SHA, "size": -1}, "size"),
    ({"path": "a", "sha256": SHA, "size": 1 << 50}, "size"),
    ({"path": "a", "sha256": SHA, "size": True}, "size"),
    ({"path": "a", "sha256": SHA}, "missing"),
    ("notanobject", "object"),
])
def test_bad_entries(entry, needle) -> None:
    with pytest.raises(ManifestError, match=needle):
        Manifest.from_json(_doc(files=[entry]))


def test_duplicates_and_case_collisions_and_self_listing() -> None:
    f = {"path": "a", "sha256": SHA, "size": 1}
    with pytest.raises(ManifestError, match="twice"):
        Manifest.from_json(_doc(files=[f, f]))
    with pytest.raises(ManifestError, match="case"):
        Manifest.from_json(_doc(files=[f, dict(f, path="A")]))
    with pytest.raises(ManifestError, match="cannot cover"):
        Manifest.from_json(_doc(files=[dict(f, path="offpkg.json")]))


def test_sdists_never_carried_and_format_checks() -> None:
    with pytest.raises(ManifestError, match="sdists"):
        Package(name="x", version="1", filename="x-1.tar.gz", path="wheels/x-1.tar.gz", sha256=SHA, size=1)
    with pytest.raises(ManifestError, match="format"):
        Manifest.from_json(_doc(format="other"))
    with pytest.raises(ManifestError, match="newer"):
        Manifest.from_json(_doc(format_version=99))
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.loads(b"{truncated")
    with pytest.raises(ManifestError, match="target that does not exist"):
        d = _doc()
        d["packages"][0]["targets"] = [3]
        Manifest.from_json(d)


def test_frozen() -> None:
    e = FileEntry("a", SHA, 1)
    with pytest.raises(Exception):
        e.size = 2  # type: ignore[misc]
    assert json.loads(Manifest.from_json(_doc()).dumps())["format_version"] == 1


@pytest.mark.parametrize("over, needle", [
    ({"targets": [{}]}, r"manifest.targets\[0\]"),
    ({"targets": [dict(TARGET, tags=[])]}, "tags"),
    ({"verification": {"checks": [{}]}}, r"verification.checks\[0\]"),
    ({"verification": {"checks": "all good"}}, "verification.checks"),
])
def test_targets_and_verification_are_validated(over, needle) -> None:
    """inspect and serve read these fields: a malformed one is a ManifestError, not a crash later."""
    with pytest.raises(ManifestError, match=needle):
        Manifest.from_json(_doc(**over))
    ok = Manifest.from_json(_doc(verification={"verified": True, "checks": [{"name": "imports", "ok": True}]}))
    assert ok.verification["checks"][0]["ok"] is True


@pytest.mark.parametrize("filename", ["pip-notawheel.whl", "x-1-py3-none.whl", "x-notaversion!-py3-none-any.whl"])
def test_package_filename_must_be_a_wheel_name(filename) -> None:
    doc = _doc(packages=[{"name": "x", "version": "1", "filename": filename, "path": f"tools/{filename}",
                          "sha256": SHA, "size": 10, "role": "tool"}])
    with pytest.raises(ManifestError, match="not a valid wheel file name"):
        Manifest.from_json(doc)
