"""The content-addressed download cache.

Layout: ``CACHE/files/<sha256[:2]>/<sha256>/<filename>``. A file is only ever
placed under its final name after its bytes were hashed and matched; temporaries
live beside it (``<filename>.part``) so ``os.replace`` is atomic. Every entry is
guarded by a file lock (filelock), so two offpkg runs sharing a cache are safe,
and a ``.part`` left by a killed run is found and resumed (or removed) by the next.

Entries are re-hashed whenever they are used: a cache on a flaky disk must never
put a corrupt wheel into a bundle (pip#3127, #3792).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from .errors import LockError
from .hashing import sha256_file


def default_cache_dir() -> Path:
    env = os.environ.get("OFFPKG_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("offpkg"))


class Cache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

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

    def lookup_by_name(self, filename: str) -> list[Path]:
        """Cached files named ``filename`` (for sources without a published hash)."""
        base = self.root / "files"
        if not base.is_dir():
            return []
        return sorted(base.glob(f"*/*/{filename}"))

    def clean_stale(self) -> int:
        """Remove ``.part`` files of dead runs (those whose entry lock is free). Returns count."""
        removed = 0
        base = self.root / "files"
        if not base.is_dir():
            return 0
        for part in base.glob("*/*/*.part"):
            lock = FileLock(str(part.parent / ".lock"), timeout=0)
            try:
                with lock:
                    part.unlink(missing_ok=True)
                    removed += 1
            except Timeout:
                continue  # another run is downloading it right now
        return removed


def acquire(lock: FileLock, what: str) -> FileLock:
    try:
        lock.acquire()
    except Timeout:
        raise LockError(f"timed out waiting for the cache lock of {what}",
                        hint="another offpkg run is downloading the same file; wait for it or use another --cache-dir") from None
    return lock
