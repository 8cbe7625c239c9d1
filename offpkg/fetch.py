"""Parallel, resumable, hash-verified downloads into the cache.

Each file is streamed to ``<name>.part`` beside its final cache path while being
hashed, fsynced, compared with the index's sha256 and only then ``os.replace``d
into place. Connection errors, timeouts and 5xx answers are retried with
jittered exponential backoff, resuming with an HTTP Range request where the
server allows it; after the retries the next mirror is tried. A hash mismatch is
fatal for that file: the bytes are deleted and no other mirror is asked to "fix"
it. An overall deadline bounds the whole run.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .cache import Cache, acquire
from .errors import HashMismatchError, InputError, NetworkError
from .hashing import CHUNK, sha256_file
from .index import DistFile, make_session
from .redact import redact_url

RETRY_STATUS = {429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527}


@dataclass
class FetchPolicy:
    retries: int = 4
    backoff: float = 0.25  # first delay in seconds; doubles, with jitter
    max_backoff: float = 8.0
    timeout: float = 30.0  # connect/read timeout of one request
    deadline: float = 6 * 3600.0  # the whole run
    workers: int = 8


@dataclass
class FetchRequest:
    file: DistFile
    # The same file on other mirrors, tried in order after the primary fails.
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
    pass


class Fetcher:
    def __init__(self, cache: Cache, policy: FetchPolicy | None = None, session: requests.Session | None = None,
                 progress: Callable[[int], None] | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.cache = cache
        self.policy = policy or FetchPolicy()
        self.session = session or make_session(self.policy.workers * 2)
        self.progress = progress
        self.warn = warn or (lambda msg: None)
        self._start = time.monotonic()

    # ------------------------------------------------------------------ public
    def fetch_all(self, reqs: list[FetchRequest]) -> list[Fetched]:
        """Fetch every request in parallel; the first fatal error cancels the rest."""
        self._start = time.monotonic()
        results: list[Fetched | None] = [None] * len(reqs)
        with ThreadPoolExecutor(max_workers=self.policy.workers) as pool:
            futures = {pool.submit(self.fetch, r): i for i, r in enumerate(reqs)}
            try:
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return [r for r in results if r is not None]

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
            urls = [f.url] + [u for u in req.alternates if u != f.url]
            errors = []
            for url in urls:
                try:
                    size = self._download(url, self.cache.path(f.sha256, f.filename), f.sha256)
                    return Fetched(f.filename, self.cache.path(f.sha256, f.filename), f.sha256, size, False, url)
                except _Retryable as exc:
                    errors.append(f"{redact_url(url)}: {exc}")
                    if len(urls) > 1:
                        self.warn(f"{f.filename}: {redact_url(url)} failed ({exc}); trying the next mirror")
            raise NetworkError(f"could not download {f.filename}: " + "; ".join(errors),
                               hint="check the network, or pick another mirror with `offpkg mirror test`")
        finally:
            lock.release()

    # ------------------------------------------------------------------ internals
    def _from_local(self, f: DistFile, path: Path) -> Fetched:
        if not path.is_file():
            raise InputError(f"{path} does not exist")
        digest, size = sha256_file(path)
        if f.sha256 and digest != f.sha256:
            raise HashMismatchError(f"{f.filename}: sha256 {digest} does not match the index's {f.sha256}")
        dest = self.cache.path(digest, f.filename)
        if not dest.is_file():
            with acquire(self.cache.lock(digest), f.filename):
                if not dest.is_file():
                    tmp = dest.with_name(dest.name + ".part")
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, dest)
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
        tmp = tmpdir / f"{os.getpid()}-{f.filename}"
        try:
            self._download(f.url, tmp, None)
            digest, size = sha256_file(tmp)
            dest = self.cache.path(digest, f.filename)
            with acquire(self.cache.lock(digest), f.filename):
                os.replace(tmp, dest)
            return Fetched(f.filename, dest, digest, size, False, f.url)
        finally:
            tmp.unlink(missing_ok=True)

    def _check_deadline(self) -> None:
        if time.monotonic() - self._start > self.policy.deadline:
            raise NetworkError(f"downloads did not finish within the deadline of {self.policy.deadline:.0f} s",
                               hint="raise the deadline or use a faster mirror")

    def _download(self, url: str, dest: Path, sha256: str | None) -> int:
        """Download ``url`` to ``dest`` via ``dest.part``; returns the size. Retries inside."""
        part = dest.with_name(dest.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        have = 0
        if part.exists():
            # A .part left by a killed run (we hold the entry lock): resume from it.
            with open(part, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    have += len(chunk)
        attempt = 0
        while True:
            self._check_deadline()
            try:
                have, h = self._stream(url, part, have, h)
                break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    _Retryable) as exc:
                attempt += 1
                if attempt > self.policy.retries:
                    raise _Retryable(_describe(exc)) from None
                delay = min(self.policy.max_backoff, self.policy.backoff * (2 ** (attempt - 1)))
                time.sleep(delay * (0.5 + random.random()))
        digest = h.hexdigest()
        if sha256 and digest != sha256:
            part.unlink(missing_ok=True)
            raise HashMismatchError(
                f"{dest.name}: downloaded bytes have sha256 {digest}, but the index lists {sha256}",
                hint=f"the file at {redact_url(url)} is corrupt or was tampered with; it was deleted. "
                     "Report it to the index operator; offpkg never falls back to another mirror for this")
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, dest)
        _fsync_dir(dest.parent)
        return have

    def _stream(self, url: str, part: Path, have: int, h: "hashlib._Hash") -> tuple[int, "hashlib._Hash"]:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.session.get(url, stream=True, timeout=self.policy.timeout, headers=headers) as r:
            if r.status_code in RETRY_STATUS:
                raise _Retryable(f"HTTP {r.status_code}")
            if r.status_code == 416 and have:
                # Our partial is complete or bogus: start over.
                part.unlink(missing_ok=True)
                raise _Retryable("HTTP 416 on resume")
            if r.status_code >= 400:
                raise NetworkError(f"{redact_url(url)} answered HTTP {r.status_code}",
                                   hint="the index lists a file it cannot serve; try another mirror")
            if have and r.status_code != 206:
                have, h = 0, hashlib.sha256()  # server ignored Range: restart from zero
            expected = r.headers.get("Content-Length")
            total = have + int(expected) if expected and expected.isdigit() else None
            mode = "ab" if have else "wb"
            with open(part, mode) as out:
                for chunk in r.iter_content(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    have += len(chunk)
                    if self.progress:
                        self.progress(len(chunk))
                out.flush()
            if total is not None and have < total:
                raise _Retryable(f"connection closed after {have} of {total} bytes")
        return have, h


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-response"
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
