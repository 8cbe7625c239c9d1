"""Downloads that survive real faults: truncation (with and without Range), stalls,
resets, 5xx, wrong bytes, a dead primary, an overall deadline; mirror fallback
for pages, files and resolution. Every server is a real HTTP server on 127.0.0.1
(tests/fault_servers.py); the CLI is run as a subprocess and must print one clear
error and no traceback."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error
from fault_servers import Fault, FaultServer, counting, dead_url, observe
from offpkg.backends import Sources, get_backend
from offpkg.bundle import BundleOptions, build_bundle
from offpkg.net.cache import Cache
from offpkg.errors import HashMismatchError, NetworkError
from offpkg.net.fetch import Fetcher, FetchPolicy, FetchRequest
from offpkg.net.index import IndexClient, IndexUnavailable
from offpkg.target import Target
from offpkg.verify import verify_bundle
from pkgfactory import Dist, build_wheel, write_simple_index

BIG = "big-1.0-py3-none-any.whl"
BIG_PAYLOAD = 600 * 1024  # incompressible: the wheel is about this size


def fast_policy(**kw: float) -> FetchPolicy:
    base = dict(retries=3, backoff=0.01, max_backoff=0.05, timeout=2.0, deadline=60.0, workers=2)
    base.update(kw)
    return FetchPolicy(**base)  # type: ignore[arg-type]


def make_index(root: Path, *, big_seed: int = 0) -> Path:
    files = root / "files"
    build_wheel(Dist("alpha", "1.0", ["beta"]), files)
    build_wheel(Dist("beta", "1.0"), files)
    build_wheel(Dist("big", "1.0"), files, payload=random.Random(big_seed).randbytes(BIG_PAYLOAD))
    write_simple_index(files, root)
    return root


@pytest.fixture(scope="module", autouse=True)
def _tally() -> None:
    with counting("test_faults"):
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("faultidx"))


@pytest.fixture(scope="module")
def other_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror whose big-1.0 wheel has the same name but other bytes (another build)."""
    return make_index(tmp_path_factory.mktemp("otheridx"), big_seed=1)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emptyidx")
    (root / "simple").mkdir()
    (root / "simple" / "index.html").write_text("<html></html>")
    return root


def big_file(server: FaultServer, fallbacks: tuple[str, ...] = ()):
    files = IndexClient([server.url], fallbacks=list(fallbacks), retries=1, backoff=0.01, timeout=2).files("big")
    return next(f for f in files if f.filename == BIG)


def cached_names(cache: Cache) -> list[Path]:
    return [p for p in (cache.root / "files").glob("*/*/*") if p.name != ".lock"]


def assert_verified(cache: Cache, f) -> None:
    path = cache.path(f.sha256, f.filename)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256
    assert not path.with_name(path.name + ".part").exists()
    assert cache.verify_all() == []


# ------------------------------------------------------------------ truncation and resume

def test_truncated_body_resumes_with_range(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("truncate", match=BIG, after=100_000, times=2)]) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        got = Fetcher(cache, fast_policy()).fetch(FetchRequest(f))
        hits = srv.gets(BIG)
    assert got.size == f.size or got.size == (repo / "files" / BIG).stat().st_size
    assert_verified(cache, f)
    # First GET from zero, then each resume asks for the bytes it lacks (from the
    # last whole 64 KiB read it kept: the torn read's tail is dropped by urllib3).
    assert [h.status for h in hits] == [200, 206, 206]
    assert hits[0].range is None
    starts = [int(h.range.removeprefix("bytes=").rstrip("-")) for h in hits[1:]]
    assert 0 < starts[0] <= 100_000 < starts[1] <= 200_000, starts


def test_truncated_body_without_range_restarts_from_zero(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("truncate", match=BIG, after=100_000, times=2)], ranges=False) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        Fetcher(cache, fast_policy()).fetch(FetchRequest(f))
        hits = srv.gets(BIG)
    assert_verified(cache, f)
    assert len(hits) == 3 and all(h.status == 200 for h in hits)  # the server ignored Range each time


def test_truncated_forever_fails_cleanly_without_a_final_file(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("truncate", match=BIG, after=50_000)], ranges=False) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        with pytest.raises(NetworkError) as ei:
            Fetcher(cache, fast_policy(retries=2)).fetch(FetchRequest(f))
        assert len(srv.gets(BIG)) == 3  # bounded: 1 + 2 retries
    assert BIG in ei.value.message and "connection closed after" in ei.value.message
    assert not cache.path(f.sha256, BIG).exists()


