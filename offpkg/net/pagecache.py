"""The index page cache: project pages on disk, reused per HTTP caching rules."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .session import ACCEPT as _ACCEPT


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
