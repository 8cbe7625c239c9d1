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

Sessions, retries and credentials come from :mod:`offpkg.net.session`, parsing from
:mod:`offpkg.net.pages`, the page cache from :mod:`offpkg.net.pagecache`; their names
are re-exported here for callers that import them from this module.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from packaging.utils import canonicalize_name

from ..errors import AuthError, InputError, NetworkError
from ..redact import redact_url
from .pagecache import PageCache
from .pages import DistFile, Page, normalise_base, parse_html, parse_page, project_url
from .session import (ACCEPT, RETRY_STATUS, IndexUnavailable, get, make_session, redact_library_logs,
                      register_url_secrets, url_auth)

__all__ = ["ACCEPT", "RETRY_STATUS", "DistFile", "IndexClient", "IndexUnavailable", "Page", "PageCache",
           "make_session", "normalise_base", "project_url", "redact_library_logs", "register_url_secrets",
           "url_auth"]


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
                    return parse_html(candidate.read_text(encoding="utf-8"), candidate.as_uri(), base)
            return []
        pc = self.page_cache
        hit = pc.load(url) if pc is not None else None
        if hit is not None and fresh_ok and pc.fresh(hit[0]):
            files = self._parse_cached(hit, base)
            if files is not None:
                return files
            hit = None  # unreadable: fetch it again, unconditionally
        headers = {"Accept": ACCEPT}
        if hit is not None:
            headers.update(pc.validators(hit[0]))
        r = get(url, session=self.session, headers=headers, timeout=self.timeout, retries=self.retries,
                backoff=self.backoff, what=f"the index {redact_url(base)} for {name}")
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
        try:
            files = parse_page(r.content, r.headers.get("Content-Type", ""), r.url, base, encoding=r.encoding)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NetworkError(f"the index {redact_url(base)} sent a malformed page for {name}") from None
        if pc is not None and r.status_code == 200 and not getattr(files, "has_secrets", True):
            pc.store(url, r, r.content)
        return files

    @staticmethod
    def _parse_cached(hit: tuple[dict, bytes], base: str) -> list[DistFile] | None:
        """The files of a stored page, or None when it cannot be parsed (then it is fetched again)."""
        meta, body = hit
        page_url = meta.get("final_url") or base
        try:
            return parse_page(body, meta.get("content_type") or "", page_url, base, encoding=meta.get("encoding"))
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
