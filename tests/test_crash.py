"""Crash, rerun, concurrency and a full disk, with real processes.

- ``kill -9`` of ``offpkg bundle`` in the middle of a throttled download: nothing
  unverified under a final cache name, no bundle, nothing that looks complete;
  the rerun resumes the ``.part`` with HTTP Range and writes a bundle that verifies.
- Two ``offpkg bundle`` runs sharing one cache at the same time: both succeed,
  both verify, the shared file is downloaded once.
- A full disk (a 1 MiB tmpfs mounted in a private mount namespace): exit code 10,
  one clear "no space left" error, no traceback, no temporaries, no bundle and no
  venv that looks complete.
"""

from __future__ import annotations

import os
import re
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error
from fault_servers import Fault, FaultServer, counting, observe
from offpkg.net.cache import Cache
from offpkg.verify import verify_bundle
from pkgfactory import Dist, build_wheel, write_simple_index

HUGE = "huge-1.0-py3-none-any.whl"


@pytest.fixture(scope="module", autouse=True)
def _tally() -> None:
    with counting("test_crash"):
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crashidx")
    files = root / "files"
    build_wheel(Dist("alpha", "1.0", ["beta"]), files)
    build_wheel(Dist("beta", "1.0"), files)
    # A few MB of incompressible bytes: a download that takes seconds when throttled.
    build_wheel(Dist("huge", "1.0"), files, payload=random.Random(7).randbytes(3 << 20))
    write_simple_index(files, root)
    return root


def bundle_argv(url: str, out: Path, *reqs: str) -> list[str]:
    return [sys.executable, "-m", "offpkg", "bundle", *reqs, "-i", url, "-o", str(out), "--no-tools",
            "--backend", "uv"]


def offpkg_gets(srv: FaultServer, name: str) -> list:
    """offpkg's downloads of the file: GETs with no Range or an open-ended one (a resume), not the reads
    of its METADATA by a prefetch guess (``.metadata``, or a bounded or suffix Range of the wheel)."""
    return [h for h in srv.gets(name) if h.agent.startswith("offpkg/") and not h.path.endswith(".metadata")
            and (h.range is None or re.fullmatch(r"bytes=\d+-", h.range))]


def wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def parts(cache: Path) -> list[Path]:
    return list((cache / "files").glob("*/*/*.part")) if (cache / "files").is_dir() else []


# ------------------------------------------------------------------ kill -9 and rerun

