"""Parallel, resumable, hash-verified downloads into the cache.

Each file is streamed to ``<name>.part`` beside its final cache path while being
hashed, fsynced, compared with the index's sha256 and only then ``os.replace``d
into place, so a file under its final name is always complete and verified.

Faults: connection errors, resets, timeouts (a stalled server: no byte within
``timeout``) and 5xx/429 answers are retried with jittered exponential backoff,
resuming with an HTTP Range request where the server allows it (and starting
over where it does not). After the retries the same file is tried on the other
mirrors: first ``FetchRequest.alternates``, then the same filename *with the
same sha256* looked up on the mirrors the file's index has (``DistFile.mirrors``).

A hash mismatch is fatal for that file: the bytes are deleted and no other
mirror is asked to "fix" it. The one exception is a file spliced together from
several responses (a resumed ``.part``): it is downloaded once more from zero,
from the same URL, before the mismatch is final. An overall deadline bounds the
whole run; the first fatal error stops the other downloads. A full disk is an
:class:`~offpkg.errors.EnvironmentProblem` (exit code 10) and leaves no ``.part``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .cache import Cache, acquire
from ..errors import EnvironmentProblem, HashMismatchError, InputError, NetworkError
from ..hashing import sha256_file
from .index import IndexClient
from .pages import DistFile
from .session import RETRY_STATUS, make_session, register_url_secrets, url_auth
from ..redact import redact_url

# Network reads adapt to the rate: each read should take about READ_SECONDS at the rate
# the last one came in, between NET_CHUNK and MAX_NET_CHUNK bytes. Small reads on a slow
# or throttled server, so a stall, the deadline and an abort are noticed promptly and a
# torn read (its bytes are dropped) costs little; larger reads on a fast link, where 64 KiB
# reads cost CPU (measured here, 8 streams of the largest gpu-ml wheels, 2.3 GB with hashing:
# 64 KiB 3.2-3.7 s / 4.4-5.1 CPU s; adaptive 2.7-3.1 s / 3.7-3.9 CPU s; a fixed 1 MiB 4.0-4.5 s).
NET_CHUNK = 64 << 10
MAX_NET_CHUNK = 1 << 20
READ_SECONDS = 0.1


@dataclass
class FetchPolicy:
    retries: int = 4
    backoff: float = 0.25  # first delay in seconds; doubles, with jitter
    max_backoff: float = 8.0
    timeout: float = 30.0  # connect timeout, and the longest silence while reading
    deadline: float = 6 * 3600.0  # the whole run, retries and mirrors included
    workers: int = 8


@dataclass
class FetchRequest:
    file: DistFile
    # The same file on other mirrors, tried in order after the primary fails
    # (before the mirrors looked up through ``file.mirrors``).
    alternates: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fetched:
    filename: str
    path: Path
    sha256: str
    size: int
    from_cache: bool
    url: str


class _Retryable(Exception):
    """This attempt failed in a way another attempt (or mirror) may not."""


class _UrlFailed(Exception):
    """This URL cannot serve the file (4xx): no retries, but another mirror may."""


class _Aborted(Exception):
    """Another download failed fatally; this one stops."""


class _Partial:
    """The bytes of ``<name>.part`` so far, with their running hash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.have = 0
        self.h = hashlib.sha256()
        self.spliced = False  # bytes from more than one response (or an earlier run)

    def load(self) -> None:
        if self.path.exists():
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    self.h.update(chunk)
                    self.have += len(chunk)
            self.spliced = self.have > 0

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.have = 0
        self.h = hashlib.sha256()
        self.spliced = False


