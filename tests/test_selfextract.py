"""Self-extracting bundles (``-o stack.sh``) and reproducible bundle archives.

The .sh is run with plain ``sh`` under ``unshare -n`` with a python that has no
offpkg importable, like a fresh air-gapped host.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg
from offpkg.archive import payload_offset
from offpkg.selfextract import build_header, check_payload, read_header, write_self_extracting


def _base_env(base: Path, uv_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "PYTHONPATH"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(uv_cache), CI="1", NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def sfx(tmp_path_factory, index, session_uv_cache) -> Path:
    """One self-extracting bundle of alpha (-> beta -> gamma), built once for the module."""
    base = tmp_path_factory.mktemp("sfx")
    out = base / "stack.sh"
    proc = run_offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out), "--json"], _base_env(base, session_uv_cache))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == str(out)
    return out


def _sh(args: list[str], env: dict[str, str], offline: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # No offpkg on the path: PYTHONPATH is gone and the header runs python with -I.
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    return subprocess.run([*offline, "sh", *args], env=env, capture_output=True, text=True, timeout=300)


def test_header_and_marker_agree(sfx: Path) -> None:
    info = read_header(sfx)
    assert info.offset == payload_offset(sfx)
    assert sfx.stat().st_size == info.offset + info.size
    assert check_payload(sfx) == []
    assert os.access(sfx, os.X_OK)
    head = sfx.read_bytes()[: info.offset]
    assert head.startswith(b"#!/bin/sh\n") and head.endswith(b"\n__OFFPKG_PAYLOAD_BELOW__\n")
    # The payload is a plain tar of the bundle.
    with open(sfx, "rb") as f:
        f.seek(info.offset)
        names = tarfile.open(fileobj=f, mode="r:").getnames()
    assert {"offpkg.json", "SHA256SUMS", "install.sh", "tools/bootstrap.py", "wheels/alpha-1.0-py3-none-any.whl"} <= set(names)


def test_runs_offline_without_offpkg(sfx: Path, tmp_path: Path, env: dict[str, str], offline) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(env, TMPDIR=str(tmpdir))
    venv = tmp_path / "opt" / "venvs" / "ml"
    proc = _sh([str(sfx), "--venv", str(venv)], env, offline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed 3 packages" in proc.stdout
    run = subprocess.run([str(venv / "bin/python"), "-c", "import alpha, beta, gamma; print(beta.__version__)"],
                         capture_output=True, text=True)
    assert run.stdout.strip() == "1.1", run.stderr
    assert json.loads((venv / "offpkg-receipt.json").read_text())["via"] in ("install.sh", "self-extracting")
    assert not (venv / ".offpkg-incomplete").exists()
    assert list(tmpdir.iterdir()) == []  # the unpacked copy is cleaned up


def test_help_and_verify_only(sfx: Path, tmp_path: Path, env: dict[str, str]) -> None:
    h = _sh([str(sfx), "--help"], env)
    assert h.returncode == 0 and "--venv DIR" in h.stdout and "--extract DIR" in h.stdout
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    v = _sh([str(sfx), "--verify-only"], dict(env, TMPDIR=str(tmpdir)))
    assert v.returncode == 0, v.stderr
    assert "bundle verified" in v.stdout
    assert list(tmpdir.iterdir()) == []


def test_extract_keeps_a_verified_bundle(sfx: Path, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    dest = tmp_path / "unpacked"
    proc = _sh([str(sfx), "--extract", str(dest)], env)
    assert proc.returncode == 0, proc.stderr
    assert "install.sh --venv DIR" in proc.stdout
    assert offpkg(["verify", str(dest)], env).returncode == 0
    # An existing, non-empty directory is never overwritten.
    again = _sh([str(sfx), "--extract", str(dest)], env)
    assert again.returncode == 9 and "already exists" in again.stderr
    missing = _sh([str(sfx), "--extract"], env)
    assert missing.returncode == 2 and "needs a directory" in missing.stderr


def test_offpkg_reads_the_sh_bundle(sfx: Path, env: dict[str, str], offpkg) -> None:
    ok = offpkg(["verify", str(sfx), "--json"], env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    info = offpkg(["inspect", str(sfx), "--json"], env)
    assert info.returncode == 0 and json.loads(info.stdout)["requirements"] == ["alpha"]


def _corrupt(src: Path, dst: Path, where: int) -> None:
    data = bytearray(src.read_bytes())
    data[where] ^= 0x01
    dst.write_bytes(bytes(data))


def test_corrupted_payload_is_refused(sfx: Path, tmp_path: Path, env: dict[str, str], offpkg, offline) -> None:
    info = read_header(sfx)
    # Flip one byte inside the alpha wheel's data.
    with open(sfx, "rb") as f:
        f.seek(info.offset)
        tar = tarfile.open(fileobj=f, mode="r:")
        member = tar.getmember("wheels/alpha-1.0-py3-none-any.whl")
    bad = tmp_path / "bad.sh"
    _corrupt(sfx, bad, member.offset_data + 10)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    venv = tmp_path / "v"
    proc = _sh([str(bad), "--venv", str(venv)], dict(env, TMPDIR=str(tmpdir)), offline)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "is corrupt" in proc.stderr and "nothing was installed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not venv.exists()
    assert list(tmpdir.iterdir()) == []
    assert check_payload(bad) and "payload sha256" in check_payload(bad)[0]
    # offpkg verify finds it too (the member's hash no longer matches the manifest).
    v = offpkg(["verify", str(bad)], env)
    assert_clean_error(v, 1, "alpha-1.0-py3-none-any.whl")
    # A truncated copy is refused before hashing.
    short = tmp_path / "short.sh"
    short.write_bytes(sfx.read_bytes()[:-1000])
    t = _sh([str(short), "--venv", str(venv)], env)
    assert t.returncode == 1 and "truncated" in t.stderr and not venv.exists()


def test_hostile_payload_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A payload whose sha256 matches its header but holds '..' or a link: nothing is written."""
    for bad_member in ("../escaped.txt", "link"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            ok = tarfile.TarInfo("install.sh")
            body = b"echo should-not-run\n"
            ok.size = len(body)
            tar.addfile(ok, io.BytesIO(body))
            ti = tarfile.TarInfo(bad_member)
            if bad_member == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(ti)
            else:
                ti.size = 3
                tar.addfile(ti, io.BytesIO(b"bad"))
        payload = buf.getvalue()
        sh = tmp_path / "hostile.sh"
        sh.write_bytes(build_header(len(payload), hashlib.sha256(payload).hexdigest()) + payload)
        dest = tmp_path / "x" / "dest"
        dest.parent.mkdir(exist_ok=True)
        proc = _sh([str(sh), "--extract", str(dest)], env)
        assert proc.returncode == 1 and "unsafe or corrupt member" in proc.stderr, proc.stderr
        assert "should-not-run" not in proc.stdout
        assert list(dest.parent.iterdir()) == [] and not (tmp_path / "x" / "escaped.txt").exists()


def test_write_self_extracting_direct(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "sub").mkdir(parents=True)
    (stage / "a.txt").write_text("a\n")
    (stage / "sub" / "b.sh").write_text("echo b\n")
    (stage / "sub" / "b.sh").chmod(0o755)
    out = tmp_path / "o.sh"
    info = write_self_extracting(stage, out, mtime=1700000000)
    assert info == read_header(out) and check_payload(out) == []
    # No temporary files are left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.sh", "stage"]
    with open(out, "rb") as f:
        f.seek(info.offset)
        tar = tarfile.open(fileobj=f, mode="r:")
        modes = {m.name: (m.mode, m.mtime, m.uid) for m in tar.getmembers()}
    assert modes["sub/b.sh"] == (0o755, 1700000000, 0) and modes["a.txt"] == (0o644, 1700000000, 0)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".sh", ".tar"])