def test_stale_part_of_a_killed_run_is_resumed(repo: Path, tmp_path: Path) -> None:
    data = (repo / "files" / BIG).read_bytes()
    with FaultServer(repo) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        part = cache.path(f.sha256, BIG).with_name(BIG + ".part")
        part.parent.mkdir(parents=True)
        part.write_bytes(data[:123_456])
        Fetcher(cache, fast_policy()).fetch(FetchRequest(f))
        assert [h.range for h in srv.gets(BIG)] == ["bytes=123456-"]
    assert_verified(cache, f)


def test_corrupt_part_of_a_killed_run_is_downloaded_again_once(repo: Path, tmp_path: Path) -> None:
    warnings: list[str] = []
    with FaultServer(repo) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        part = cache.path(f.sha256, BIG).with_name(BIG + ".part")
        part.parent.mkdir(parents=True)
        part.write_bytes(b"\0" * 4096)  # garbage, e.g. after a power cut
        Fetcher(cache, fast_policy(), warn=warnings.append).fetch(FetchRequest(f))
        assert [h.range for h in srv.gets(BIG)] == ["bytes=4096-", None]
    assert_verified(cache, f)
    assert any("again from the start" in w for w in warnings)


# ------------------------------------------------------------------ stalls, resets, 5xx

def test_reset_connections_are_retried(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("reset", match=BIG, times=2)]) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        Fetcher(cache, fast_policy()).fetch(FetchRequest(f))
        assert len(srv.gets(BIG)) == 3
    assert_verified(cache, f)


def test_503_twice_then_200_backs_off_and_succeeds(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("status", match=BIG, status=503, times=2)]) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        t0 = time.monotonic()
        Fetcher(cache, fast_policy(backoff=0.1, max_backoff=1.0)).fetch(FetchRequest(f))
        took = time.monotonic() - t0
        assert [h.status for h in srv.gets(BIG)] == [503, 503, 200]
    assert_verified(cache, f)
    # Backoff 0.1 s then 0.2 s, each jittered by 0.5x..1.5x: at least 0.15 s in all.
    assert took >= 0.15


def test_stalled_server_times_out_then_next_mirror(repo: Path, tmp_path: Path) -> None:
    warnings: list[str] = []
    with FaultServer(repo, [Fault("stall", match=BIG, after=-1, stall=10)]) as bad, FaultServer(repo) as good:
        f = big_file(bad, fallbacks=(good.url,))
        assert f.url.startswith(bad.base) and f.mirrors == (good.url + "/",)
        cache = Cache(tmp_path / "c")
        got = Fetcher(cache, fast_policy(timeout=0.5, retries=1), warn=warnings.append).fetch(FetchRequest(f))
        assert len(bad.gets(BIG)) == 2  # one try + one retry, each stalled past the read timeout
        assert len(good.gets(BIG)) == 1
    assert got.url.startswith(good.base) and not got.from_cache
    assert_verified(cache, f)
    assert any("timed out" in w and "trying the next mirror" in w for w in warnings)


def test_stall_mid_body_is_a_timeout_and_resumes(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("stall", match=BIG, after=200_000, stall=10, times=1)]) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        Fetcher(cache, fast_policy(timeout=0.5)).fetch(FetchRequest(f))
        ranges = [h.range for h in srv.gets(BIG)]
        assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
        assert 0 < int(ranges[1][6:-1]) <= 200_000
    assert_verified(cache, f)


# ------------------------------------------------------------------ wrong bytes: fatal, never "fixed" elsewhere

def test_wrong_bytes_are_fatal_and_never_fetched_from_another_mirror(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("corrupt", match=BIG)]) as bad, FaultServer(repo) as good:
        f = big_file(bad, fallbacks=(good.url,))
        cache = Cache(tmp_path / "c")
        with pytest.raises(HashMismatchError) as ei:
            Fetcher(cache, fast_policy()).fetch(FetchRequest(f, alternates=[good.base + "/files/" + BIG]))
        assert len(bad.gets(BIG)) == 1  # not retried
        assert good.gets(BIG) == [] and good.gets("/simple/big/") == []  # no mirror asked to "fix" it
    msg = ei.value.message
    wrong = hashlib.sha256(bytes(b ^ 0x5A for b in (repo / "files" / BIG).read_bytes())).hexdigest()
    assert BIG in msg and f.sha256 in msg and wrong in msg
    assert "never falls back" in (ei.value.hint or "")
    assert cached_names(Cache(tmp_path / "c")) == []  # the .part is deleted, nothing under a final name


