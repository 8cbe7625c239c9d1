"""Read package indexes: PEP 691 JSON, PEP 503 HTML and local find-links folders.

Used after resolution to pick, for every pinned distribution, the one file that
fits the target best, with the index's own sha256 to verify the download against.

Mirrors: the primary index (the first of ``index_urls``) may have fallbacks,
alternate mirrors of the same index. A project page that cannot be fetched from
the primary (connection error, timeout, 5xx, after a few jittered retries) is
fetched from the next mirror, and a mirror found unreachable is skipped for the
rest of the run. A 404 is an answer, not a failure: the project is absent.
Every file found carries the other mirrors (``DistFile.mirrors``) so that a
download failing later can look the same file up there (:meth:`IndexClient.alternates`);
only the same filename with the same sha256 is ever accepted from another mirror.
"""

from __future__ import annotations

import email.utils
import hashlib
import html.parser
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from ..errors import AuthError, InputError, NetworkError
import logging

from ..redact import redact_text, redact_url, register_secret, secrets_in_url

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True)
class DistFile:
    filename: str
    url: str  # http(s)://, file:// or a local path for find-links
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    size: int | None = None
    index: str = ""  # the base URL (or folder) it was found in
    # Other mirrors of the index it was found in, in order: where to look for the
    # same file (same name, same sha256) when its download fails.
    mirrors: tuple[str, ...] = ()

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz"))

    def name_version(self) -> tuple[str, Version] | None:
        try:
            if self.is_wheel:
                n, v, _, _ = parse_wheel_filename(self.filename)
                return n, v
            if self.filename.endswith((".tar.gz", ".zip")):
                n, v = parse_sdist_filename(self.filename)
                return n, v
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            return None
        return None

    @property
    def local_path(self) -> Path | None:
        if self.url.startswith("file://"):
            return Path(unquote(urlsplit(self.url).path))
        if "://" not in self.url:
            return Path(self.url)
        return None


class _LinkParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


class _Page(list):
    """Files parsed from an index page; ``has_secrets``: a link carried credentials or a signature."""

    has_secrets: bool = False


def _parse_html(text: str, page_url: str, base: str) -> list[DistFile]:
    parser = _LinkParser()
    parser.feed(text)
    out = _Page()
    for a in parser.links:
        href = a.get("href")
        if not href:
            continue
        url = urljoin(page_url, href)
        if register_url_secrets(url):
            out.has_secrets = True
        path, _, frag = url.partition("#")
        # The name is the last path segment: a presigned link's ?X-Amz-Signature=... is not part of it.
        filename = unquote(urlsplit(path).path.rsplit("/", 1)[-1])
        sha = None
        m = re.match(r"sha256=([0-9a-fA-F]{64})", frag)
        if m:
            sha = m.group(1).lower()
        yanked = "data-yanked" in a
        out.append(DistFile(filename, path, sha, a.get("data-requires-python"), yanked, None, base))
    return out


def _parse_json(data: dict, page_url: str, base: str) -> list[DistFile]:
    out = _Page()
    for f in data.get("files", []):
        url = f["url"]
        # Most indexes (PyPI) link absolute URLs: no join needed (tens of thousands per run).
        if not url.startswith(("https://", "http://")) or "/." in url:
            url = urljoin(page_url, url)
        if register_url_secrets(url):
            out.has_secrets = True
        sha = (f.get("hashes") or {}).get("sha256")
        out.append(DistFile(f["filename"], url.partition("#")[0], sha.lower() if sha else None,
                            f.get("requires-python"), bool(f.get("yanked")), f.get("size"), base))
    return out


class IndexUnavailable(NetworkError):
    """An index could not be reached or failed (connection error, timeout, 5xx): a mirror may help."""


# Server errors worth a retry (and then another mirror); 4xx other than 429 are answers.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527})


def normalise_base(url: str) -> str:
    """An index base URL ending in ``/`` (before any query string, which is kept)."""
    if "://" not in url or url.startswith("file://"):
        return url.rstrip("/") + "/"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", parts.query, ""))


