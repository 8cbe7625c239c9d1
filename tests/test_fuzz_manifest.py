"""Property-based fuzzing (hypothesis) of the manifest reader and of verify_bundle.

Arbitrary text and bytes, arbitrary JSON structures, and mutations of a real
manifest (values replaced, keys dropped, hostile paths such as ``../sentinel``,
absurd sizes) must give a Manifest, an OffpkgError (ManifestError) or a
VerifyReport with problems: never another exception, and never a file opened
outside the bundle directory (checked with a Python audit hook on ``open``,
with a sentinel file beside the bundle that a hostile manifest names).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault_servers import FaultServer, counting, figure
from offpkg.backends import Sources, get_backend
from offpkg.bundle import BundleOptions, build_bundle
from offpkg.net.cache import Cache
from offpkg.errors import ManifestError, OffpkgError
from offpkg.manifest import Manifest
from offpkg.target import Target
from offpkg.verify import VerifyReport, verify_bundle
from pkgfactory import Dist, build_wheel, write_simple_index

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

HOSTILE_PATHS = ["../sentinel", "../../etc/passwd", "/etc/passwd", "wheels/../../sentinel", "wheels/./x.whl",
                 "C:\\x", "c:/x", "a\x00b", "", ".", "wheels//x.whl", "x/", "\u0041\u030a.whl", "a" * 2000,
                 "..", "~/.ssh/id_rsa", "wheels\\..\\..\\sentinel", "\nwheels/x", "SHA256SUMS", "offpkg.json"]

json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
             | st.sampled_from(HOSTILE_PATHS))
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=5)
                          | st.dictionaries(st.text(max_size=12), kids, max_size=5), max_leaves=25)


@pytest.fixture(scope="module", autouse=True)
def _tally() -> None:
    with counting("test_fuzz_manifest"):
        yield


# ------------------------------------------------------------------ a real bundle to mutate

@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzidx")
    build_wheel(Dist("alpha", "1.0", ["beta"]), root / "files")
    build_wheel(Dist("beta", "1.0"), root / "files")
    write_simple_index(root / "files", root)
    out = tmp_path_factory.mktemp("fuzzbundle") / "bundle"
    with FaultServer(root) as srv:
        opts = BundleOptions(requirements=["alpha"], targets=[Target.host()], sources=Sources((srv.url,)),
                             backend=get_backend("uv"), output=out, cache=Cache(out.parent / "cache"), tools=False)
        build_bundle(opts)
    report = verify_bundle(out)
    assert report.ok, report.problems  # the baseline: every mutation starts from a bundle that verifies
    return out


@pytest.fixture(scope="module")
def valid(real_bundle: Path) -> dict[str, Any]:
    return json.loads((real_bundle / "offpkg.json").read_text())


# ------------------------------------------------------------------ open() outside the bundle

class OpenWatch:
    """Records files opened under ``root`` but outside ``allowed`` (an audit hook cannot be removed: it is gated)."""

    def __init__(self) -> None:
        self.active = False
        self.root: Path | None = None
        self.allowed: Path | None = None
        self.outside: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event != "open":  # every thread: verify hashes in a pool
            return
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        try:
            p = Path(os.fsdecode(path)).resolve()
        except (OSError, ValueError):
            return
        assert self.root is not None and self.allowed is not None
        if p.is_relative_to(self.root) and not p.is_relative_to(self.allowed):
            self.outside.append(str(p))

    def watch(self, root: Path, allowed: Path) -> OpenWatch:
        self.root, self.allowed, self.outside = root.resolve(), allowed.resolve(), []
        return self

    def __enter__(self) -> OpenWatch:
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False


WATCH = OpenWatch()


# ------------------------------------------------------------------ mutations

def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], skip: tuple[str, ...] = ()) -> Any:
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p and p[0] not in skip]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        how = draw(st.sampled_from(["replace", "delete", "hostile_path", "size", "dup"]))
        if how == "delete" and isinstance(parent, dict):
            del parent[key]
        elif how == "hostile_path":
            parent[key] = draw(st.sampled_from(HOSTILE_PATHS))
        elif how == "size":
            parent[key] = draw(st.sampled_from([-1, 2**63, 2**40 + 1, 1.5, "12", True, 10**100]))
        elif how == "dup" and isinstance(parent, list) and parent:
            parent.append(copy.deepcopy(parent[0]))
        else:
            parent[key] = draw(json_value)
    return doc


def _load(doc: Any) -> Manifest | None:
    try:
        return Manifest.from_json(doc)
    except OffpkgError:
        return None


def _inside(m: Manifest) -> None:
    """Every path a Manifest accepted stays inside the bundle."""
    for path in m.all_entries():
        parts = path.split("/")
        assert not path.startswith("/") and ".." not in parts and "" not in parts and "\\" not in path, path


# ------------------------------------------------------------------ properties

@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b)))
def test_loads_arbitrary_text(text: str | bytes) -> None:
    figure("fuzz_examples")
    try:
        m = Manifest.loads(text)
    except OffpkgError:
        return
    _inside(m)


@FUZZ
@given(json_value)
def test_from_json_arbitrary_structures(doc: Any) -> None:
    figure("fuzz_examples")
    m = _load(doc)
    if m is not None:
        _inside(m)
    # Through the text reader too: same outcome, no other exception.
    try:
        Manifest.loads(json.dumps(doc))
    except OffpkgError:
        pass


@FUZZ
@given(st.data())
def test_mutated_manifests(valid: dict[str, Any], data: st.DataObject) -> None:
    figure("fuzz_examples")
    doc = data.draw(mutated(valid))
    m = _load(doc)
    if m is not None:
        _inside(m)
        assert Manifest.from_json(m.to_json()) == m  # what is accepted round-trips


@pytest.mark.parametrize("field", ["files", "packages"])
@pytest.mark.parametrize("path", ["../sentinel", "/etc/passwd", "wheels/../../sentinel", "..", "C:\\sentinel"])
def test_paths_outside_the_bundle_are_rejected(valid: dict[str, Any], field: str, path: str) -> None:
    doc = copy.deepcopy(valid)
    entry = doc[field][0]
    entry["path"] = path
    if field == "packages":
        entry["filename"] = path.rsplit("/", 1)[-1] or "x.whl"
    with pytest.raises(ManifestError):
        Manifest.from_json(doc)


# Every top-level key is mutated, targets included (Target.from_probe validates their types).
SKIP_IN_VERIFY: tuple[str, ...] = ()


@FUZZ
@given(st.data())
def test_verify_bundle_with_a_fuzzed_manifest(real_bundle: Path, valid: dict[str, Any], tmp_path_factory,
                                              data: st.DataObject) -> None:
    figure("fuzz_examples")
    doc = data.draw(mutated(valid, skip=SKIP_IN_VERIFY))
    base = tmp_path_factory.mktemp("v", numbered=True)
    (base / "sentinel").write_text("outside the bundle: never to be read")
    bundle = base / "bundle"
    shutil.copytree(real_bundle, bundle)
    (bundle / "offpkg.json").write_text(json.dumps(doc))
    try:
        with WATCH.watch(base, bundle):
            try:
                report = verify_bundle(bundle)
            except OffpkgError:
                report = None
        figure("opened_outside_bundle", len(WATCH.outside))
        assert WATCH.outside == []
        if report is not None:
            assert isinstance(report, VerifyReport)
            if doc != valid:
                assert not report.ok or Manifest.from_json(doc) == Manifest.from_json(valid), report.problems
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_sentinel_manifest_is_rejected_before_any_read(real_bundle: Path, valid: dict[str, Any],
                                                       tmp_path: Path) -> None:
    (tmp_path / "sentinel").write_text("secret")
    bundle = tmp_path / "bundle"
    shutil.copytree(real_bundle, bundle)
    doc = copy.deepcopy(valid)
    doc["files"][0]["path"] = "../sentinel"
    (bundle / "offpkg.json").write_text(json.dumps(doc))
    with WATCH.watch(tmp_path, bundle), pytest.raises(ManifestError) as ei:
        verify_bundle(bundle)
    assert "../sentinel" in ei.value.message and WATCH.outside == []
    # The watch itself works: reading the sentinel is seen.
    with WATCH.watch(tmp_path, bundle):
        (tmp_path / "sentinel").read_text()
    assert WATCH.outside == [str((tmp_path / "sentinel").resolve())]


@pytest.mark.parametrize("key,value", [("tags", [1]), ("tags", ["x"]), ("markers", [["a"]])])
def test_hostile_target_in_manifest_is_an_error_not_a_crash(real_bundle: Path, valid: dict[str, Any],
                                                            tmp_path: Path, key: str, value: Any) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(real_bundle, bundle)
    doc = copy.deepcopy(valid)
    doc["targets"][0][key] = value
    (bundle / "offpkg.json").write_text(json.dumps(doc))
    try:
        report = verify_bundle(bundle)
    except OffpkgError:
        return
    assert not report.ok