def test_a_mirror_with_other_bytes_under_the_same_name_is_not_an_alternate(repo: Path, other_build: Path,
                                                                           tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("status", match=BIG, status=502)]) as bad, FaultServer(other_build) as other:
        f = big_file(bad, fallbacks=(other.url,))
        assert IndexClient([], timeout=2).alternates(f) == []
        with pytest.raises(NetworkError) as ei:
            Fetcher(Cache(tmp_path / "c"), fast_policy(retries=1)).fetch(FetchRequest(f))
        assert other.gets(BIG) == []  # looked up (by alternates() above, then by the fetcher), refused
        assert len(other.gets("/simple/big/")) == 2
    assert "HTTP 502" in ei.value.message and not isinstance(ei.value, HashMismatchError)


# ------------------------------------------------------------------ a dead primary, pages and 404s

def test_primary_down_uses_the_fallback_mirror(repo: Path, tmp_path: Path) -> None:
    dead = dead_url()
    with FaultServer(repo) as good:
        client = IndexClient([dead], fallbacks=[good.url], retries=1, backoff=0.01, timeout=2)
        files = {f.filename: f for f in client.files("big") + client.files("alpha")}
        assert all(f.url.startswith(good.base) for f in files.values())
        assert client.dead == {dead + "/"} and len(client.notes) == 1  # found dead once, then skipped
        cache = Cache(tmp_path / "c")
        Fetcher(cache, fast_policy(), client=client).fetch_all([FetchRequest(f) for f in files.values()])
    for f in files.values():
        assert_verified(cache, f)


def test_primary_5xx_pages_fall_back_but_404_does_not(repo: Path, empty: Path) -> None:
    with FaultServer(repo, [Fault("status", match="/simple/", status=500)]) as failing, \
            FaultServer(empty) as absent, FaultServer(repo) as good:
        client = IndexClient([failing.url], fallbacks=[good.url], retries=2, backoff=0.01, timeout=2)
        assert [f.filename for f in client.files("beta")] == ["beta-1.0-py3-none-any.whl"]
        assert len(failing.gets("/simple/beta/")) == 3  # bounded retries first
        # A 404 means the project is absent: an answer, not a reason to ask a mirror.
        client = IndexClient([absent.url], fallbacks=[good.url], retries=2, backoff=0.01, timeout=2)
        assert client.files("beta") == []
        assert len(good.gets("/simple/beta/")) == 1  # only the first client's


def test_every_mirror_down_is_one_clear_network_error() -> None:
    client = IndexClient([dead_url()], fallbacks=[dead_url()], retries=1, backoff=0.01, timeout=1)
    with pytest.raises(IndexUnavailable) as ei:
        client.files("alpha")
    assert "no mirror of the index could be reached for alpha" in ei.value.message
    assert ei.value.exit_code == 5


# ------------------------------------------------------------------ deadline, abort, cache re-hash

def test_overall_deadline_gives_a_clean_network_error(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("throttle", match=BIG, rate=100_000)]) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        with pytest.raises(NetworkError) as ei:
            Fetcher(cache, fast_policy(deadline=0.6)).fetch_all([FetchRequest(f)])
    assert "deadline of 0.6 s" in ei.value.message
    assert not cache.path(f.sha256, BIG).exists()  # no partial file under a final name
    assert cache.verify_all() == []


def test_a_fatal_error_stops_the_other_downloads(repo: Path, tmp_path: Path) -> None:
    faults = [Fault("corrupt", match="alpha-"), Fault("throttle", match=BIG, rate=50_000)]
    with FaultServer(repo, faults) as srv:
        client = IndexClient([srv.url], timeout=2)
        big = client.files("big")
        reqs = [FetchRequest(f) for f in client.files("alpha") + big]
        cache = Cache(tmp_path / "c")
        with pytest.raises(HashMismatchError):
            Fetcher(cache, fast_policy(workers=2)).fetch_all(reqs)
    # The throttled download (12 s at this rate) was stopped, not waited for: it never completed.
    assert big and not any(cache.path(b.sha256, b.filename).exists() for b in big)


def test_cached_files_are_rehashed_when_used(repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo) as srv:
        f = big_file(srv)
        cache = Cache(tmp_path / "c")
        fetcher = Fetcher(cache, fast_policy())
        assert not fetcher.fetch(FetchRequest(f)).from_cache
        assert fetcher.fetch(FetchRequest(f)).from_cache
        path = cache.path(f.sha256, BIG)
        path.write_bytes(b"bit rot")  # a flaky disk
        again = fetcher.fetch(FetchRequest(f))
        assert not again.from_cache and len(srv.gets(BIG)) == 2
    assert_verified(cache, f)