def project_url(base: str, name: str) -> str:
    """``base`` + ``<canonical name>/``, keeping the base's query (``?token=`` indexes need it on every page)."""
    if base.startswith("file://") or "://" not in base:
        return urljoin(base, canonicalize_name(name) + "/")
    parts = urlsplit(base)
    path = urljoin(parts.path, canonicalize_name(name) + "/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class PageCache:
    """Index project pages on disk, reused per HTTP caching rules (a warm ``offpkg bundle``
    then asks the index nothing, or only "has it changed?").

    One file per page: ``<dir>/<sha256 of Accept + URL>.page``, a line of JSON metadata
    (content type, encoding, ETag, Last-Modified, when fetched, how long fresh) and then the
    body as received. Written to a temporary sibling and ``os.replace``d. A page is reused
    without a request while ``Cache-Control: max-age`` (minus ``Age``) says it is fresh
    (PyPI: 600 s), and otherwise revalidated with ``If-None-Match`` / ``If-Modified-Since``
    (304: reused). Never stored: error answers; ``no-store`` or ``private`` answers; pages
    whose URL (requested or final) has a query string or userinfo, that were fetched with
    an ``Authorization`` header, or that link any file with credentials or a signature: the
    cache must never hold a secret.
    """

    SUFFIX = ".page"

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, url: str) -> Path:
        return self.dir / (hashlib.sha256(f"{_ACCEPT}\n{url}".encode()).hexdigest() + self.SUFFIX)

    @staticmethod
    def cacheable_url(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and not parts.query and "@" not in parts.netloc

    def load(self, url: str) -> tuple[dict, bytes] | None:
        if not self.cacheable_url(url):
            return None
        try:
            raw = self.path(url).read_bytes()
            head, _, body = raw.partition(b"\n")
            meta = json.loads(head)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url_sha256") != _url_digest(url) or len(body) != meta.get("size"):
            return None  # another URL's page (a hash collision is not going to happen), or a torn file
        return meta, body

    @staticmethod
    def fresh(meta: dict) -> bool:
        return time.time() < float(meta.get("fresh_until") or 0)

    @staticmethod
    def validators(meta: dict) -> dict[str, str]:
        if meta.get("etag"):
            return {"If-None-Match": meta["etag"]}
        if meta.get("last_modified"):
            return {"If-Modified-Since": meta["last_modified"]}
        return {}

    def store(self, url: str, r: requests.Response, body: bytes, meta: dict | None = None) -> None:
        """Store (or, after a 304, refresh) ``url``'s page from response ``r``; never raises."""
        try:
            cc = _cache_control(r.headers.get("Cache-Control", ""))
            if "no-store" in cc or "private" in cc or r.request.headers.get("Authorization"):
                return
            if not (self.cacheable_url(url) and self.cacheable_url(r.url or url)):
                return
            now = time.time()
            fresh_for = 0.0
            if "no-cache" not in cc and cc.get("max-age", "").isdigit():
                age = r.headers.get("Age", "0")
                fresh_for = max(0.0, int(cc["max-age"]) - (int(age) if age.isdigit() else 0))
            if meta is None:  # a 200: its own validators
                meta = {"content_type": r.headers.get("Content-Type", ""), "encoding": r.encoding,
                        "final_url": r.url or url, "etag": r.headers.get("ETag")}
                meta["last_modified"] = _trusted_last_modified(r.headers, now)
            elif r.headers.get("ETag"):
                meta = meta | {"etag": r.headers["ETag"]}
            if not (fresh_for or meta.get("etag") or meta.get("last_modified")):
                return  # nothing would let us reuse it
            meta = meta | {"url_sha256": _url_digest(url), "fetched_at": now, "fresh_until": now + fresh_for,
                           "size": len(body)}
            dest = self.path(url)
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(json.dumps(meta).encode() + b"\n")
                    fh.write(body)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        except (OSError, ValueError, TypeError):
            return  # a cache that cannot be written only costs time


def _url_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _cache_control(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.lower().split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k] = v.strip().strip('"')
    return out


def _trusted_last_modified(headers: requests.structures.CaseInsensitiveDict, now: float) -> str | None:
    """Last-Modified, if usable for ``If-Modified-Since``: it has one-second granularity and
    plain file servers answer 304 when the file is not newer, so a page changed within the
    same second as the one we saw would look unchanged. Trusted only when the server's clock
    (``Date``) was at least 2 s past it when we fetched: any later change is then visibly newer."""
    lm = headers.get("Last-Modified")
    if not lm:
        return None
    try:
        lm_ts = email.utils.parsedate_to_datetime(lm).timestamp()
        date = headers.get("Date")
        server_now = email.utils.parsedate_to_datetime(date).timestamp() if date else now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return lm if server_now - lm_ts >= 2 else None


class IndexClient:
    """Looks up the files of a project on a list of indexes and find-links folders.

    ``fallbacks`` are alternate mirrors of the primary index (``index_urls[0]``),
    tried in order when the primary fails; ``retries``/``backoff`` bound the
    jittered retries of one page on one mirror.
    """

    def __init__(self, index_urls: list[str], find_links: list[str] | None = None,
                 session: requests.Session | None = None, timeout: float = 30.0, *,
                 fallbacks: list[str] | tuple[str, ...] = (), retries: int = 2, backoff: float = 0.25,
                 page_cache: Path | None = None) -> None:
        for u in [*index_urls, *fallbacks]:
            register_url_secrets(u)
        self.index_urls = [normalise_base(u) for u in index_urls]
        self.find_links = list(find_links or [])
        self.session = session or make_session()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # Where project pages are cached between runs (None: not at all); see PageCache.
        self.page_cache = PageCache(page_cache) if page_cache is not None else None
        self.fallbacks: list[str] = []
        self.use_fallbacks(fallbacks)
        # Mirrors found unreachable in this run, and what happened (for the user).
        self.dead: set[str] = set()
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._local: list[DistFile] | None = None

    def use_fallbacks(self, fallbacks: list[str] | tuple[str, ...]) -> None:
        """Add alternate mirrors of the primary index (duplicates and the primary itself are ignored)."""
        for u in fallbacks:
            b = normalise_base(u)
            if b not in self.fallbacks and b not in self.index_urls[:1]:
                self.fallbacks.append(b)

    def _local_files(self) -> list[DistFile]:
        if self._local is None:
            files = []
            for d in self.find_links:
                p = Path(d)
                if d.startswith("file://"):
                    p = Path(unquote(urlsplit(d).path))
                if not p.is_dir():
                    raise InputError(f"--find-links {d} is not a folder")
                for f in sorted(p.iterdir()):
                    if f.is_file() and (f.name.endswith(".whl") or f.name.endswith((".tar.gz", ".zip"))):
                        files.append(DistFile(f.name, str(f.resolve()), None, None, False, f.stat().st_size, str(p)))
            self._local = files
        return self._local

    def project_page(self, base: str, name: str, *, fresh_ok: bool = True) -> list[DistFile]:
        """The files of ``name`` on one index; [] when it has no such project (404).

        Raises :class:`IndexUnavailable` when the index cannot answer (after retries).
        ``fresh_ok=False`` always asks the index (to learn whether it is up), if only whether
        the cached page changed.
        """
        base = normalise_base(base)
        url = project_url(base, name)
        if url.startswith("file://"):
            path = Path(unquote(urlsplit(url).path))
            for candidate in (path / "index.html", path):
                if candidate.is_file():
                    return _parse_html(candidate.read_text(encoding="utf-8"), candidate.as_uri(), base)
            return []
        pc = self.page_cache
        hit = pc.load(url) if pc is not None else None
        if hit is not None and fresh_ok and pc.fresh(hit[0]):
            files = self._parse_cached(hit, base)
            if files is not None:
                return files
            hit = None  # unreadable: fetch it again, unconditionally
        headers = {"Accept": _ACCEPT}
        if hit is not None:
            headers.update(pc.validators(hit[0]))
        attempt = 0
        while True:
            try:
                r = self.session.get(url, headers=headers, timeout=self.timeout, auth=url_auth(url))
            except requests.RequestException as exc:
                problem = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
            else:
                if r.status_code not in RETRY_STATUS:
                    break
                problem = f"HTTP {r.status_code}"
                r.close()
            attempt += 1
            if attempt > self.retries:
                raise IndexUnavailable(f"cannot reach the index {redact_url(base)} for {name}: {problem}",
                                       hint="check the network or choose another mirror (`offpkg mirror test`)")
            time.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random()))
        if r.status_code == 304 and hit is not None:  # unchanged: reuse the stored page, fresh again
            files = self._parse_cached(hit, base)
            if files is None:  # unreadable after all: drop it and ask again
                pc.path(url).unlink(missing_ok=True)
                return self.project_page(base, name, fresh_ok=fresh_ok)
            pc.store(url, r, hit[1], hit[0])
            return files
        if r.status_code == 404:
            return []
        if r.status_code in (401, 403):
            raise AuthError(f"the index {redact_url(base)} refused access (HTTP {r.status_code}) for {name}",
                            hint="check the index URL and its credentials (user:token@ in the URL, ~/.netrc, "
                                 "or the mirror's configuration)")
        if r.status_code >= 400:
            raise NetworkError(f"the index {redact_url(base)} answered HTTP {r.status_code} for {name}")
        ctype = r.headers.get("Content-Type", "")
        if "json" in ctype:
            try:
                files = _parse_json(r.json(), r.url, base)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise NetworkError(f"the index {redact_url(base)} sent malformed JSON for {name}") from None
        else:
            files = _parse_html(r.text, r.url, base)
        if pc is not None and r.status_code == 200 and not getattr(files, "has_secrets", True):
            pc.store(url, r, r.content)
        return files

    @staticmethod
    def _parse_cached(hit: tuple[dict, bytes], base: str) -> list[DistFile] | None:
        """The files of a stored page, or None when it cannot be parsed (then it is fetched again)."""
        meta, body = hit
        page_url = meta.get("final_url") or base
        try:
            if "json" in (meta.get("content_type") or ""):
                return _parse_json(json.loads(body), page_url, base)
            return _parse_html(body.decode(meta.get("encoding") or "utf-8", errors="replace"), page_url, base)
        except (ValueError, KeyError, TypeError, AttributeError, LookupError):
            return None

    def _group(self, i: int) -> list[str]:
        """The mirrors that serve index ``i``: the primary's fallbacks follow it."""
        return [self.index_urls[0], *self.fallbacks] if i == 0 else [self.index_urls[i]]

    def _page_from_mirrors(self, i: int, name: str) -> list[DistFile]:
        group = self._group(i)
        if len(group) == 1:
            return self.project_page(group[0], name)
        with self._lock:
            live = [b for b in group if b not in self.dead] or group
        errors: list[str] = []
        for base in live:
            try:
                files = self.project_page(base, name)
            except IndexUnavailable as exc:
                errors.append(exc.message)
                with self._lock:
                    if base not in self.dead:
                        self.dead.add(base)
                        self.notes.append(f"{exc.message}; using the next mirror for the rest of this run")
                continue
            others = tuple(b for b in group if b != base)
            return [replace(f, mirrors=others) for f in files]
        raise IndexUnavailable(f"no mirror of the index could be reached for {name}: " + "; ".join(errors),
                               hint="check the network, or rank the mirrors again with `offpkg mirror test`")

    def files(self, name: str) -> list[DistFile]:
        """Every file of ``name`` on every index and find-links folder, in index order."""
        cname = canonicalize_name(name)
        out: list[DistFile] = []
        for i in range(len(self.index_urls)):
            out.extend(self._page_from_mirrors(i, name))
        for f in self._local_files():
            nv = f.name_version()
            if nv and canonicalize_name(nv[0]) == cname:
                out.append(f)
        return out

    def alternates(self, f: DistFile) -> list[str]:
        """URLs of the very same file (same filename *and* sha256) on ``f.mirrors``, in order.

        A mirror that lists the filename with another sha256 (or none) is never
        offered: the bytes must be the ones the lock pinned. Unreachable mirrors are skipped.
        """
        nv = f.name_version()
        if not f.sha256 or not f.mirrors or nv is None:
            return []
        urls: list[str] = []
        for base in f.mirrors:
            if base in self.dead:
                continue
            try:
                page = self.project_page(base, nv[0])
            except NetworkError:
                continue
            for g in page:
                if g.filename == f.filename and g.sha256 == f.sha256 and g.url != f.url:
                    urls.append(g.url)
                    break
        return urls


