"""Package mirrors: the catalog, probing and ranking them, and choosing index URLs.

The catalog (``offpkg/data/mirrors.json``) lists PyPI, conda and PyTorch mirrors.
Users add their own in the ``mirrors`` table of offpkg's configuration, or ad hoc
with ``--mirror NAME=URL``. :func:`test_mirrors` probes PyPI mirrors in parallel
and ranks them; :func:`index_urls` is what downloads use to pick an index and the
mirrors to fall back to; :func:`plan_use` prepares the pip.conf / .condarc edits
of ``offpkg mirror use``. Nothing here prints.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from .. import __version__
from .confedit import CondarcDoc, FileChange, IniDoc, UnsupportedYaml, read_text
from ..errors import InputError, UsageError
from ..redact import redact_text, redact_url, register_secret, secrets_in_url

if TYPE_CHECKING:
    from ..config import Config

KINDS = ("pypi", "conda", "pytorch")
OFFICIAL = "official"
OFFICIAL_PYPI = "https://pypi.org/simple"
OFFICIAL_TORCH = "https://download.pytorch.org/whl"

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
# pip.conf ``timeout`` written when the file has none (pip's own default is 15 s).
PIP_TIMEOUT = 60
RANKING_FILE = "mirror-ranking.json"
RANKING_MAX_AGE_S = 7 * 24 * 3600

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Mirror:
    name: str
    kind: str
    url: str
    region: str = ""
    notes: str = ""
    checked: bool = False
    # pytorch: "pep503" (<url>/<variant>/ is a simple index), "find-links" or "unknown".
    layout: str = "pep503"
    # False: never tried automatically as a fallback (unreliable or a redirect).
    fallback: bool = True
    default_channels: tuple[str, ...] = ()
    custom_channels: tuple[tuple[str, str], ...] = ()
    origin: str = "catalog"  # catalog | config | command line

    def public(self) -> dict[str, Any]:
        """A JSON-ready, redacted view."""
        d = asdict(self)
        d["url"] = redact_url(self.url)
        d["default_channels"] = [redact_url(u) for u in self.default_channels]
        d["custom_channels"] = {k: redact_url(v) for k, v in self.custom_channels}
        if self.kind != "conda":
            del d["default_channels"], d["custom_channels"]
        if self.kind != "pytorch":
            del d["layout"]
        return d


def _register(url: str) -> None:
    for s in secrets_in_url(url):
        register_secret(s)


@lru_cache(maxsize=1)
def catalog() -> tuple[Mirror, ...]:
    """The mirrors shipped with offpkg, in catalog order (official first per kind)."""
    from importlib.resources import files

    data = json.loads(files("offpkg").joinpath("data/mirrors.json").read_text(encoding="utf-8"))
    out = []
    for e in data["mirrors"]:
        out.append(Mirror(name=e["name"], kind=e["kind"], url=e["url"], region=e.get("region", ""),
                          notes=e.get("notes", ""), checked=bool(e.get("checked", False)),
                          layout=e.get("layout", "pep503"), fallback=bool(e.get("fallback", True)),
                          default_channels=tuple(e.get("default_channels", ())),
                          custom_channels=tuple(e.get("custom_channels", {}).items())))
    return tuple(out)


def _tuna_layout(url: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    base = url.rstrip("/")
    return (tuple(f"{base}/pkgs/{c}" for c in ("main", "r", "msys2")),
            (("conda-forge", f"{base}/cloud"), ("pytorch", f"{base}/cloud")))


def user_mirror(name: str, url: str, kind: str = "pypi", *, origin: str = "config",
                default_channels: Sequence[str] | None = None,
                custom_channels: dict[str, str] | None = None) -> Mirror:
    """A mirror the user defined (config ``mirrors`` table or ``--mirror``)."""
    _register(url)
    dc: tuple[str, ...] = ()
    cc: tuple[tuple[str, str], ...] = ()
    if kind == "conda":
        dc, cc = _tuna_layout(url)
        if default_channels is not None:
            dc = tuple(default_channels)
        if custom_channels is not None:
            cc = tuple(custom_channels.items())
        for u in (*dc, *(v for _, v in cc)):
            _register(u)
    return Mirror(name=name, kind=kind, url=url, region="", notes=f"defined in {origin}", checked=False,
                  default_channels=dc, custom_channels=cc, origin=origin)


def parse_mirror_option(value: str) -> Mirror:
    """``NAME=URL`` (a PyPI mirror) or ``NAME=conda:URL`` / ``NAME=pytorch:URL``."""
    name, sep, url = value.partition("=")
    name = name.strip()
    kind = "pypi"
    m = re.match(r"(pypi|conda|pytorch):(?=\w+://)", url)
    if m:
        kind, url = m.group(1), url[m.end():]
    if not sep or not name or not re.match(r"(https?|file)://\S+$", url):
        raise UsageError(f"--mirror expects NAME=URL (an http(s) URL), got {redact_text(value)!r}",
                         hint="e.g. --mirror corp=https://nexus.example.com/repository/pypi/simple")
    return user_mirror(name, url, kind, origin="command line")


def known_mirrors(config: Config | None = None, extra: Iterable[Mirror] = ()) -> list[Mirror]:
    """Catalog, then the config's ``mirrors`` table, then ``extra``; a later entry
    with the same name and kind replaces an earlier one in place."""
    out: dict[tuple[str, str], Mirror] = {(m.name, m.kind): m for m in catalog()}
    if config is not None:
        for name, entry in (config.get("mirrors") or {}).items():
            m = user_mirror(name, entry["url"], entry.get("kind", "pypi"),
                            origin=config.source("mirrors"),
                            default_channels=entry.get("default_channels"),
                            custom_channels=entry.get("custom_channels"))
            out[(m.name, m.kind)] = m
    for m in extra:
        out[(m.name, m.kind)] = m
    return list(out.values())


def find(mirrors: Sequence[Mirror], name: str, kind: str | None = None) -> list[Mirror]:
    """The mirrors called ``name`` (of ``kind``); UsageError naming the choices if none."""
    found = [m for m in mirrors if m.name == name and (kind is None or m.kind == kind)]
    if not found:
        names = sorted({m.name for m in mirrors if kind is None or m.kind == kind})
        what = f"{kind} mirror" if kind else "mirror"
        raise UsageError(f"unknown {what} {name!r}", hint="known: " + ", ".join(names) +
                         " (see `offpkg mirror list`; add your own with --mirror NAME=URL or in the config)")
    return found


# --------------------------------------------------------------------------- probing


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
    """A one-line, redacted reason for a failed probe."""
    import requests

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        msg = f"connection timed out after {timeout:g} s"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        msg = f"no data for {timeout:g} s (read timed out)"
    elif isinstance(exc, requests.exceptions.SSLError):
        msg = "TLS error: " + str(exc)[-160:]
    elif isinstance(exc, (requests.exceptions.ChunkedEncodingError,)) or "IncompleteRead" in text \
            or "RemoteDisconnected" in text or "Connection broken" in text:
        msg = "connection closed mid-response"
    elif "NameResolution" in text or "Name or service not known" in text or "nodename nor servname" in text \
            or "getaddrinfo failed" in text or "Temporary failure in name resolution" in text:
        msg = "cannot resolve host"
    elif "Connection refused" in text:
        msg = "connection refused"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        msg = "connection failed: " + str(exc)[-160:]
    else:
        msg = text[:200]
    return redact_text(msg)


def _parse_page(body: bytes, content_type: str, page_url: str) -> list[tuple[str, str, str | None]]:
    """(filename, absolute URL, sha256 or None) of each file on a simple-index page."""
    out: list[tuple[str, str, str | None]] = []
    if "json" in content_type:
        data = json.loads(body.decode("utf-8"))
        for f in data.get("files", []):
            url = urljoin(page_url, f["url"])
            out.append((f["filename"], url, (f.get("hashes") or {}).get("sha256")))
        return out
    text = body.decode("utf-8", errors="replace")
    for m in re.finditer(r"<a\s[^>]*?href\s*=\s*[\"']([^\"']+)[\"'][^>]*>(.*?)</a>", text, re.S | re.I):
        href = html.unescape(m.group(1))
        name = html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).strip() or urlsplit(href).path.rsplit("/", 1)[-1]
        frag = urlsplit(href).fragment
        sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
        out.append((name, urljoin(page_url, href), sha))
    return out


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


def _read_capped(resp: Any, cap: int, deadline: float, timeout: float) -> tuple[bytes, float | None, bool]:
    """Read up to ``cap`` bytes: (data, seconds until the first byte, whether the body was cut)."""
    import requests

    chunks: list[bytes] = []
    size = 0
    first: float | None = None
    for chunk in resp.iter_content(64 * 1024):
        if first is None:
            first = time.perf_counter()
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            return b"".join(chunks)[:cap], first, True
        if time.perf_counter() > deadline:
            raise requests.exceptions.ReadTimeout(f"slower than {timeout:g} s overall")
    return b"".join(chunks), first, False


def probe(mirror: Mirror, *, project: str = DEFAULT_PROBE_PROJECT, timeout: float = DEFAULT_TIMEOUT,
          cap: int = DOWNLOAD_CAP) -> ProbeResult:
    """Probe one PyPI mirror: latency to the first byte of ``<url>/<project>/`` and the
    throughput of one file linked there (read up to ``cap`` bytes). Never raises."""
    import requests
    from packaging.utils import canonicalize_name

    result = ProbeResult(mirror.name, mirror.url)
    page_url = mirror.url.rstrip("/") + "/" + canonicalize_name(project) + "/"
    deadline_factor = 3
    try:
        with requests.Session() as session:
            session.headers["User-Agent"] = f"offpkg/{__version__} (mirror test)"
            t0 = time.perf_counter()
            with session.get(page_url, headers={"Accept": _ACCEPT}, stream=True, timeout=(timeout, timeout)) as r:
                if r.status_code == 404:
                    result.error = f"project {project!r} not found (HTTP 404)"
                    return result
                if r.status_code >= 400:
                    result.error = f"HTTP {r.status_code} {r.reason or ''}".strip()
                    return result
                body, first, _ = _read_capped(r, PAGE_CAP, t0 + timeout * deadline_factor, timeout)
                result.latency_ms = ((first or time.perf_counter()) - t0) * 1000
                files = _parse_page(body, r.headers.get("Content-Type", ""), r.url)
            versions = [(v, f) for f in files if (v := _version_of(f[0])) is not None]
            if versions:
                newest = max(v for v, _ in versions)
                result.newest = str(newest)
                candidates = [f for v, f in versions if v == newest]
                # A wheel is what bundles download; an sdist will do.
                sample = sorted(candidates, key=lambda f: (not f[0].endswith(".whl"), f[0]))[0]
                result.sample = sample[0]
                t1 = time.perf_counter()
                with session.get(sample[1], stream=True, timeout=(timeout, timeout)) as d:
                    if d.status_code >= 400:
                        result.error = f"file download failed: HTTP {d.status_code}"
                        return result
                    data, _, cut = _read_capped(d, cap, t1 + timeout * deadline_factor, timeout)
                elapsed = max(time.perf_counter() - t1, 1e-6)
                result.sample_bytes = len(data)
                result.throughput_bps = len(data) / elapsed
                if not cut and sample[2] and hashlib.sha256(data).hexdigest() != sample[2].lower():
                    result.error = f"sha256 of {sample[0]} does not match the index"
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
    from .confedit import atomic_write

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


# --------------------------------------------------------------------------- choosing indexes


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def index_urls(config: Config, index_url: str | None = None) -> list[str]:
    """The ranked list of PyPI-style index base URLs a download should try, in order.

    - ``index_url`` given (``--index-url``): ``[index_url]`` alone, no fallback.
    - Else the primary is the config's ``index_url``, else the mirror named by
      ``mirror`` (catalog or the user's ``mirrors`` table), else official PyPI.
    - Fallbacks follow when ``fallback`` is true, or ``auto`` and the primary is a
      catalog mirror (or nothing was configured). A private index (not in the
      catalog) gets no public fallback under ``auto``, so a private package name can
      never be fetched from a public index. Fallbacks are catalog PyPI mirrors
      not marked ``"fallback": false``: ordered by the last ``offpkg mirror test``
      (if under 7 days old; working mirrors first) and then in catalog order,
      official PyPI first.

    URLs are returned with any credentials (the caller must redact before showing).
    Raises UsageError for an unknown ``mirror`` name.
    """
    if index_url:
        return [index_url]
    pypi = [m for m in known_mirrors(config) if m.kind == "pypi"]
    primary: str | None = config.get("index_url")
    public_primary = True
    if primary:
        public_primary = any(_same(primary, m.url) for m in catalog() if m.kind == "pypi")
    elif config.get("mirror"):
        m = find(pypi, config.get("mirror"), "pypi")[0]
        primary, public_primary = m.url, m.origin == "catalog"
    fallback = config.get("fallback")
    use_fallback = fallback is True or (fallback in ("auto", None) and public_primary)
    out: list[str] = [primary] if primary else []
    if not use_fallback:
        return out or [OFFICIAL_PYPI]
    candidates = [m for m in catalog() if m.kind == "pypi" and m.fallback]
    ranking = load_ranking(config.get("cache_dir")) if config.get("cache_dir") else []
    if ranking:
        # Working mirrors in tested order, then failed ones, then untested ones in catalog order.
        urls = {m.name: redact_url(m.url) for m in candidates}
        ranked = [e for e in ranking if e["name"] in urls and _same(str(e.get("url", "")), urls[e["name"]])]
        pos = {e["name"]: i for i, e in enumerate(sorted(ranked, key=lambda e: not e.get("ok")))}
        catalog_pos = {m.name: i for i, m in enumerate(candidates)}
        candidates.sort(key=lambda m: pos.get(m.name, len(pos) + catalog_pos[m.name]))
    for m in candidates:
        if not any(_same(m.url, u) for u in out):
            out.append(m.url)
    return out


def torch_index_base(config: Config) -> str:
    """Base of the PyTorch wheel index; ``<base>/<variant>`` (cpu, cu126, ...) is a PEP 503 index.

    ``torch_index_url`` from the config wins; else a pytorch mirror of the same name as
    the configured ``mirror`` if its layout is a simple index (user-defined pytorch
    mirrors are assumed to be); else https://download.pytorch.org/whl.
    """
    url = config.get("torch_index_url")
    if url:
        return url.rstrip("/")
    name = config.get("mirror")
    if name:
        for m in known_mirrors(config):
            if m.kind == "pytorch" and m.name == name and m.layout == "pep503":
                return m.url.rstrip("/")
    return OFFICIAL_TORCH


# --------------------------------------------------------------------------- mirror use


def _host(url: str) -> str:
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def pip_conf_change(path: Path, mirror: Mirror, *, timeout: int | None = None) -> FileChange:
    """The edit of one pip.conf that makes ``mirror`` the index (other lines untouched)."""
    old = read_text(path)
    doc = IniDoc(old or "", path=path)
    notes: list[str] = []
    previous = doc.get("global", "index-url")
    doc.set("global", "index-url", mirror.url)
    # A command section wins over [global] in pip, so it must point at the mirror too.
    for section in ("install", "download"):
        if doc.get(section, "index-url") is not None:
            doc.set(section, "index-url", mirror.url)
            notes.append(f"also set index-url in [{section}], which overrides [global]")
    trusted = doc.get_list("global", "trusted-host")
    new_trusted = list(trusted)
    if previous and previous.startswith("http://") and not _same(previous, mirror.url):
        # The host trusted for the previous plain-http index is no longer needed.
        new_trusted = [h for h in new_trusted if h != _host(previous)]
    if mirror.url.startswith("http://") and _host(mirror.url) not in new_trusted:
        new_trusted.append(_host(mirror.url))
        notes.append(f"{_host(mirror.url)} added to trusted-host: the mirror is plain http")
    if new_trusted != trusted:
        doc.set("global", "trusted-host", new_trusted)
    if timeout is not None:
        doc.set("global", "timeout", str(timeout))
    elif doc.get("global", "timeout") is None and doc.get("global", "default-timeout") is None:
        doc.set("global", "timeout", str(PIP_TIMEOUT))
    return FileChange(Path(path), old, doc.text(), "pip", notes)


def condarc_change(path: Path, mirror: Mirror) -> FileChange:
    """The edit of one .condarc that routes conda's channels through ``mirror``."""
    old = read_text(path)
    doc = CondarcDoc(old or "", path=path)
    notes: list[str] = []
    try:
        custom = doc.get("custom_channels") if "custom_channels" in doc.keys() else {}
        doc.get("default_channels")
        doc.get("channels")
    except UnsupportedYaml as exc:
        raise InputError(f"{path}: cannot edit the channel settings safely ({exc})",
                         hint="write channels, default_channels and custom_channels in plain block style, "
                              "or pass another file with --condarc") from None
    if not isinstance(custom, dict):
        custom = {}
    if "channels" not in doc.keys():
        doc.set("channels", ["defaults"])
    mirror_urls = {u.rstrip("/") for m in catalog() if m.kind == "conda" for _, u in m.custom_channels}
    if mirror.name == OFFICIAL and mirror.origin == "catalog":
        # Back to conda's built-ins: drop the redirections offpkg (or a catalog recipe) put there.
        if doc.remove("default_channels"):
            notes.append("default_channels removed: conda uses repo.anaconda.com")
        stale = [k for k, v in custom.items() if str(v).rstrip("/") in mirror_urls]
        if stale:
            doc.update_map("custom_channels", {}, remove=stale)
            notes.append("custom_channels pointing at a mirror removed: " + ", ".join(stale))
    else:
        if doc.get("default_channels") != list(mirror.default_channels):
            doc.set("default_channels", list(mirror.default_channels))
        # Only the channels the mirror carries are redirected; the user's own entries stay.
        updates = {k: v for k, v in mirror.custom_channels if custom.get(k) != v}
        if updates:
            doc.update_map("custom_channels", updates)
        if doc.get("show_channel_urls") is not True:
            doc.set("show_channel_urls", True)
    return FileChange(Path(path), old, doc.text(), "conda", notes)


@dataclass
class UsePlan:
    name: str
    changes: list[FileChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_use(name: str, mirrors: Sequence[Mirror], *, pip_conf: Path | None, condarc: Path | None,
             write_pip: bool, write_conda: bool, timeout: int | None = None) -> UsePlan:
    """The file changes for ``offpkg mirror use NAME``.

    ``write_pip`` / ``write_conda`` say which files to write; a kind the mirror does
    not offer is skipped with a note unless it was the only one asked for.
    """
    entries = find(mirrors, name)
    by_kind = {m.kind: m for m in entries}
    plan = UsePlan(name)
    if write_pip and "pypi" in by_kind and pip_conf is not None:
        plan.changes.append(pip_conf_change(pip_conf, by_kind["pypi"], timeout=timeout))
    elif write_pip and "pypi" not in by_kind:
        plan.notes.append(f"{name!r} has no PyPI mirror: pip.conf left alone")
    if write_conda and "conda" in by_kind and condarc is not None:
        plan.changes.append(condarc_change(condarc, by_kind["conda"]))
    elif write_conda and "conda" not in by_kind:
        plan.notes.append(f"{name!r} has no conda mirror: .condarc left alone")
    if not plan.changes:
        kinds = ", ".join(sorted(by_kind))
        raise UsageError(f"mirror {name!r} offers {kinds}; nothing to write for the files asked for",
                         hint="pytorch mirrors are set with torch_index_url in offpkg's config, not in pip.conf"
                         if set(by_kind) == {"pytorch"} else None)
    return plan