def test_reproducible_builds(index, tmp_path: Path, env: dict[str, str], offpkg, suffix: str) -> None:
    """The same inputs and SOURCE_DATE_EPOCH, built at different times: byte-identical files."""
    env = dict(env, SOURCE_DATE_EPOCH="1700000000")
    outs = []
    for i in range(2):
        if i:
            time.sleep(1.1)  # a different second: wall-clock time must not leak into the file
        out = tmp_path / f"b{i}" / f"stack{suffix}"
        proc = offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out)], env)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    assert _sha(outs[0]) == _sha(outs[1])
    with tarfile.open(outs[0]) if suffix == ".tar" else _open_payload(outs[0]) as tar:
        m = json.loads(tar.extractfile("offpkg.json").read())
        assert m["created"] == "2023-11-14T22:13:20Z"
        assert {t.mtime for t in tar.getmembers()} == {1700000000}


def _open_payload(sh: Path) -> tarfile.TarFile:
    f = open(sh, "rb")  # noqa: SIM115 - closed with the TarFile
    f.seek(payload_offset(sh))
    return tarfile.open(fileobj=f, mode="r:")


def test_sh_output_needs_force_to_replace(index, sfx: Path, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    out = tmp_path / "stack.sh"
    shutil.copy(sfx, out)
    proc = offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out)], env)
    assert_clean_error(proc, 9, "already exists")
    assert _sha(out) == _sha(sfx)


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` on this machine (PATH or pyenv), or None."""
    import glob

    cands = [shutil.which(f"python{version}") or ""]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    cands += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    for c in cands:
        if not c:
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return c
    return None


@pytest.mark.parametrize("version", ["3.6", "3.9"])
def test_header_works_with_old_pythons(sfx: Path, tmp_path: Path, env: dict[str, str], version: str) -> None:
    """Old target hosts: the header's unpacker (and the bundle's verification) run on python 3.6+."""
    py = find_python(version)
    if py is None:
        pytest.skip(f"no python{version} on this machine")
    dest = tmp_path / "x"
    proc = _sh([str(sfx), "--extract", str(dest), "--python", py], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bundle verified" in proc.stdout and (dest / "offpkg.json").is_file()
    # The bundle is for 3.11: installing with this python is refused by the bundle's bootstrap, cleanly.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    bad = _sh([str(sfx), "--venv", str(tmp_path / "v"), "--python", py], dict(env, TMPDIR=str(tmpdir)))
    assert bad.returncode == 6 and "does not fit" in bad.stderr, bad.stdout + bad.stderr
    assert not (tmp_path / "v").exists() and list(tmpdir.iterdir()) == []
