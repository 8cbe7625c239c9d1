"""Read parts of a remote file through HTTP range requests, and a wheel's METADATA without downloading it.

A wheel is a zip whose central directory sits at its end, so :class:`RangeFile` lets
:mod:`zipfile` read one member (``*.dist-info/METADATA``, ``torch/version.py``) with a
few small requests instead of fetching a multi-GB torch wheel: the first request reads
the file's last 64 KiB (the end record and, for most wheels, the whole central
directory), later reads are at least 16 KiB and kept. :func:`read_range` reads one
byte range. Requests go through the network layer's session (CA, proxies, the URL's
credentials) with its retries. A server that ignores ``Range`` (answers 200 with the
whole body) is refused with :class:`RangesUnsupported` instead of silently
downloading everything, and every read is bounded (``cap``).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from typing import Any

import requests
import urllib3

from ..errors import NetworkError
from ..redact import redact_url
from .session import DEFAULT_TIMEOUT, describe, get

# The most bytes one RangeFile may pull (a METADATA or version.py is a few KB).
MEMBER_CAP = 8 << 20
# The first request reads the file's last TAIL bytes: the zip's end record and, for most
# wheels, its whole central directory. Later reads ask for at least READ_AHEAD bytes, so a
# member's local header, name and data (zipfile reads them separately) take one request.
TAIL = 64 << 10
READ_AHEAD = 16 << 10

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RangesUnsupported(NetworkError):
    """The server does not answer range requests (it sent the whole file, or another range)."""


RangeNotSupported = RangesUnsupported  # the name offpkg.net's first API used


def _range_get(url: str, header: str, *, session: requests.Session | None, timeout: float,
               retries: int) -> tuple[bytes, int, int | None]:
    """One range request: (body, its first byte, the file's total size or None)."""
    r = get(url, session=session, headers={"Range": header, "Accept-Encoding": "identity"}, timeout=timeout,
            retries=retries, stream=True)
    with r:
        if r.status_code == 416:
            raise NetworkError(f"{redact_url(url)}: range {header[6:]} is outside the file")
        if r.status_code >= 400:
            raise NetworkError(f"{redact_url(url)} answered HTTP {r.status_code} to a range request",
                               hint="check the index URL and its credentials" if r.status_code in (401, 403) else None)
        m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
        if r.status_code != 206 or not m:
            raise RangesUnsupported(f"{redact_url(url)} does not answer range requests (HTTP {r.status_code})",
                                    hint="the whole file would have to be downloaded")
        first, last = int(m.group(1)), int(m.group(2))
        try:
            body = r.raw.read(last - first + 1, decode_content=False)
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # reset, timeout mid-body
            raise NetworkError(f"{redact_url(url)}: {describe(exc)} while reading bytes {first}-{last}",
                               hint="check the network, or try again") from None
        if len(body) != last - first + 1:
            raise NetworkError(f"{redact_url(url)}: connection closed after {len(body)} of {last - first + 1} bytes")
        total = None if m.group(3) == "*" else int(m.group(3))
        return body, first, total


def read_range(url: str, start: int, end: int, *, session: requests.Session | None = None,
               timeout: float = DEFAULT_TIMEOUT, retries: int = 2) -> bytes:
    """Bytes ``[start, end)`` of ``url`` (a negative ``start`` with ``end=0``: the last ``-start`` bytes)."""
    if start < 0 and end == 0:
        body, _, _ = _range_get(url, f"bytes={start}", session=session, timeout=timeout, retries=retries)
        return body
    if not 0 <= start < end:
        raise ValueError(f"bad range [{start}, {end})")
    body, first, _ = _range_get(url, f"bytes={start}-{end - 1}", session=session, timeout=timeout, retries=retries)
    if first != start:
        raise RangesUnsupported(f"{redact_url(url)} answered another range than asked")
    return body


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file through range requests (for :mod:`zipfile`).

    ``size`` (the index's, when it gives one) saves nothing but a guess: without it the first
    request reads the file's tail and learns the size from ``Content-Range``. At most ``cap``
    bytes are read in all; ``requests`` and ``fetched`` count what was asked.
    """

    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT, *,
                 size: int | None = None, cap: int = MEMBER_CAP) -> None:
        super().__init__()
        self.url, self.session, self.timeout, self.cap = url, session, timeout, cap
        self.pos = 0
        self.fetched = 0  # bytes read over the network so far (bounded by cap)
        self.requests = 0
        self._blocks: dict[int, bytes] = {}  # first byte -> bytes
        if size is None:
            tail, first, total = _range_get(url, f"bytes=-{TAIL}", session=session, timeout=timeout, retries=2)
            self._count(len(tail))
            self._blocks[first] = tail
            size = total if total is not None else first + len(tail)
        self.size = size

    def _count(self, n: int) -> None:
        self.requests += 1
        self.fetched += n
        if self.fetched > self.cap:
            raise NetworkError(f"reading {redact_url(self.url)} would take more than {self.cap} bytes: refused")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, min(self.size, base + pos))
        return self.pos

    def _cached(self, start: int, end: int) -> bytes | None:
        for b_start, data in self._blocks.items():
            if b_start <= start and end <= b_start + len(data):
                return data[start - b_start:end - b_start]
        return None

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        start, end = self.pos, self.pos + n
        data = self._cached(start, end)
        if data is None:
            block = read_range(self.url, start, min(self.size, max(end, start + READ_AHEAD)), session=self.session,
                               timeout=self.timeout)
            self._count(len(block))
            self._blocks[start] = block
            data = block[:n]
        buf[:n] = data
        self.pos = end
        return n


RemoteFile = RangeFile  # the name offpkg.net's first API used


def read_zip_member(url: str, session: requests.Session | None, wanted: Callable[[str], bool], *,
                    timeout: float = DEFAULT_TIMEOUT, size: int | None = None) -> tuple[str, bytes] | None:
    """(name, bytes) of the first member of the remote zip at ``url`` for which ``wanted(name)`` is true.

    Reads only the central directory and that member. Raises RangesUnsupported when the server
    answers no ranges, NetworkError otherwise (a member over ``MEMBER_CAP`` included).
    """
    raw = RangeFile(url, session, timeout, size=size)
    try:
        with zipfile.ZipFile(raw) as z:
            for name in z.namelist():
                if wanted(name):
                    info = z.getinfo(name)
                    if info.file_size > MEMBER_CAP:
                        raise NetworkError(f"{redact_url(url)}: {name} is {info.file_size} bytes: refused")
                    return name, z.read(name)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise NetworkError(f"{redact_url(url)} is not a readable zip: {exc}") from None
    return None


def _is_metadata(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"


def fetch_metadata(url: str, session: requests.Session | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                   size: int | None = None, pep658: bool = True) -> str:
    """A remote wheel's METADATA: PEP 658 ``<url>.metadata``, else a range read of the wheel.

    ``pep658=False`` (the index does not advertise the file) tries the range read first and
    ``.metadata`` last. Never downloads the whole wheel. Raises NetworkError (RangesUnsupported
    when neither a .metadata file nor range requests are served).
    """
    url = url.split("#", 1)[0]
    meta = url + ".metadata"

    def from_pep658() -> str | None:
        r = get(meta, session=session, timeout=timeout)
        if r.status_code == 200 and r.text.lstrip().startswith("Metadata-Version"):
            return r.text
        if r.status_code in (401, 403):
            raise NetworkError(f"{redact_url(meta)} answered HTTP {r.status_code}",
                               hint="check the index URL and its credentials")
        return None

    if pep658 and (text := from_pep658()) is not None:
        return text
    try:
        got = read_zip_member(url, session, _is_metadata, timeout=timeout, size=size)
    except RangesUnsupported:
        if pep658 or (text := from_pep658()) is None:
            raise
        return text
    if got is None:
        raise NetworkError(f"{redact_url(url)} has no .dist-info/METADATA: it is not a valid wheel")
    return got[1].decode("utf-8", errors="replace")
