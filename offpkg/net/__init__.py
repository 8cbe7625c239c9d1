"""The one network layer: sessions, index pages, the page cache, downloads and the content cache.

Every HTTP request offpkg makes goes through this package, so ``mirror test``, ``bundle``,
``lock``, the CUDA lookups and fleet uploads agree on CA bundle, proxies, credentials,
retries and redaction. Modules, by concept:

- :mod:`.session`   the session factory (CA, proxies, URL/netrc auth, log redaction), ``get`` with retries
- :mod:`.pages`     the PEP 503/691 page parser, :class:`DistFile`, index URL helpers
- :mod:`.pagecache` index pages on disk, reused per HTTP caching rules
- :mod:`.index`     :class:`IndexClient`: project pages over indexes, mirrors and find-links
- :mod:`.fetch`     parallel, resumable, hash-verified downloads into the cache
- :mod:`.cache`     the content-addressed download cache
- :mod:`.ranged`    range requests: parts of a remote file (one member of a wheel, its METADATA)

The stable API is the functions below (``make_session``, ``request``, ``get``, ``get_page``,
``project_files``, ``download``, ``read_range``, ``open_remote``, ``wheel_metadata``) and the names they return. They import their
modules lazily: ``import offpkg.net`` does not load requests, so commands that never
touch the network (``verify``, ``install``) do not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from .fetch import Fetched
    from .pages import DistFile
    from .session import Session

# Function names differ from the module names on purpose: ``offpkg.net.fetch`` is the module,
# ``offpkg.net.download`` the function (an import of a submodule would replace a same-named function).
__all__ = ["make_session", "request", "get", "get_page", "project_files", "download", "read_range", "open_remote",
           "wheel_metadata"]


def make_session(pool: int = 16, *, user_agent: str | None = None) -> Session:
    """A new HTTP session: the machine's CA bundle, proxies, URL/netrc credentials, redacted logs."""
    from .session import make_session as _make

    return _make(pool, user_agent=user_agent)


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """Any HTTP request (e.g. an upload: ``data=bytes``) with the same retries (see :func:`.session.request`)."""
    from .session import request as _request

    return _request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> requests.Response:
    """GET with retries on connection errors, timeouts and 5xx/429 (see :func:`.session.get`)."""
    from .session import get as _get

    return _get(url, **kwargs)


def get_page(url: str, *, session: requests.Session | None = None, timeout: float = 30.0,
             retries: int = 2) -> list[DistFile]:
    """The files listed on one simple-index page (PEP 691 JSON or PEP 503 HTML) at ``url``.

    ``[]`` for a 404; :class:`~offpkg.errors.NetworkError` for other failures (after retries).
    Not cached; use :func:`project_files` (or an :class:`.index.IndexClient`) for that.
    """
    from ..errors import NetworkError
    from ..redact import redact_url
    from .pages import parse_page
    from .session import ACCEPT, get as _get

    r = _get(url, session=session, headers={"Accept": ACCEPT}, timeout=timeout, retries=retries)
    if r.status_code == 404:
        return []
    if r.status_code >= 400:
        raise NetworkError(f"{redact_url(url)} answered HTTP {r.status_code}",
                           hint="check the index URL and its credentials" if r.status_code in (401, 403) else None)
    try:
        return parse_page(r.content, r.headers.get("Content-Type", ""), r.url, url, encoding=r.encoding)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise NetworkError(f"{redact_url(url)} sent a malformed index page") from None


def project_files(name: str, index_urls: list[str], *, find_links: list[str] | None = None,
                  page_cache: Path | None = None, timeout: float = 30.0) -> list[DistFile]:
    """Every file of project ``name`` on ``index_urls`` (in order) and ``find_links`` folders."""
    from .index import IndexClient

    return IndexClient(index_urls, find_links, timeout=timeout, page_cache=page_cache).files(name)


def download(file: DistFile, *, cache: Path | None = None, timeout: float = 30.0,
          session: requests.Session | None = None) -> Fetched:
    """Download one file into the content cache (resumable, sha256-verified); the cached copy."""
    from .cache import Cache
    from .fetch import Fetcher, FetchPolicy, FetchRequest

    return Fetcher(Cache(cache), FetchPolicy(timeout=timeout), session=session).fetch(FetchRequest(file))


def read_range(url: str, start: int, end: int, **kwargs: Any) -> bytes:
    """Bytes ``[start, end)`` of ``url`` by an HTTP range request (never the whole file)."""
    from .ranged import read_range as _read_range

    return _read_range(url, start, end, **kwargs)


def open_remote(url: str, **kwargs: Any) -> Any:
    """A seekable read-only file over ``url`` (range requests): ``zipfile.ZipFile(open_remote(url))``."""
    from .ranged import RangeFile

    return RangeFile(url, **kwargs)


def wheel_metadata(file: DistFile, *, session: requests.Session | None = None, timeout: float = 30.0) -> str | None:
    """A remote wheel's METADATA without downloading the wheel: the index's PEP 658 ``.metadata``
    file where the page advertises one, else the ``*.dist-info/METADATA`` member read by range
    requests (then ``.metadata`` once more, for an index that serves it unadvertised). None when
    neither works; never the whole wheel. (:func:`.ranged.fetch_metadata` raises instead.)"""
    from ..errors import NetworkError
    from .ranged import fetch_metadata

    try:
        return fetch_metadata(file.url, session, timeout=timeout, size=file.size, pep658=file.has_metadata)
    except NetworkError:
        return None
