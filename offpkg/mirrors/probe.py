"""Probing PyPI mirrors: latency, throughput, freshness; ranking them and remembering the ranking.

Every request goes through the one network layer (:mod:`offpkg.net`): the same CA
bundle, proxies and credentials as ``offpkg bundle``, and the same page parser. Nothing
here prints; a failed probe is a result, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..redact import redact_text, redact_url
from .catalog import OFFICIAL_PYPI, Mirror

# The project whose simple-index page is fetched: small page on every mirror,
# released often enough to tell a stale mirror. Tests pass their own.
DEFAULT_PROBE_PROJECT = "pip"
DEFAULT_TIMEOUT = 10.0
# The throughput sample: one file linked from the probe page, read up to this many bytes.
DOWNLOAD_CAP = 2_000_000
# A simple-index page larger than this is cut off (and still parsed).
PAGE_CAP = 16_000_000
# Ranking score = latency + the time to fetch a file of this size (a typical wheel).
SCORE_BYTES = 1_000_000
RANKING_FILE = "mirror-ranking.json"
RANKING_MAX_AGE_S = 7 * 24 * 3600


@dataclass
class ProbeResult:
    name: str
    url: str
    ok: bool = False
    latency_ms: float | None = None
    throughput_bps: float | None = None
    fresh: bool | None = None
    newest: str | None = None
    error: str | None = None
    sample: str | None = None  # the file downloaded for the throughput figure
    sample_bytes: int = 0
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["url"] = redact_url(self.url)
        if d["error"]:
            d["error"] = redact_text(d["error"])
        for k in ("latency_ms", "throughput_bps", "score"):
            if d[k] is not None:
                d[k] = round(d[k], 3 if k == "score" else 1)
        return d


def _describe(exc: BaseException, timeout: float) -> str:
    """A one-line, redacted reason for a failed probe: the network layer's words, with the timeout."""
    from ..net.session import describe

    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return redact_text(f"malformed index page: {exc}"[:200])
    return describe(exc, timeout)


def _version_of(filename: str) -> Any:
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except Exception:  # an odd filename on a mirror page is not worth failing for
        return None
    return None


def probe(mirror: Mirror, *, project: str = DEFAULT_PROBE_PROJECT, timeout: float = DEFAULT_TIMEOUT,
          cap: int = DOWNLOAD_CAP) -> ProbeResult:
    """Probe one PyPI mirror: latency to the first byte of ``<url>/<project>/`` and the
    throughput of one file linked there (read up to ``cap`` bytes). Never raises."""
    from ..net.pages import parse_page, project_url
    from ..net.session import ACCEPT, make_session, read_capped

    result = ProbeResult(mirror.name, mirror.url)
    page_url = project_url(mirror.url, project)
    deadline_factor = 3
    try:
        # The one session factory: the CA bundle, proxies and credentials `offpkg bundle` uses.
        with make_session(2, user_agent=f"offpkg/{__version__} (mirror test)") as session:
            t0 = time.perf_counter()
            with session.get(page_url, headers={"Accept": ACCEPT}, stream=True, timeout=(timeout, timeout)) as r:
                if r.status_code == 404:
                    result.error = f"project {project!r} not found (HTTP 404)"
                    return result
                if r.status_code >= 400:
                    result.error = f"HTTP {r.status_code} {r.reason or ''}".strip()
                    return result
                body, first, _ = read_capped(r, PAGE_CAP, t0 + timeout * deadline_factor)
                result.latency_ms = ((first or time.perf_counter()) - t0) * 1000
                files = parse_page(body, r.headers.get("Content-Type", ""), r.url, encoding=r.encoding)
            versions = [(v, f) for f in files if (v := _version_of(f.filename)) is not None]
            if versions:
                newest = max(v for v, _ in versions)
                result.newest = str(newest)
                candidates = [f for v, f in versions if v == newest]
                # A wheel is what bundles download; an sdist will do.
                sample = sorted(candidates, key=lambda f: (not f.is_wheel, f.filename))[0]
                result.sample = sample.filename
                t1 = time.perf_counter()
                with session.get(sample.url, stream=True, timeout=(timeout, timeout)) as d:
                    if d.status_code >= 400:
                        result.error = f"file download failed: HTTP {d.status_code}"
                        return result
                    data, _, cut = read_capped(d, cap, t1 + timeout * deadline_factor)
                elapsed = max(time.perf_counter() - t1, 1e-6)
                result.sample_bytes = len(data)
                result.throughput_bps = len(data) / elapsed
                if not cut and sample.sha256 and hashlib.sha256(data).hexdigest() != sample.sha256:
                    result.error = f"sha256 of {sample.filename} does not match the index"
                    return result
        result.ok = True
    except Exception as exc:  # any failure is a result, never fatal
        result.error = _describe(exc, timeout)
    return result


