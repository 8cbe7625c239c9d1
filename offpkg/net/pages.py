"""The one PEP 503 (HTML) / PEP 691 (JSON) simple-index page parser, and index URL helpers.

:func:`parse_page` turns a project page into :class:`DistFile` records (filename, URL,
the index's sha256, requires-python, yanked, size). Everything that reads an index page
(bundle, lock, ``mirror test``, CUDA lookups) parses it here.
"""

from __future__ import annotations

import html.parser
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from .session import register_url_secrets

SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")


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
    # PEP 658/714: the index serves the wheel's METADATA at ``url + ".metadata"``.
    has_metadata: bool = False

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith(SDIST_SUFFIXES)

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


class Page(list):
    """Files parsed from an index page; ``has_secrets``: a link carried credentials or a signature."""

    has_secrets: bool = False


class _LinkParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def parse_html(text: str, page_url: str, base: str = "") -> Page:
    """The files linked from a PEP 503 page (``<a href=...#sha256=...>``)."""
    parser = _LinkParser()
    parser.feed(text)
    out = Page()
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
        meta = a.get("data-core-metadata") or a.get("data-dist-info-metadata")
        out.append(DistFile(filename, path, sha, a.get("data-requires-python"), "data-yanked" in a, None, base,
                            has_metadata=meta is not None and meta != "false"))
    return out


def parse_json(data: dict, page_url: str, base: str = "") -> Page:
    """The files of a PEP 691 JSON page."""
    out = Page()
    for f in data.get("files", []):
        url = f["url"]
        # Most indexes (PyPI) link absolute URLs: no join needed (tens of thousands per run).
        if not url.startswith(("https://", "http://")) or "/." in url:
            url = urljoin(page_url, url)
        if register_url_secrets(url):
            out.has_secrets = True
        sha = (f.get("hashes") or {}).get("sha256")
        meta = f.get("core-metadata", f.get("dist-info-metadata"))
        out.append(DistFile(f["filename"], url.partition("#")[0], sha.lower() if sha else None,
                            f.get("requires-python"), bool(f.get("yanked")), f.get("size"), base,
                            has_metadata=bool(meta)))
    return out


def parse_page(body: bytes | str, content_type: str, page_url: str, base: str = "",
               encoding: str | None = None) -> Page:
    """Parse a simple-index page by its content type (JSON for PEP 691, else HTML).

    Raises ValueError (or KeyError/TypeError) for a malformed JSON page; the caller names the index.
    """
    import json

    if "json" in (content_type or ""):
        data = json.loads(body) if isinstance(body, (bytes, str)) else body
        if not isinstance(data, dict):
            raise ValueError("a PEP 691 page is a JSON object")
        return parse_json(data, page_url, base)
    text = body if isinstance(body, str) else body.decode(encoding or "utf-8", errors="replace")
    return parse_html(text, page_url, base)


def normalise_base(url: str) -> str:
    """An index base URL ending in ``/`` (before any query string, which is kept)."""
    if "://" not in url or url.startswith("file://"):
        return url.rstrip("/") + "/"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", parts.query, ""))


def project_url(base: str, name: str) -> str:
    """``base`` + ``<canonical name>/``, keeping the base's query (``?token=`` indexes need it on every page)."""
    base = normalise_base(base)
    if base.startswith("file://") or "://" not in base:
        return urljoin(base, canonicalize_name(name) + "/")
    parts = urlsplit(base)
    path = urljoin(parts.path, canonicalize_name(name) + "/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