def test_kill_9_mid_download_then_rerun(repo: Path, tmp_path: Path, env: dict[str, str]) -> None:
    cache = Path(env["OFFPKG_CACHE_DIR"])
    out = tmp_path / "out"
    with FaultServer(repo, [Fault("throttle", match=HUGE, rate=1 << 20, agent="offpkg/")]) as srv:
        proc = subprocess.Popen(bundle_argv(srv.url, out, "alpha", "huge"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(p.stat().st_size > 512 << 10 for p in parts(cache)), 60, "a half-done download")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        (part,) = parts(cache)
        killed_at = part.stat().st_size
        assert 0 < killed_at < (repo / "files" / HUGE).stat().st_size

        # After the crash: every file under a final cache name hashes to its entry's sha256 ...
        assert Cache(cache).verify_all() == []
        # ... no bundle, and no temp sibling that looks complete (a SIGKILL leaves the
        # staging directory behind: a known limit, it never holds a manifest until the end).
        assert not out.exists()
        for tmp in tmp_path.glob(".out.offpkg-tmp-*"):
            assert not list(tmp.rglob("offpkg.json")), tmp

        # The rerun resumes the .part with Range and writes a bundle that verifies.
        rerun = observe(subprocess.run(bundle_argv(srv.url, out, "alpha", "huge"), env=env, capture_output=True,
                                       text=True, timeout=120))
        assert rerun.returncode == 0, rerun.stderr
        resumed = [h.range for h in offpkg_gets(srv, HUGE)][-1]
    assert resumed is not None and int(resumed[6:-1]) > 0  # bytes=N- with N kept from the killed run
    assert verify_bundle(out).ok
    assert parts(cache) == [] and Cache(cache).verify_all() == []


# ------------------------------------------------------------------ two runs, one cache

def test_concurrent_runs_share_one_cache(repo: Path, tmp_path: Path, env: dict[str, str]) -> None:
    with FaultServer(repo, [Fault("throttle", match=HUGE, rate=3 << 20, agent="offpkg/")]) as srv:
        procs = [subprocess.Popen(bundle_argv(srv.url, tmp_path / f"out{i}", "alpha", "huge"), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
        results = [p.communicate(timeout=180) for p in procs]
        for p, (o, err) in zip(procs, results):
            observe(subprocess.CompletedProcess(p.args, p.returncode, o, err))
            assert p.returncode == 0, err
        huge_gets = offpkg_gets(srv, HUGE)
    for i in range(2):
        report = verify_bundle(tmp_path / f"out{i}")
        assert report.ok, report.problems
    # The entry lock makes the second run wait and then take the verified file.
    assert len(huge_gets) == 1, huge_gets
    assert Cache(Path(env["OFFPKG_CACHE_DIR"])).verify_all() == []


# ------------------------------------------------------------------ disk full

def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _can_mount_tmpfs(),
                                 reason="mounting a tmpfs in a private mount namespace (unshare -m) is not permitted")


def in_tiny_tmpfs(mnt: Path, argv: list[str], env: dict[str, str], size: str = "1m"
                  ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``argv`` with a ``size`` tmpfs on ``mnt`` (private mount namespace); returns it and what was left there."""
    mnt.mkdir(parents=True, exist_ok=True)
    script = ('mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; shift 2; "$@" > "$OUTF" 2> "$ERRF"; '
              'rc=$?; find "$MNTDIR" -mindepth 1 > "$LEFT"; exit $rc')
    side = mnt.parent / f"{mnt.name}-io"
    side.mkdir(exist_ok=True)
    e = dict(env, OUTF=str(side / "out"), ERRF=str(side / "err"), LEFT=str(side / "left"), MNTDIR=str(mnt))
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", size, str(mnt), *argv], env=e,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode != 99, proc.stderr
    done = observe(subprocess.CompletedProcess(argv, proc.returncode, (side / "out").read_text(),
                                               (side / "err").read_text()))
    left = [str(Path(p).relative_to(mnt)) for p in (side / "left").read_text().split()]
    return done, left


@needs_tmpfs
def test_disk_full_in_the_cache(repo: Path, tmp_path: Path, env: dict[str, str]) -> None:
    mnt = tmp_path / "tiny"
    with FaultServer(repo) as srv:
        env = dict(env, OFFPKG_CACHE_DIR=str(mnt / "cache"))
        proc, left = in_tiny_tmpfs(mnt, bundle_argv(srv.url, mnt / "out", "huge"), env)
    assert_clean_error(proc, 10, "no space left on device", HUGE)
    assert not [p for p in left if p.endswith(".part") or "offpkg-tmp" in p or p.startswith("out")], left
    # Only empty entry directories and their lock files may remain.
    assert all(Path(p).name in ("cache", "files", ".lock") or len(Path(p).name) in (2, 64) for p in left), left


@needs_tmpfs
def test_disk_full_in_the_output(repo: Path, tmp_path: Path, env: dict[str, str]) -> None:
    mnt = tmp_path / "tiny"
    with FaultServer(repo) as srv:
        proc, left = in_tiny_tmpfs(mnt, bundle_argv(srv.url, mnt / "out.tar", "huge"), env)
    assert_clean_error(proc, 10, "no space left")
    assert left == [], left  # no bundle, no staging directory, no half-written archive
    assert Cache(Path(env["OFFPKG_CACHE_DIR"])).verify_all() == []


@pytest.fixture(scope="module")
def install_on_full_disk(repo: Path, tmp_path_factory: pytest.TempPathFactory, session_uv_cache: Path):
    """``offpkg install`` of a small bundle into a venv on a 4 MiB tmpfs (too small for a venv with pip)."""
    base = tmp_path_factory.mktemp("fullinstall")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), CI="1", NO_COLOR="1")
    with FaultServer(repo) as srv:
        made = observe(subprocess.run(bundle_argv(srv.url, base / "b", "alpha"), env=env, capture_output=True,
                                      text=True, timeout=120))
        assert made.returncode == 0, made.stderr
    argv = [sys.executable, "-m", "offpkg", "install", str(base / "b"), "--venv", str(base / "tiny" / "venv")]
    return in_tiny_tmpfs(base / "tiny", argv, env, size="4m")


@needs_tmpfs
def test_disk_full_during_install_leaves_no_venv(install_on_full_disk) -> None:
    proc, left = install_on_full_disk
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out and "error:" in proc.stderr, out
    # The venv it created is removed (or at least never looks complete).
    assert not [p for p in left if p.startswith("venv")] or any(".offpkg-incomplete" in p for p in left), left


@needs_tmpfs
def test_disk_full_during_install_names_the_cause(install_on_full_disk) -> None:
    proc, _ = install_on_full_disk
    assert proc.returncode == 10 and "no space left" in (proc.stdout + proc.stderr).lower()
