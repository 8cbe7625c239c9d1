"""bundle and lock use the configured mirror (offpkg.toml / OFFPKG_* env), and fall back when it is down."""

from __future__ import annotations

import json
import socket

import pytest


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_bundle_uses_the_index_from_offpkg_toml(index, tmp_path, env, offpkg) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".git").mkdir()  # the config search stops at the repository root
    (project / "offpkg.toml").write_text(f'index_url = "{index.url}"\nbackend = "pip"\n')
    proc = offpkg(["bundle", "alpha", "-o", str(tmp_path / "b"), "--json"], env, cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["backend"] == "pip"
    assert json.loads((tmp_path / "b" / "offpkg.json").read_text())["indexes"] == [index.url]
    lock = offpkg(["lock", "alpha", "--json"], env, cwd=project)
    assert lock.returncode == 0 and {p["name"] for p in json.loads(lock.stdout)["packages"]} == {"alpha", "beta", "gamma"}
    shown = offpkg(["config", "show", "--json"], env, cwd=project)
    cfg = json.loads(shown.stdout)["config"]
    assert cfg["index_url"]["value"] == index.url and cfg["index_url"]["source"].endswith("offpkg.toml")


def test_a_down_mirror_is_one_clear_error_without_fallback(tmp_path, env, offpkg) -> None:
    from helpers import assert_clean_error

    env = dict(env, OFFPKG_INDEX_URL=f"http://127.0.0.1:{_dead_port()}/simple", OFFPKG_FALLBACK="false")
    proc = offpkg(["bundle", "alpha", "-o", str(tmp_path / "b")], env)
    assert_clean_error(proc, 5, "127.0.0.1")
    assert not (tmp_path / "b").exists()


@pytest.mark.network
def test_a_down_mirror_falls_back_to_the_next_one(tmp_path, env, offpkg) -> None:
    """Primary down (connection refused) -> the next-ranked mirror (official PyPI) serves the bundle."""
    env = dict(env, OFFPKG_INDEX_URL=f"http://127.0.0.1:{_dead_port()}/simple", OFFPKG_FALLBACK="true")
    proc = offpkg(["bundle", "six", "-o", str(tmp_path / "b"), "--json", "--no-tools"], env)
    assert proc.returncode == 0, proc.stderr
    assert "next mirror" in proc.stderr
    wheels = [p.name for p in (tmp_path / "b" / "wheels").iterdir()]
    assert len(wheels) == 1 and wheels[0].startswith("six-")