# ------------------------------------------------------------------ the whole bundle, Python API

def test_bundle_falls_back_when_the_primary_is_down(repo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with FaultServer(repo) as good:
        opts = BundleOptions(requirements=["alpha"], targets=[Target.host()],
                             sources=Sources((dead_url(),), fallbacks=(good.url,)), backend=get_backend("uv"),
                             output=tmp_path / "out", cache=Cache(tmp_path / "c"), tools=False,
                             fetch_policy=fast_policy())
        res = build_bundle(opts)
        assert len(good.gets("/files/alpha-1.0")) >= 1
    assert verify_bundle(res.path).ok
    assert sorted(p.filename for p in res.manifest.packages) == ["alpha-1.0-py3-none-any.whl",
                                                                 "beta-1.0-py3-none-any.whl"]


def test_bundle_falls_back_when_primary_files_fail_mid_run(repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Pages and resolution work on the primary; its file downloads fail (503) for offpkg."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    warnings: list[str] = []

    class Ev:
        def __getattr__(self, name):  # stage/advance/done/note: nothing to show here
            return lambda *a, **k: None

        def warn(self, msg: str) -> None:
            warnings.append(msg)

    with FaultServer(repo, [Fault("status", match="/files/", status=503, agent="offpkg/")]) as flaky, \
            FaultServer(repo) as good:
        opts = BundleOptions(requirements=["alpha"], targets=[Target.host()],
                             sources=Sources((flaky.url,), fallbacks=(good.url,)), backend=get_backend("uv"),
                             output=tmp_path / "out.tar", cache=Cache(tmp_path / "c"), tools=False,
                             fetch_policy=fast_policy(retries=1))
        res = build_bundle(opts, Ev())
        assert len(good.gets("/files/alpha-1.0")) == 1 and len(good.gets("/files/beta-1.0")) == 1
    assert verify_bundle(res.path).ok
    assert sum("trying the next mirror" in w for w in warnings) == 2
    assert res.manifest.indexes == (flaky.url,)


# ------------------------------------------------------------------ the CLI: one clear error, no traceback

def _cli_bundle(offpkg, env, url: str, out: Path, *reqs: str, extra: tuple[str, ...] = ()):
    return observe(offpkg(["bundle", *reqs, "-i", url, "-o", str(out), "--no-tools", "--backend", "uv", *extra], env,
                          timeout=120))


def test_cli_wrong_bytes(offpkg, env, repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("corrupt", match="/files/beta-", agent="offpkg/")]) as srv:
        proc = _cli_bundle(offpkg, env, srv.url, tmp_path / "out", "alpha")
    assert_clean_error(proc, 5, "beta-1.0-py3-none-any.whl", "sha256", "never falls back")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_cli_server_errors_after_retries(offpkg, env, repo: Path, tmp_path: Path) -> None:
    with FaultServer(repo, [Fault("status", match="/files/", status=500, agent="offpkg/")]) as srv:
        proc = _cli_bundle(offpkg, env, srv.url, tmp_path / "out", "alpha", extra=("--json",))
        # Downloads only: a prefetch guess's reads of a wheel's METADATA (.metadata, or a bounded Range)
        # are not tries of the download.
        tries = {n: sum(h.fault == "status" and not h.path.endswith(".metadata")
                        and (h.range is None or h.range.endswith("-") and not h.range.startswith("bytes=-"))
                        for h in srv.gets(f"/files/{n}-1.0")) for n in ("alpha", "beta")}
    assert_clean_error(proc, 5, "could not download", "HTTP 500")
    # FetchPolicy's default: 1 + 4 retries for the file that failed first; that
    # failure stops the other download (which may have had fewer tries by then).
    # The top-level requirement may also have had one speculative attempt (offpkg.prefetch:
    # a guess tries once, without retries, and leaves the file to the real fetch).
    assert 5 <= max(tries.values()) <= 6 and tries["beta"] <= 5 and min(tries.values()) >= 1, tries
    payload = json.loads(proc.stdout)
    assert payload["command"] == "error" and payload["error"]["exit_code"] == 5
    assert not (tmp_path / "out").exists()


def test_cli_index_down(offpkg, env, tmp_path: Path) -> None:
    proc = _cli_bundle(offpkg, env, dead_url(), tmp_path / "out", "alpha")
    assert_clean_error(proc, 5, "cannot reach the index")
    assert not (tmp_path / "out").exists()