def register_url_secrets(url: str) -> bool:
    """Remember the secrets of ``url`` (userinfo, tokens, signatures) so no text or log shows them.

    True when it had any. A URL with neither ``@`` nor ``?`` has no userinfo and no query: nothing to find.
    """
    if "@" not in url and "?" not in url:
        return False
    found = secrets_in_url(url)
    for secret in found:
        register_secret(secret)
    return bool(found)


def url_auth(url: str) -> tuple[str, str] | None:
    """HTTP basic auth from the URL's userinfo, ``token@`` and ``token:@`` included.

    requests drops a userinfo without a password (``token@host``) silently; pip
    and uv send it as the user name with an empty password, and so does offpkg.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


class _RedactLogs(logging.Filter):
    """urllib3's debug log prints request lines (``GET /simple/x/?token=...``): redact them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call is not ours to fix
            return True
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_LOG_FILTER = _RedactLogs()


def redact_library_logs() -> None:
    """Put the redacting filter on the loggers of the HTTP stack (filters do not propagate)."""
    for name in ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.response",
                 "urllib3.util.retry", "urllib3.poolmanager", "requests"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def make_session(pool: int = 16) -> requests.Session:
    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = f"offpkg/{__import__('offpkg').__version__}"
    # The machine's CA bundle (corporate proxies), not the index config.
    cert = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if cert and os.path.exists(cert):
        s.verify = cert
    s.trust_env = True
    redact_library_logs()
    return s


