"""Shared fixtures: a real PEP 503 index on 127.0.0.1 with tiny real packages, isolated
environments for every subprocess, and a runner for the offline side under ``unshare -n``.

The helpers themselves live in tests/helpers.py (re-exported here for older imports).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import (Index, assert_clean_error, build_package_set, pypi_reachable,  # noqa: E402,F401
                     require_offline, run_offpkg, serve, unshare_argv)
from pkgfactory import write_simple_index  # noqa: E402


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


@pytest.fixture
def offline() -> tuple[str, ...]:
    """``unshare -n`` for the offline half: skipped where the kernel refuses, a failure under CI=true."""
    return require_offline()


@pytest.fixture
def offpkg():
    return run_offpkg


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "network" in item.keywords and not pypi_reachable():
            item.add_marker(pytest.mark.skip(reason="PyPI is unreachable"))