def _score(r: ProbeResult) -> float:
    if r.latency_ms is None:
        return math.inf
    s = r.latency_ms / 1000
    if r.throughput_bps:
        s += SCORE_BYTES / r.throughput_bps
    return s


def assign_freshness(results: list[ProbeResult], reference: str | None = OFFICIAL_PYPI) -> None:
    """Mark each working mirror fresh or stale against the newest version of the probe
    project on the official index (when it was probed and answered), else the newest
    any working mirror has."""
    from packaging.version import InvalidVersion, Version

    def v(s: str | None) -> Version | None:
        try:
            return Version(s) if s else None
        except InvalidVersion:
            return None

    ok = [r for r in results if r.ok and v(r.newest) is not None]
    ref = None
    if reference:
        for r in ok:
            if r.url.rstrip("/") == reference.rstrip("/"):
                ref = v(r.newest)
    if ref is None and ok:
        ref = max(v(r.newest) for r in ok)  # type: ignore[type-var]
    for r in results:
        nv = v(r.newest)
        r.fresh = None if (not r.ok or nv is None or ref is None) else nv >= ref


def rank(results: Iterable[ProbeResult]) -> list[ProbeResult]:
    """Working before failed, fresh before unknown before stale, then by score (lower is better)."""
    fresh_order = {True: 0, None: 1, False: 2}
    out = list(results)
    for r in out:
        r.score = None if not r.ok else _score(r)
    return sorted(out, key=lambda r: (not r.ok, fresh_order[r.fresh] if r.ok else 0,
                                      r.score if r.score is not None else math.inf, r.name))


def test_mirrors(mirrors: Sequence[Mirror], *, project: str = DEFAULT_PROBE_PROJECT,
                 timeout: float = DEFAULT_TIMEOUT, cap: int = DOWNLOAD_CAP,
                 max_workers: int = 16) -> list[ProbeResult]:
    """Probe PyPI mirrors in parallel; the results ranked best first."""
    mirrors = [m for m in mirrors if m.kind == "pypi"]
    if not mirrors:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(mirrors)), thread_name_prefix="offpkg-probe") as pool:
        results = list(pool.map(lambda m: probe(m, project=project, timeout=timeout, cap=cap), mirrors))
    assign_freshness(results)
    return rank(results)


test_mirrors.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def save_ranking(results: Sequence[ProbeResult], cache_dir: str | Path, *, project: str) -> Path:
    """Remember the order of the last ``mirror test`` for :func:`index_urls`."""
    from .confedit import atomic_write  # noqa: I001 - the one atomic writer for small files

    path = Path(cache_dir) / RANKING_FILE
    doc = {"format": 1, "time": time.time(), "project": project,
           "ranking": [{"name": r.name, "url": redact_url(r.url), "ok": r.ok, "fresh": r.fresh}
                       for r in results]}
    atomic_write(path, json.dumps(doc, indent=2) + "\n")
    return path


def load_ranking(cache_dir: str | Path, *, max_age_s: float = RANKING_MAX_AGE_S) -> list[dict[str, Any]]:
    """The cached ranking if recent and readable, else []."""
    try:
        doc = json.loads((Path(cache_dir) / RANKING_FILE).read_text(encoding="utf-8"))
        if time.time() - float(doc["time"]) > max_age_s:
            return []
        return [e for e in doc["ranking"] if isinstance(e, dict) and "name" in e]
    except (OSError, ValueError, KeyError, TypeError):
        return []