class Fetcher:
    """Downloads files into the cache. ``client`` looks up alternates on other mirrors."""

    def __init__(self, cache: Cache, policy: FetchPolicy | None = None, session: requests.Session | None = None,
                 progress: Callable[[int], None] | None = None, warn: Callable[[str], None] | None = None,
                 client: IndexClient | None = None) -> None:
        self.cache = cache
        self.policy = policy or FetchPolicy()
        self.session = session or make_session(self.policy.workers * 2)
        self.progress = progress
        self.warn = warn or (lambda msg: None)
        self.client = client
        self._start = time.monotonic()
        self._abort = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[Future[Fetched], int] = {}

    # ------------------------------------------------------------------ public
    def fetch_all(self, reqs: list[FetchRequest]) -> list[Fetched]:
        """Fetch every request in parallel; the first fatal error stops the rest and is raised."""
        for r in reqs:
            self.submit(r)
        return self.wait()

    def submit(self, req: FetchRequest) -> None:
        """Start fetching ``req`` in the pool now (a bundle starts each download as soon as its
        file is chosen, while other index pages are still being read); :meth:`wait` collects them."""
        if self._pool is None:
            self._start = time.monotonic()
            self._abort.clear()
            self._futures = {}
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.policy.workers), thread_name_prefix="offpkg-fetch")
        self._futures[self._pool.submit(self.fetch, req)] = len(self._futures)

    def wait(self) -> list[Fetched]:
        """Every submitted fetch, in submission order; the first fatal error stops the rest and is raised."""
        futures, pool = self._futures, self._pool
        results: list[Fetched | None] = [None] * len(futures)
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
        except BaseException:
            self.cancel()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            self._pool, self._futures = None, {}
        return [r for r in results if r is not None]

    def cancel(self) -> None:
        """Stop the downloads in flight (they check between chunks) and drop the queued ones."""
        self._abort.set()
        for f in self._futures:
            f.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._futures = None, {}

    def fetch(self, req: FetchRequest) -> Fetched:
        f = req.file
        local = f.local_path
        if local is not None:
            return self._from_local(f, local)
        if not f.sha256:
            return self._fetch_unhashed(req)
        hit = self.cache.lookup(f.sha256, f.filename)
        if hit is not None:
            return Fetched(f.filename, hit, f.sha256, hit.stat().st_size, True, f.url)
        lock = acquire(self.cache.lock(f.sha256), f.filename)
        try:
            hit = self.cache.lookup(f.sha256, f.filename)  # another run may have finished it
            if hit is not None:
                return Fetched(f.filename, hit, f.sha256, hit.stat().st_size, True, f.url)
            dest = self.cache.path(f.sha256, f.filename)
            errors: list[str] = []
            for url in self._urls(req):
                if errors:  # said only when there is a next mirror to try
                    self.warn(f"{f.filename}: {errors[-1]}; trying the next mirror")
                try:
                    size = self._download(url, dest, f.sha256)
                    self.cache.stamp(dest)  # hashed while it was written: no second pass
                    return Fetched(f.filename, dest, f.sha256, size, False, url)
                except (_Retryable, _UrlFailed) as exc:
                    errors.append(f"{redact_url(url)} failed ({exc})")
            raise NetworkError(f"could not download {f.filename}: " + "; ".join(errors),
                               hint="check the network, or pick another mirror with `offpkg mirror test`")
        finally:
            lock.release()

    # ------------------------------------------------------------------ internals
    def _urls(self, req: FetchRequest) -> Iterator[str]:
        """The primary URL, the given alternates, then the file looked up on its other mirrors (lazily)."""
        seen: set[str] = set()
        for url in [req.file.url, *req.alternates]:
            if url not in seen:
                seen.add(url)
                yield url
        if req.file.mirrors:
            client = self.client or IndexClient([], session=self.session, timeout=self.policy.timeout)
            for url in client.alternates(req.file):
                if url not in seen:
                    seen.add(url)
                    self._check_deadline()
                    yield url

    def _from_local(self, f: DistFile, path: Path) -> Fetched:
        if not path.is_file():
            raise InputError(f"{path} does not exist")
        digest, size = sha256_file(path)
        if f.sha256 and digest != f.sha256:
            raise HashMismatchError(f"{f.filename}: sha256 {digest} does not match the index's {f.sha256}")
        dest = self.cache.path(digest, f.filename)
        if self.cache.lookup(digest, f.filename) is None:
            with acquire(self.cache.lock(digest), f.filename):
                if self.cache.lookup(digest, f.filename) is None:
                    tmp = dest.with_name(dest.name + ".part")
                    try:
                        shutil.copyfile(path, tmp)
                        with open(tmp, "rb+") as fh:
                            os.fsync(fh.fileno())
                        os.replace(tmp, dest)
                    except OSError as exc:
                        tmp.unlink(missing_ok=True)
                        raise _disk_error(exc, f.filename, dest.parent) from None
                    self.cache.stamp(dest)
        if self.progress:
            self.progress(size)
        return Fetched(f.filename, dest, digest, size, True, str(path))

    def _fetch_unhashed(self, req: FetchRequest) -> Fetched:
        """An index that publishes no hash: download, hash, and record it (trust on first use)."""
        f = req.file
        self.warn(f"{redact_url(f.index) or 'the index'} publishes no sha256 for {f.filename}; "
                  "it is pinned to the hash of the bytes downloaded now")
        tmpdir = self.cache.root / "unhashed"
        tmpdir.mkdir(parents=True, exist_ok=True)
        tmp = tmpdir / f"{os.getpid()}-{threading.get_ident()}-{f.filename}"
        try:
            self._download(f.url, tmp, None)
            digest, size = sha256_file(tmp)
            dest = self.cache.path(digest, f.filename)
            with acquire(self.cache.lock(digest), f.filename):
                os.replace(tmp, dest)
            return Fetched(f.filename, dest, digest, size, False, f.url)
        except (_Retryable, _UrlFailed) as exc:
            raise NetworkError(f"could not download {f.filename} from {redact_url(f.url)}: {exc}",
                               hint="check the network, or pick another mirror with `offpkg mirror test`") from None
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".part").unlink(missing_ok=True)

    def _remaining(self) -> float:
        return self.policy.deadline - (time.monotonic() - self._start)

    def _check_deadline(self) -> None:
        if self._abort.is_set():
            raise _Aborted()
        if self._remaining() <= 0:
            raise NetworkError(f"downloads did not finish within the deadline of {self.policy.deadline:g} s",
                               hint="raise the deadline or use a faster mirror (`offpkg mirror test`); "
                                    "a rerun resumes the partial downloads")

    def _download(self, url: str, dest: Path, sha256: str | None) -> int:
        """Download ``url`` to ``dest`` via ``dest.part``; returns the size. Retries inside."""
        part = _Partial(dest.with_name(dest.name + ".part"))
        part.path.parent.mkdir(parents=True, exist_ok=True)
        part.load()  # a .part left by a killed run (we hold the entry lock): resume from it
        attempt = 0
        restarted = False
        while True:
            self._check_deadline()
            try:
                self._stream(url, part)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError, _Retryable) as exc:
                attempt += 1
                if attempt > self.policy.retries:
                    raise _Retryable(_describe(exc)) from None
                delay = min(self.policy.max_backoff, self.policy.backoff * (2 ** (attempt - 1)))
                delay *= 0.5 + random.random()
                if delay >= self._remaining():
                    self._abort.wait(max(0.0, self._remaining()))
                    self._check_deadline()
                if self._abort.wait(delay):
                    raise _Aborted() from None
                continue
            except requests.RequestException as exc:  # a bad URL, too many redirects: not this mirror
                raise _UrlFailed(type(exc).__name__) from None
            except OSError as exc:  # our side: disk full, permissions
                part.reset()
                raise _disk_error(exc, dest.name, dest.parent) from None
            digest = part.h.hexdigest()
            if sha256 and digest != sha256:
                if part.spliced and not restarted:
                    # Resumed bytes (an earlier run, or a server whose Range answers differ)
                    # may be the culprit: download it once more from zero, same URL.
                    self.warn(f"{dest.name}: resumed download does not verify; downloading it again from the start")
                    part.reset()
                    restarted = True
                    continue
                part.reset()
                raise HashMismatchError(
                    f"{dest.name}: downloaded bytes have sha256 {digest}, but the index lists {sha256}",
                    hint=f"the file at {redact_url(url)} is corrupt or was tampered with; it was deleted. "
                         "Report it to the index operator; offpkg never falls back to another mirror for this")
            break
        try:
            with open(part.path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(part.path, dest)
        except OSError as exc:
            part.reset()
            raise _disk_error(exc, dest.name, dest.parent) from None
        _fsync_dir(dest.parent)
        return part.have

    def _stream(self, url: str, part: _Partial) -> None:
        """One GET (resuming with Range when bytes are already there), appended to ``part``."""
        headers = {"Range": f"bytes={part.have}-"} if part.have else {}
        register_url_secrets(url)  # a presigned URL's signature must not reach a debug log
        with self.session.get(url, stream=True, timeout=self.policy.timeout, headers=headers,
                              auth=url_auth(url)) as r:
            if r.status_code in RETRY_STATUS:
                raise _Retryable(f"HTTP {r.status_code}")
            if r.status_code == 416 and part.have:
                # Our partial is complete or bogus: start over.
                part.reset()
                raise _Retryable("HTTP 416 on resume")
            if r.status_code >= 400:
                raise _UrlFailed(f"HTTP {r.status_code}")
            if part.have:
                if r.status_code == 206 and _range_start(r.headers.get("Content-Range")) == part.have:
                    part.spliced = True
                else:
                    part.reset()  # the server ignored Range (or answered another one): from zero
            expected = r.headers.get("Content-Length")
            total = part.have + int(expected) if expected and expected.isdigit() else None
            of_total = f" of {total}" if total is not None else ""
            with open(part.path, "ab" if part.have else "wb") as out:
                try:
                    for chunk in _read_adaptively(r):
                        if self._abort.is_set():
                            raise _Aborted()
                        out.write(chunk)
                        part.h.update(chunk)
                        part.have += len(chunk)
                        if self.progress:
                            self.progress(len(chunk))
                        if self._remaining() <= 0:
                            out.flush()
                            self._check_deadline()
                except requests.exceptions.ChunkedEncodingError:
                    raise _Retryable(f"connection closed after {part.have}{of_total} bytes") from None
                out.flush()
            if total is not None and part.have < total:
                raise _Retryable(f"connection closed after {part.have}{of_total} bytes")


def _read_adaptively(r: requests.Response) -> Iterator[bytes]:
    """The body of ``r`` in reads sized to the rate (see READ_SECONDS), with requests' exception
    mapping (as ``iter_content`` does): a broken connection is ChunkedEncodingError, a read
    timeout ConnectionError."""
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    size = NET_CHUNK
    while True:
        t = time.monotonic()
        try:
            chunk = r.raw.read(size, decode_content=True)
        except ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from None
        except ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from None
        except Urllib3SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        if not chunk:
            return
        if len(chunk) == size:  # a full read: how fast did it come?
            rate = size / max(time.monotonic() - t, 1e-4)
            size = max(NET_CHUNK, min(MAX_NET_CHUNK, int(rate * READ_SECONDS) >> 16 << 16))
        yield chunk


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes N-M/T``."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _disk_error(exc: OSError, name: str, where: Path) -> EnvironmentProblem:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentProblem(f"no space left on device while writing {name} into the cache {where}",
                                  hint="free some space, or point OFFPKG_CACHE_DIR (or --cache-dir) at a bigger disk; "
                                       "nothing half-written was kept")
    return EnvironmentProblem(f"cannot write {name} into the cache {where}: {exc.strerror or exc}",
                              hint="check the permissions of the cache directory, or use another --cache-dir")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-response"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "reset" in text.lower():
            return "connection reset"
        if "Read timed out" in text:
            return "timed out"
        return "connection failed"
    return str(exc)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
