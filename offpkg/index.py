"""Read package indexes: PEP 691 JSON, PEP 503 HTML and local find-links folders.

Used after resolution to pick, for every pinned distribution, the one file that
fits the target best, with the index's own sha256 to verify the download against.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from .errors import InputError, NetworkError
from .redact import redact_url

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


def _parse_html(text: str, page_url: str, base: str) -> list[DistFile]:
    parser = _LinkParser()
    parser.feed(text)
    out = []
    for a in parser.links:
        href = a.get("href")
        if not href:
            continue
        url = urljoin(page_url, href)
        path, _, frag = url.partition("#")
        filename = unquote(path.rsplit("/", 1)[-1])
        sha = None
        m = re.match(r"sha256=([0-9a-fA-F]{64})", frag)
        if m:
            sha = m.group(1).lower()
        yanked = "data-yanked" in a
        out.append(DistFile(filename, path, sha, a.get("data-requires-python"), yanked, None, base))
    return out


def _parse_json(data: dict, page_url: str, base: str) -> list[DistFile]:
    out = []
    for f in data.get("files", []):
        url = urljoin(page_url, f["url"])
        sha = (f.get("hashes") or {}).get("sha256")
        out.append(DistFile(f["filename"], url.partition("#")[0], sha.lower() if sha else None,
                            f.get("requires-python"), bool(f.get("yanked")), f.get("size"), base))
    return out


class IndexClient:
    """Looks up the files of a project on a list of indexes and find-links folders."""

    def __init__(self, index_urls: list[str], find_links: list[str] | None = None,
                 session: requests.Session | None = None, timeout: float = 30.0) -> None:
        self.index_urls = [u.rstrip("/") + "/" for u in index_urls]
        self.find_links = list(find_links or [])
        self.session = session or make_session()
        self.timeout = timeout
        self._local: list[DistFile] | None = None

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

    def project_page(self, base: str, name: str) -> list[DistFile]:
        url = urljoin(base, canonicalize_name(name) + "/")
        if url.startswith("file://"):
            path = Path(unquote(urlsplit(url).path))
            for candidate in (path / "index.html", path):
                if candidate.is_file():
                    return _parse_html(candidate.read_text(encoding="utf-8"), candidate.as_uri(), base)
            return []
        try:
            r = self.session.get(url, headers={"Accept": _ACCEPT}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise NetworkError(f"cannot reach the index {redact_url(base)}: {type(exc).__name__}",
                               hint="check the network or choose another mirror (`offpkg mirror test`)") from None
        if r.status_code == 404:
            return []
        if r.status_code >= 400:
            raise NetworkError(f"the index {redact_url(base)} answered HTTP {r.status_code} for {name}")
        ctype = r.headers.get("Content-Type", "")
        if "json" in ctype:
            try:
                return _parse_json(r.json(), r.url, base)
            except (ValueError, KeyError, TypeError):
                raise NetworkError(f"the index {redact_url(base)} sent malformed JSON for {name}") from None
        return _parse_html(r.text, r.url, base)

    def files(self, name: str) -> list[DistFile]:
        """Every file of ``name`` on every index and find-links folder, in index order."""
        cname = canonicalize_name(name)
        out: list[DistFile] = []
        for base in self.index_urls:
            out.extend(self.project_page(base, name))
        for f in self._local_files():
            nv = f.name_version()
            if nv and canonicalize_name(nv[0]) == cname:
                out.append(f)
        return out

    def files_many(self, names: list[str], workers: int = 8) -> dict[str, list[DistFile]]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(names, pool.map(self.files, names)))


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
    return s


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
