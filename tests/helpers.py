"""Test helpers shared by the suite (the fixtures stay in conftest.py): the package set, a loopback
index server, the offline runner (``unshare -n``) and the assertion for one clear error."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pkgfactory import Dist, build_sdist, build_wheel  # noqa: E402


# ------------------------------------------------------------------ the package set

def build_package_set(files: Path) -> None:
    """The packages of the default suite (see tests/README in docs/testing.md)."""
    # A dependency chain: alpha -> beta -> gamma (two beta versions; the newest wins).
    build_wheel(Dist("alpha", "1.0", ["beta>=1.0"]), files)
    build_wheel(Dist("beta", "1.0", ["gamma"]), files)
    build_wheel(Dist("beta", "1.1", ["gamma"]), files)
    build_wheel(Dist("gamma", "2.0"), files)
    # Like tokenizers: the only Linux wheel is manylinux_2_17 (abi3), plus a macOS one.
    build_wheel(Dist("tokenlike", "0.3.0"), files, "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64")
    build_wheel(Dist("tokenlike", "0.3.0"), files, "cp39-abi3-macosx_11_0_arm64")
    # Compiled-looking wheels for two Python versions.
    build_wheel(Dist("compiled", "1.2"), files, "cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64")
    build_wheel(Dist("compiled", "1.2"), files, "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    # Pure-Python, sdist only (built into a wheel by offpkg).
    build_sdist(Dist("puresdist", "0.5", ["gamma"]), files)
    # No wheel for Linux at all, and no sdist.
    build_wheel(Dist("nowheel", "1.0"), files, "cp310-cp310-win_amd64")
    build_wheel(Dist("nowheel", "1.0"), files, "cp311-cp311-win_amd64")
    # Conflicting pins for the unsatisfiable case.
    build_wheel(Dist("needsoldgamma", "1.0", ["gamma<2"]), files)
    # pip itself, for the bundle's tools/ (the wheel ensurepip ships with this python).
    import ensurepip

    for whl in (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"):
        shutil.copy(whl, files / whl.name)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@dataclass
class Index:
    url: str  # .../simple
    root: Path
    files: Path


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@functools.lru_cache(maxsize=None)
def unshare_argv() -> tuple[str, ...] | None:
    """argv prefix for 'no network at all', or None where the kernel refuses."""
    exe = shutil.which("unshare")
    if not exe:
        return None
    for flags in (("-n",), ("-rn",)):
        try:
            if subprocess.run([exe, *flags, "true"], capture_output=True, timeout=10).returncode == 0:
                return (exe, *flags)
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def ci() -> bool:
    """Whether this run is CI (``CI=true``): there, a proof that cannot run fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_offline() -> tuple[str, ...]:
    """The ``unshare -n`` prefix; skips where the kernel refuses, but FAILS under CI=true."""
    argv = unshare_argv()
    if argv is None:
        why = "unshare -n is not permitted here (needs root or user namespaces); the offline half cannot be proven"
        if ci():
            pytest.fail(f"{why} (CI=true: an offline proof may not be skipped)")
        pytest.skip(why)
    return argv


def run_offpkg(args: list[str], env: dict[str, str], *, offline: tuple[str, ...] | None = None,
               cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    argv = [*(offline or ()), sys.executable, "-m", "offpkg", *args]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """One clear error: the exit code, the message parts, and never a traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert "Traceback" not in out, out
    assert "error:" in proc.stderr, out
    for n in needles:
        assert n in out, f"{n!r} not in:\n{out}"


@functools.lru_cache(maxsize=1)
def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False
