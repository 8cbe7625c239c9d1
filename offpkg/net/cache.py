"""The content-addressed download cache.

Layout: ``CACHE/files/<sha256[:2]>/<sha256>/<filename>``. A file is only ever
placed under its final name after its bytes were hashed and matched; temporaries
live beside it (``<filename>.part``) so ``os.replace`` is atomic. Every entry is
guarded by a file lock (filelock), so two offpkg runs sharing a cache are safe:
the second waits for the first and then finds the verified file. A ``.part``
left by a killed run (``kill -9``) is resumed by the next download of the same
file (with HTTP Range, and re-verified as a whole); :meth:`Cache.clean_stale`
removes those nobody came back for, and temporaries of dead processes.

Entries are re-hashed whenever they are used: a cache on a flaky disk must never
put a corrupt wheel into a bundle (pip#3127, #3792).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from ..errors import LockError
from ..fsutil import pid_alive
from ..hashing import sha256_file


def default_cache_dir() -> Path:
    env = os.environ.get("OFFPKG_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("offpkg"))


class Cache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

    @property
    def index_dir(self) -> Path:
        """Where index project pages are cached (offpkg.net.index.PageCache)."""
        return self.root / "index"

    def entry_dir(self, sha256: str) -> Path:
        return self.root / "files" / sha256[:2] / sha256

    def path(self, sha256: str, filename: str) -> Path:
        return self.entry_dir(sha256) / filename

    def lock(self, sha256: str, timeout: float = 3600) -> FileLock:
        d = self.entry_dir(sha256)
        d.mkdir(parents=True, exist_ok=True)
        return FileLock(str(d / ".lock"), timeout=timeout)

    def lookup(self, sha256: str, filename: str) -> Path | None:
        """A verified cached file, or None. A corrupt entry is removed."""
        p = self.path(sha256, filename)
        if not p.is_file():
            return None
        digest, _ = sha256_file(p)
        if digest == sha256:
            return p
        try:  # a corrupt entry must never be used again
            p.unlink()
        except OSError:
            pass
        return None

    def clean_stale(self, max_age: float = 3 * 86400) -> int:
        """Remove temporaries of dead runs; returns how many.

        - ``.part`` files older than ``max_age`` whose entry lock is free (younger
          ones are kept: the next download of that file resumes them);
        - files in ``unhashed/`` written by processes that are gone;
        - cached index pages (``index/``) not used for ``max_age``, and their temporaries of dead runs.
        """
        removed = 0
        base = self.root / "files"
        now = time.time()
        for part in base.glob("*/*/*.part") if base.is_dir() else ():
            try:
                if now - part.stat().st_mtime < max_age:
                    continue
            except OSError:
                continue
            lock = FileLock(str(part.parent / ".lock"), timeout=0)
            try:
                with lock:
                    part.unlink(missing_ok=True)
                    removed += 1
            except Timeout:
                continue  # another run is downloading it right now
        unhashed = self.root / "unhashed"
        for tmp in unhashed.iterdir() if unhashed.is_dir() else ():
            pid = tmp.name.split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed += 1
        index = self.index_dir
        for page in index.iterdir() if index.is_dir() else ():
            try:
                old = now - page.stat().st_mtime > (max_age if page.name.endswith(".page") else 3600)
            except OSError:
                continue
            if old:
                page.unlink(missing_ok=True)
                removed += 1
        return removed

    def verify_all(self) -> list[Path]:
        """Every file under a final name whose bytes do not match its entry's sha256 (should be none)."""
        bad = []
        base = self.root / "files"
        for p in base.glob("*/*/*") if base.is_dir() else ():
            if p.name == ".lock" or p.name.endswith(".part") or not p.is_file():
                continue
            if sha256_file(p)[0] != p.parent.name:
                bad.append(p)
        return bad


def acquire(lock: FileLock, what: str) -> FileLock:
    try:
        lock.acquire()
    except Timeout:
        raise LockError(f"timed out waiting for the cache lock of {what}",
                        hint="another offpkg run is downloading the same file; wait for it or use another --cache-dir") from None
    return lock
