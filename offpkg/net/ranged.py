"""Read parts of a remote file through HTTP range requests, and a wheel's METADATA without downloading it.

A wheel is a zip whose central directory sits at its end, so :class:`RangeFile`
lets :mod:`zipfile` read one member (``*.dist-info/METADATA``, ``torch/version.py``)
with a few small requests instead of fetching a multi-GB torch wheel. Every request
goes through the caller's session (CA, proxies) with the URL's credentials
(:func:`offpkg.net.index.url_auth`), like the rest of the network layer.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import requests

from ..errors import NetworkError
from ..redact import redact_url
from .index import url_auth

# The most bytes one member read may pull (a METADATA or version.py is a few KB).
MEMBER_CAP = 8 << 20


class RangesUnsupported(NetworkError):
    """The server does not answer range requests (it sent the whole file or no length)."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; each read is one ``Range: bytes=a-b`` request."""

    def __init__(self, url: str, session: requests.Session, timeout: float = 30.0, *, size: int | None = None,
                 cap: int = MEMBER_CAP) -> None:
        self.url, self.session, self.timeout, self.cap = url, session, timeout, cap
        self.pos = 0
        self.fetched = 0  # bytes read so far (bounded by cap)
        self.size = size if size is not None else self._size()

    def _get(self, first: int, last: int) -> bytes:
        try:
            r = self.session.get(self.url, headers={"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"},
                                 timeout=self.timeout, auth=url_auth(self.url), stream=True)
        except requests.RequestException as exc:
            raise NetworkError(f"cannot read {redact_url(self.url)}: {type(exc).__name__}") from None
        with r:
            if r.status_code == 200:
                raise RangesUnsupported(f"{redact_url(self.url)} does not answer range requests")
            if r.status_code != 206:
                raise NetworkError(f"{redact_url(self.url)} answered HTTP {r.status_code} to a range request",
                                   hint="check the index URL and its credentials" if r.status_code in (401, 403)
                                   else None)
            want = last - first + 1
            data = r.raw.read(want + 1, decode_content=False)
        if len(data) != want:
            raise RangesUnsupported(f"{redact_url(self.url)} sent {len(data)} bytes for a {want}-byte range")
        self.fetched += len(data)
        if self.fetched > self.cap:
            raise NetworkError(f"reading {redact_url(self.url)} would take more than {self.cap} bytes: refused")
        return data

    def _size(self) -> int:
        try:
            r = self.session.get(self.url, headers={"Range": "bytes=-1", "Accept-Encoding": "identity"},
                                 timeout=self.timeout, auth=url_auth(self.url), stream=True)
        except requests.RequestException as exc:
            raise NetworkError(f"cannot read {redact_url(self.url)}: {type(exc).__name__}") from None
        with r:
            total = (r.headers.get("Content-Range") or "").rpartition("/")[2]
            if r.status_code != 206 or not total.isdigit():
                raise RangesUnsupported(f"{redact_url(self.url)} does not answer range requests")
        return int(total)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, min(self.size, base + pos))
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.size - self.pos)
        if n <= 0:
            return 0
        data = self._get(self.pos, self.pos + n - 1)
        b[:n] = data
        self.pos += n
        return n


def read_zip_member(url: str, session: requests.Session, wanted: Any, *, timeout: float = 30.0,
                    size: int | None = None) -> tuple[str, bytes] | None:
    """(name, bytes) of the first member of the remote zip at ``url`` for which ``wanted(name)`` is true.

    Reads only the central directory and that member (buffered in 64 KB reads).
    Raises RangesUnsupported when the server answers no ranges, NetworkError otherwise.
    """
    raw = RangeFile(url, session, timeout, size=size)
    try:
        with zipfile.ZipFile(io.BufferedReader(raw, 1 << 16)) as z:
            for name in z.namelist():
                if wanted(name):
                    info = z.getinfo(name)
                    if info.file_size > MEMBER_CAP:
                        raise NetworkError(f"{redact_url(url)}: {name} is {info.file_size} bytes: refused")
                    return name, z.read(name)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise NetworkError(f"{redact_url(url)} is not a readable zip: {exc}") from None
    return None


def fetch_metadata(url: str, session: requests.Session, *, timeout: float = 30.0,
                   size: int | None = None) -> str:
    """A remote wheel's METADATA: PEP 658 ``<url>.metadata`` first, else a range read of the wheel.

    Never downloads the whole wheel. Raises NetworkError (RangesUnsupported when
    neither a .metadata file nor range requests are served).
    """
    meta = url.split("#", 1)[0] + ".metadata"
    try:
        r = session.get(meta, timeout=timeout, auth=url_auth(meta))
    except requests.RequestException as exc:
        raise NetworkError(f"cannot read {redact_url(meta)}: {type(exc).__name__}") from None
    if r.status_code == 200 and r.text.lstrip().startswith("Metadata-Version"):
        return r.text
    if r.status_code in (401, 403):
        raise NetworkError(f"{redact_url(meta)} answered HTTP {r.status_code}",
                           hint="check the index URL and its credentials")

    def is_metadata(name: str) -> bool:
        parts = name.split("/")
        return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"

    got = read_zip_member(url.split("#", 1)[0], session, is_metadata, timeout=timeout, size=size)
    if got is None:
        raise NetworkError(f"{redact_url(url)} has no .dist-info/METADATA: it is not a valid wheel")
    return got[1].decode("utf-8", errors="replace")
