"""The content-addressed download cache.

Layout: ``CACHE/files/<sha256[:2]>/<sha256>/<filename>``. A file is only ever
placed under its final name after its bytes were hashed and matched; temporaries
live beside it (``<filename>.part``) so ``os.replace`` is atomic. Every entry is
guarded by a file lock (filelock), so two offpkg runs sharing a cache are safe:
the second waits for the first and then finds the verified file. A ``.part``
left by a killed run (``kill -9``) is resumed by the next download of the same
file (with HTTP Range, and re-verified as a whole); :meth:`Cache.clean_stale`
removes those nobody came back for, and temporaries of dead processes.

Entries are hashed once, when they are stored, and then trusted by identity: a
``.verified`` stamp beside the entry records the file's size, inode, mtime and
ctime at the moment its bytes matched. A later use re-hashes only when the
stamp no longer matches. The argument (docs/performance.md, "Why the cache is
not re-hashed"): the entry lives under its own sha256, is written once and
made read-only; any write through the file system changes its ctime, which
user space cannot set back, so an unchanged stamp means the bytes hashed then
are the bytes there now. What a stamp cannot see — bit rot below the file
system, or someone editing the block device — is what ``--verify-cache``
(``Cache(verify=True)``: re-hash every entry used) is for, and every bundle is
verified again by whoever installs it.
"""

from __future__ import annotations

import json
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


STAMP = ".verified"


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


class Cache:
    def __init__(self, root: Path | None = None, *, verify: bool = False) -> None:
        self.root = Path(root) if root else default_cache_dir()
        # True: re-hash every entry on use (--verify-cache), whatever its stamp says.
        self.verify = verify

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
        """A verified cached file, or None. A corrupt entry is removed.

        The bytes are hashed only when the entry's stamp does not match the file
        (or with ``verify``); see the module docstring for why that is enough.
        """
        p = self.path(sha256, filename)
        try:
            st = p.stat()
        except OSError:
            return None
        if not p.is_file():
            return None
        if not self.verify and self._stamped(p, st):
            return p
        digest, _ = sha256_file(p)
        if digest == sha256:
            self.stamp(p)
            return p
        try:  # a corrupt entry must never be used again
            p.unlink()
            self._stamp_path(p).unlink(missing_ok=True)
        except OSError:
            pass
        return None

    @staticmethod
    def _stamp_path(p: Path) -> Path:
        return p.with_name(f"{STAMP}-{p.name}.json")

    def _stamped(self, p: Path, st: os.stat_result) -> bool:
        try:
            return json.loads(self._stamp_path(p).read_text(encoding="utf-8")) == _identity(st)
        except (OSError, ValueError):
            return False

    def link_out(self, p: Path, dest: Path) -> None:
        """Hard-link (else copy) the entry ``p`` to ``dest``, keeping its stamp.

        A new link changes the inode's ctime (its link count changed, not its bytes): when the
        stamp matched just before, it is taken again just after, so the next run still trusts it.
        """
        from ..fsutil import link_or_copy

        try:
            fresh = self._stamped(p, p.stat())
        except OSError:
            fresh = False
        link_or_copy(p, dest)
        if fresh:
            self.stamp(p)

    def stamp(self, p: Path) -> None:
        """Record that ``p``'s bytes were just checked against its entry's sha256.

        The file is made read-only first (that changes its ctime, so the stamp is
        taken after); never raises: a missing stamp only costs a re-hash.
        """
        try:
            os.chmod(p, 0o444)
            tmp = self._stamp_path(p).with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(_identity(p.stat())), encoding="utf-8")
            os.replace(tmp, self._stamp_path(p))
        except OSError:
            pass

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
            if p.name == ".lock" or p.name.startswith(STAMP) or p.name.endswith(".part") or not p.is_file():
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
