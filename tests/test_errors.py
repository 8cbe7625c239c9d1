"""Bad input: one clear error, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from helpers import assert_clean_error, serve
from pkgfactory import Dist, build_wheel, write_simple_index


def _siblings(path: Path) -> list[str]:
    """Everything next to ``path`` that is not ``path``: temporaries left behind would show here."""
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name and ".offpkg-tmp" in p.name)


@pytest.fixture
def built(index, tmp_path, env, offpkg) -> Path:
    out = tmp_path / "good"
    proc = offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out)], env)
    assert proc.returncode == 0, proc.stderr
    return out


def test_unknown_package(index, tmp_path, env, offpkg) -> None:
    out = tmp_path / "b"
    proc = offpkg(["bundle", "doesnotexist", "-i", index.url, "-o", str(out)], env)
    assert_clean_error(proc, 3, "unknown package 'doesnotexist'")
    assert not out.exists() and not _siblings(out)


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_unsatisfiable_pins(index, tmp_path, env, offpkg, backend) -> None:
    proc = offpkg(["bundle", "alpha", "needsoldgamma", "-i", index.url, "-o", str(tmp_path / "b"), "--backend", backend], env)
    assert_clean_error(proc, 4, "cannot resolve", "gamma")


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_no_wheel_for_target(index, tmp_path, env, offpkg, backend) -> None:
    proc = offpkg(["bundle", "nowheel", "-i", index.url, "-o", str(tmp_path / "b"), "--backend", backend], env)
    assert_clean_error(proc, 3, "no wheel of nowheel fits the target", "tags tried", "win_amd64")
    assert not (tmp_path / "b").exists()


def test_requirements_file_errors(index, tmp_path, env, offpkg) -> None:
    missing = offpkg(["bundle", "-r", str(tmp_path / "nope.txt"), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert_clean_error(missing, 3, "nope.txt", "does not exist")
    bad = tmp_path / "bad.txt"
    bad.write_text("alpha\nthis is not ! a requirement\n")
    proc = offpkg(["bundle", "-r", str(bad), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert_clean_error(proc, 3, "bad.txt:2", "not a valid requirement")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    proc = offpkg(["bundle", "-r", str(binary), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert_clean_error(proc, 3, "bin.txt")
    editable = tmp_path / "e.txt"
    editable.write_text("-e ./src/mypkg\n")
    proc = offpkg(["bundle", "-r", str(editable), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert_clean_error(proc, 3, "e.txt:1", "editable")
    url = tmp_path / "u.txt"
    url.write_text("mypkg @ file:///tmp/mypkg\n")
    proc = offpkg(["bundle", "-r", str(url), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert_clean_error(proc, 3, "u.txt:1", "does not exist")
    assert not (tmp_path / "b").exists()


def test_requirements_file_with_hashes_and_includes(index, tmp_path, env, offpkg) -> None:
    (tmp_path / "base.txt").write_text("gamma==2.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    (tmp_path / "r.txt").write_text("# comment\n-r base.txt\nalpha  # trailing\n--index-url http://ignored\n")
    proc = offpkg(["bundle", "-r", str(tmp_path / "r.txt"), "-i", index.url, "-o", str(tmp_path / "b"), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"] == 3


def test_output_exists_needs_force(built, index, env, offpkg) -> None:
    before = (built / "offpkg.json").read_text()
    proc = offpkg(["bundle", "gamma", "-i", index.url, "-o", str(built)], env)
    assert_clean_error(proc, 9, "already exists", "--force")
    assert (built / "offpkg.json").read_text() == before
    forced = offpkg(["bundle", "gamma", "-i", index.url, "-o", str(built), "--force"], env)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((built / "offpkg.json").read_text())["requirements"] == ["gamma"]
    assert not _siblings(built)


def test_corrupted_bundle_lists_every_problem(built, tmp_path, env, offpkg) -> None:
    wheel = next((built / "wheels").glob("alpha-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[10] ^= 0xFF
    wheel.write_bytes(bytes(data))
    (built / "wheels" / "extra-1.0-py3-none-any.whl").write_bytes(b"not listed")
    (next((built / "wheels").glob("gamma-*.whl"))).unlink()
    proc = offpkg(["verify", str(built)], env)
    assert_clean_error(proc, 1, "alpha-1.0-py3-none-any.whl: sha256", "extra-1.0-py3-none-any.whl: present but not listed",
                       "gamma-2.0-py3-none-any.whl: listed in the manifest but missing")
    js = offpkg(["verify", str(built), "--json"], env)
    assert js.returncode == 1 and len(json.loads(js.stdout)["problems"]) >= 3
    # install refuses before creating anything
    venv = tmp_path / "v"
    inst = offpkg(["install", str(built), "--venv", str(venv)], env)
    assert_clean_error(inst, 1, "failed verification", "nothing was installed")
    assert not venv.exists()
    # install.sh refuses too (sha256sum -c first)
    import subprocess

    sh = subprocess.run(["sh", str(built / "install.sh"), str(venv)], env=env, capture_output=True, text=True)
    assert sh.returncode == 1 and not venv.exists()


def test_truncated_and_non_bundles(built, tmp_path, env, offpkg) -> None:
    from offpkg.archive import write_tar

    tar = tmp_path / "b.tar"
    write_tar(built, tar)
    data = tar.read_bytes()
    (tmp_path / "trunc.tar").write_bytes(data[: len(data) // 2])
    proc = offpkg(["verify", str(tmp_path / "trunc.tar")], env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "error:" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = offpkg(["verify", str(tmp_path / "empty")], env)
    assert_clean_error(proc, 3, "not an offpkg bundle")
    proc = offpkg(["verify", str(tmp_path / "missing")], env)
    assert_clean_error(proc, 3, "does not exist")
    (built / "offpkg.json").write_text("{garbage")
    proc = offpkg(["verify", str(built)], env)
    assert_clean_error(proc, 3, "offpkg.json", "not valid JSON")


def test_manifest_naming_outside_path_is_rejected_not_followed(built, tmp_path, env, offpkg) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    m = json.loads((built / "offpkg.json").read_text())
    m["files"].append({"path": "../secret.txt", "sha256": "0" * 64, "size": 7})
    (built / "offpkg.json").write_text(json.dumps(m))
    proc = offpkg(["verify", str(built)], env)
    assert_clean_error(proc, 3, "../secret.txt")


def test_failed_install_removes_the_venv(tmp_path, env, offpkg, offline) -> None:
    """A wheel that verifies (its hash is right) but cannot be installed: the venv is removed."""
    files = tmp_path / "files"
    build_wheel(Dist("gamma", "2.0"), files)
    good = build_wheel(Dist("badinstall", "1.0"), files)
    # Drop the WHEEL file: metadata still resolves, installers refuse the archive.
    tmpw = good.with_suffix(".tmp")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmpw, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("/WHEEL"):
                dst.writestr(item, src.read(item))
    os.replace(tmpw, good)
    root = tmp_path / "idx"
    shutil.copytree(files, root / "files")
    write_simple_index(root / "files", root)
    server, base = serve(root)
    try:
        out = tmp_path / "b"
        proc = offpkg(["bundle", "badinstall", "-i", f"{base}/simple", "-o", str(out), "--no-tools", "--backend", "uv"], env)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.shutdown()
    venv = tmp_path / "v"
    inst = offpkg(["install", str(out), "--venv", str(venv), "--backend", "pip"], env, offline=offline)
    assert_clean_error(inst, 7, "installing into", "venv was removed")
    assert not venv.exists()


def test_bad_python_for_install(built, tmp_path, env, offpkg) -> None:
    proc = offpkg(["install", str(built), "--venv", str(tmp_path / "v"), "--python", str(tmp_path / "nopython")], env)
    assert_clean_error(proc, 3, "nopython")
    assert not (tmp_path / "v").exists()


def test_usage_errors_exit_2(env, offpkg, tmp_path) -> None:
    proc = offpkg(["bundle", "alpha"], env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--output" in proc.stderr
    proc = offpkg(["bundle", "alpha", "-o", str(tmp_path / "b"), "--python-version", "three"], env)
    assert_clean_error(proc, 2, "three")
