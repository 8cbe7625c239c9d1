"""Read parts of a remote file with HTTP range requests (a wheel's ``version.py``, its METADATA).

:func:`read_range` fetches bytes ``[start, end)`` of a URL; :class:`RemoteFile` is a
read-only, seekable file object over a URL, so ``zipfile.ZipFile(RemoteFile(url))``
reads one member of a 2 GB wheel with a few small requests. A server that ignores
``Range`` (answers 200 with the whole body) is refused with
:class:`RangeNotSupported` instead of silently downloading everything.
"""

from __future__ import annotations

import io
import re

import requests
import urllib3

from ..errors import NetworkError
from ..redact import redact_url
from .session import DEFAULT_TIMEOUT, describe, get

# Bytes read per request at least: a zip's end record and central directory take a few
# small reads; reading ahead keeps them to one or two requests.
MIN_READ = 64 << 10
# Bytes one RemoteFile may read in all (a bound against a hostile or huge member).
MAX_TOTAL = 256 << 20


class RangeNotSupported(NetworkError):
    """The server answered a range request with the whole file (or not at all)."""


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _range_get(url: str, header: str, *, session: requests.Session | None, timeout: float,
               retries: int) -> tuple[bytes, int, int | None]:
    """One range request: (body, first byte, total size or None)."""
    r = get(url, session=session, headers={"Range": header, "Accept-Encoding": "identity"}, timeout=timeout,
            retries=retries, stream=True)
    with r:
        if r.status_code == 416:
            raise NetworkError(f"{redact_url(url)}: range {header[6:]} is outside the file")
        if r.status_code >= 400:
            raise NetworkError(f"{redact_url(url)} answered HTTP {r.status_code}",
                               hint="check the URL and its credentials" if r.status_code in (401, 403) else None)
        m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
        if r.status_code != 206 or not m:
            raise RangeNotSupported(f"{redact_url(url)} does not answer range requests (HTTP {r.status_code})",
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
        raise RangeNotSupported(f"{redact_url(url)} answered another range than asked")
    return body


class RemoteFile(io.RawIOBase):
    """A seekable, read-only view of a remote file through range requests (for ``zipfile``)."""

    def __init__(self, url: str, *, session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_total: int = MAX_TOTAL) -> None:
        super().__init__()
        self.url = url
        self.session = session
        self.timeout = timeout
        self.max_total = max_total
        self.fetched = 0  # bytes read over the network so far
        self.requests = 0
        tail, first, total = _range_get(url, f"bytes=-{MIN_READ}", session=session, timeout=timeout, retries=2)
        self.requests += 1
        self.fetched += len(tail)
        self.size = total if total is not None else first + len(tail)
        self._blocks: dict[int, bytes] = {first: tail}  # start -> bytes
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _cached(self, start: int, end: int) -> bytes | None:
        for b_start, data in self._blocks.items():
            if b_start <= start and end <= b_start + len(data):
                return data[start - b_start:end - b_start]
        return None

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.size - self._pos)
        if n <= 0:
            return 0
        start, end = self._pos, self._pos + n
        data = self._cached(start, end)
        if data is None:
            want_end = min(self.size, max(end, start + MIN_READ))
            if self.fetched + (want_end - start) > self.max_total:
                raise NetworkError(f"{redact_url(self.url)}: reading more than {self.max_total} bytes by range",
                                   hint="the member asked for is too large to read remotely")
            block = read_range(self.url, start, want_end, session=self.session, timeout=self.timeout)
            self.requests += 1
            self.fetched += len(block)
            self._blocks[start] = block
            data = block[:n]
        buf[:n] = data
        self._pos = end
        return n
