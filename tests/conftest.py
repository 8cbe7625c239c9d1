"""Shared fixtures: a real PEP 503 index on 127.0.0.1 with tiny real packages, isolated
environments for every subprocess, and a runner for the offline side under ``unshare -n``."""

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
from pkgfactory import Dist, build_sdist, build_wheel, write_simple_index  # noqa: E402

HOST_TAG_311 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"


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


@pytest.fixture(scope="session")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    build_package_set(files)
    write_simple_index(files, root)
    server, base = serve(root)
    yield Index(f"{base}/simple", root, files)
    server.shutdown()


# ------------------------------------------------------------------ isolation

@pytest.fixture(scope="session")
def session_uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def env(tmp_path: Path, session_uv_cache: Path) -> dict[str, str]:
    """Environment for offpkg subprocesses: no PIP_*/UV_* settings, a temp HOME and cache."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = tmp_path / "home"
    home.mkdir()
    e.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
             PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(tmp_path / "offpkg-cache"),
             UV_CACHE_DIR=str(session_uv_cache), PYTHONUTF8="1", NO_COLOR="1", CI="1")
    return e


@pytest.fixture(autouse=True)
def _isolate_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process code (CliRunner tests) sees the same isolation."""
    for k in list(os.environ):
        if k.startswith(("PIP_", "OFFPKG_")):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("OFFPKG_CACHE_DIR", str(tmp_path / "offpkg-cache-inproc"))


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


@pytest.fixture
def offline() -> tuple[str, ...]:
    argv = unshare_argv()
    if argv is None:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces); the offline half cannot be proven")
    return argv


def run_offpkg(args: list[str], env: dict[str, str], *, offline: tuple[str, ...] | None = None,
               cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    argv = [*(offline or ()), sys.executable, "-m", "offpkg", *args]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def offpkg():
    return run_offpkg


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "network" in item.keywords and not pypi_reachable():
            item.add_marker(pytest.mark.skip(reason="PyPI is unreachable"))
