"""Warm bundles: an unchanged rebuild reuses the resolution and trusts cache entries by their stamp,
and anything that changed (requirements, target, options, the index itself) is seen.

Everything runs against a real index on 127.0.0.1 whose files the tests change between runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import serve
from pkgfactory import Dist, build_wheel, write_simple_index


@pytest.fixture
def live_index(tmp_path: Path):
    """A small index of our own, so a test can publish a new release into it."""
    root = tmp_path / "live-index"
    files = root / "files"
    build_wheel(Dist("alpha", "1.0", ["beta>=1.0"]), files)
    build_wheel(Dist("beta", "1.0"), files)
    write_simple_index(files, root)
    server, base = serve(root)
    yield root, files, f"{base}/simple"
    server.shutdown()


def _bundle(offpkg, env, url: str, out: Path, *extra: str) -> dict:
    proc = offpkg(["bundle", "alpha", "-i", url, "-o", str(out), "--no-tools", "--json", *extra], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _wheels(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "wheels").iterdir())


def test_unchanged_rebuild_reuses_the_resolution(offpkg, env, live_index, tmp_path: Path) -> None:
    _, _, url = live_index
    first = _bundle(offpkg, env, url, tmp_path / "b1")
    assert first["reused_locks"] == 0 and first["cached_files"] == 0
    second = _bundle(offpkg, env, url, tmp_path / "b2")
    assert second["reused_locks"] == 1
    assert second["cached_files"] == 2 and second["downloaded_bytes"] == 0
    assert (tmp_path / "b1" / "requirements.txt").read_text() == (tmp_path / "b2" / "requirements.txt").read_text()
    # --refresh resolves afresh all the same.
    third = _bundle(offpkg, env, url, tmp_path / "b3", "--refresh")
    assert third["reused_locks"] == 0
    assert _wheels(tmp_path / "b3") == _wheels(tmp_path / "b1")


def test_a_new_release_on_the_index_is_seen(offpkg, env, live_index, tmp_path: Path) -> None:
    root, files, url = live_index
    _bundle(offpkg, env, url, tmp_path / "b1")
    assert "beta-1.0-py3-none-any.whl" in _wheels(tmp_path / "b1")
    build_wheel(Dist("beta", "1.1"), files)  # published after the first bundle
    shutil.rmtree(root / "simple")
    write_simple_index(files, root)
    # uv keeps its own HTTP cache of index pages: a fresh one, so what is tested is offpkg's own check.
    env = {**env, "UV_CACHE_DIR": str(tmp_path / "uv-cache-2")}
    again = _bundle(offpkg, env, url, tmp_path / "b2")
    assert again["reused_locks"] == 0
    assert "beta-1.1-py3-none-any.whl" in _wheels(tmp_path / "b2")


def test_changed_inputs_are_not_reused(offpkg, env, live_index, tmp_path: Path) -> None:
    _, _, url = live_index
    _bundle(offpkg, env, url, tmp_path / "b1")
    other_req = offpkg(["bundle", "alpha", "beta==1.0", "-i", url, "-o", str(tmp_path / "b2"), "--no-tools",
                        "--json"], env)
    assert other_req.returncode == 0, other_req.stderr
    assert json.loads(other_req.stdout)["reused_locks"] == 0
    other_python = _bundle(offpkg, env, url, tmp_path / "b3", "--python-version", "3.10")
    assert other_python["reused_locks"] == 0


def _cached(env: dict[str, str], name: str) -> Path:
    hits = [p for p in Path(env["OFFPKG_CACHE_DIR"], "files").glob(f"*/*/{name}")]
    assert len(hits) == 1, hits
    return hits[0]


def test_a_changed_cache_entry_is_hashed_again(offpkg, env, live_index, tmp_path: Path) -> None:
    """Writing to an entry changes its ctime, which nobody can set back: the stamp no longer matches,
    the entry is hashed, found corrupt, dropped, and downloaded again."""
    _, _, url = live_index
    _bundle(offpkg, env, url, tmp_path / "b1")
    entry = _cached(env, "beta-1.0-py3-none-any.whl")
    good = entry.read_bytes()
    st = entry.stat()
    os.chmod(entry, 0o644)
    entry.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime and size: only ctime tells
    res = _bundle(offpkg, env, url, tmp_path / "b2")
    assert res["downloaded_bytes"] == len(good)
    assert (tmp_path / "b2" / "wheels" / "beta-1.0-py3-none-any.whl").read_bytes() == good


def test_verify_cache_rehashes_what_a_stamp_vouches_for(offpkg, env, live_index, tmp_path: Path) -> None:
    """What a stamp cannot see (bytes changed below the file system) is what --verify-cache is for:
    here the stamp is forged to match a corrupted entry, and --verify-cache still catches it."""
    _, _, url = live_index
    _bundle(offpkg, env, url, tmp_path / "b1")
    entry = _cached(env, "beta-1.0-py3-none-any.whl")
    good = entry.read_bytes()
    os.chmod(entry, 0o644)
    entry.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    os.chmod(entry, 0o444)
    st = entry.stat()
    stamp = entry.with_name(f".verified-{entry.name}.json")
    assert stamp.is_file()
    stamp.write_text(json.dumps([st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]))
    res = _bundle(offpkg, env, url, tmp_path / "b2", "--verify-cache")
    assert res["downloaded_bytes"] == len(good)
    assert (tmp_path / "b2" / "wheels" / "beta-1.0-py3-none-any.whl").read_bytes() == good
    # And the bundle verifies.
    proc = offpkg(["verify", str(tmp_path / "b2"), "--json"], env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stdout


def test_stamps_hold_after_the_bundle_links_the_entries(offpkg, env, live_index, tmp_path: Path) -> None:
    """Hard-linking an entry into a bundle changes its ctime (the link count changed): the stamp is
    taken again, so the next run trusts the entry without hashing it, and it is still read-only."""
    _, _, url = live_index
    _bundle(offpkg, env, url, tmp_path / "b1")
    entries = [p for p in Path(env["OFFPKG_CACHE_DIR"], "files").glob("*/*/*.whl")]
    assert len(entries) == 2
    for e in entries:
        st = e.stat()
        assert st.st_nlink == 2  # the cache's name and the bundle's
        stamp = json.loads(e.with_name(f".verified-{e.name}.json").read_text())
        assert stamp == [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
        assert not st.st_mode & 0o222
