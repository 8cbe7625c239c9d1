"""The on-disk state of an upgradable venv: generations, the upgrade journal, the lock, the atomic swap.

For a venv ``/p/env`` offpkg keeps, next to it (same filesystem, so renames are atomic):

- ``/p/.env.offpkg-stage-<pid>-<rand>``: the new state while it is built (a hard-link clone of env);
- ``/p/.env.offpkg-gen-<N>``: earlier states, newest = highest N; each is the venv directory
  exactly as it was (the very directory, renamed), so a rollback is a rename back;
- ``/p/.env.offpkg-upgrade.json``: the journal of an upgrade or rollback in progress;
- ``/p/.env.offpkg-lock``: one upgrade, rollback or install at a time.

The swap is ``renameat2(RENAME_EXCHANGE)`` where the kernel has it (Linux >= 3.15): at
every instant ``/p/env`` is a complete state, old or new. Elsewhere it is two renames,
and the journal lets the next run finish (or undo) a swap that a crash interrupted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem, LockError

CRASH_ENV = "OFFPKG_TEST_CRASH_AT"  # fault injection for the crash tests: SIGKILL ourselves at a named point
RENAME_EXCHANGE = 2


def crash_point(name: str) -> None:
    """Die with SIGKILL here when ``OFFPKG_TEST_CRASH_AT`` names this point (the crash tests use it)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Layout:
    venv: Path

    @classmethod
    def of(cls, venv: Path) -> Layout:
        return cls(Path(os.path.abspath(venv)))

    @property
    def parent(self) -> Path:
        return self.venv.parent

    def _name(self, what: str) -> Path:
        return self.parent / f".{self.venv.name}.offpkg-{what}"

    @property
    def journal(self) -> Path:
        return self._name("upgrade.json")

    @property
    def lockfile(self) -> Path:
        return self._name("lock")

    def stage(self) -> Path:
        return self._name(f"stage-{os.getpid()}-{os.urandom(4).hex()}")

    def trash(self) -> Path:
        return self._name(f"trash-{os.getpid()}-{os.urandom(4).hex()}")

    def generation(self, n: int) -> Path:
        return self._name(f"gen-{n}")

    def generations(self) -> list[tuple[int, Path]]:
        """Kept earlier states, oldest first."""
        pat = re.compile(re.escape(f".{self.venv.name}.offpkg-gen-") + r"(\d+)$")
        out = []
        for p in self.parent.iterdir():
            m = pat.match(p.name)
            if m and p.is_dir() and not p.is_symlink():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def leftovers(self, kind: str) -> list[Path]:
        """Stage or trash directories of runs that are gone (their pid is dead)."""
        from ..fsutil import pid_alive

        prefix = f".{self.venv.name}.offpkg-{kind}-"
        out = []
        for p in self.parent.glob(prefix + "*"):
            pid = p.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                out.append(p)
        return out


# ------------------------------------------------------------------ journal

def write_journal(layout: Layout, **data: object) -> None:
    from ..fsutil import write_text_atomic

    write_text_atomic(layout.journal, json.dumps({"pid": os.getpid(), **data}, sort_keys=True) + "\n")
    fsync_dir(layout.parent)


def read_journal(layout: Layout) -> dict | None:
    try:
        data = json.loads(layout.journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"phase": "unreadable"}
    return data if isinstance(data, dict) else {"phase": "unreadable"}


def clear_journal(layout: Layout) -> None:
    layout.journal.unlink(missing_ok=True)
    fsync_dir(layout.parent)


def fsync_dir(path: Path) -> None:
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


# ------------------------------------------------------------------ the swap

_libc = None


def _renameat2():  # noqa: ANN202 - a ctypes function or None
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    fn = getattr(_libc, "renameat2", None) if _libc else None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically; False where the kernel or filesystem cannot."""
    fn = _renameat2()
    if fn is None or os.environ.get("OFFPKG_TEST_NO_EXCHANGE"):  # the tests force the two-rename path
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


# ------------------------------------------------------------------ lock

class VenvLock:
    """One offpkg run at a time on a venv (upgrade, rollback, install --upgrade)."""

    def __init__(self, layout: Layout, timeout: float = 60) -> None:
        from filelock import FileLock

        self.layout = layout
        self.timeout = timeout
        self._lock = FileLock(str(layout.lockfile))

    def __enter__(self) -> VenvLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise LockError(f"another offpkg run is changing {self.layout.venv} (lock {self.layout.lockfile})",
                            hint="wait for it to finish, then run the command again") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


# ------------------------------------------------------------------ clone and disk cost

def clone_tree(src: Path, dst: Path) -> int:
    """A hard-link clone of ``src`` at ``dst`` (copies where links are refused); returns files linked.

    Symbolic links are recreated as they are (a venv's bin/python points at the base interpreter).
    """
    linked = 0

    def link(s: str, d: str) -> None:
        nonlocal linked
        try:
            os.link(s, d, follow_symlinks=False)
            linked += 1
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            shutil.copy2(s, d, follow_symlinks=False)

    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    except shutil.Error as exc:
        raise EnvironmentProblem(f"cannot clone {src} to stage the upgrade: {str(exc)[:300]}") from None
    return linked


def unique_bytes(root: Path) -> int:
    """Bytes held only by ``root`` (files with no other hard link): what keeping it costs on disk."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if st.st_nlink == 1 and not os.path.islink(os.path.join(dirpath, f)):
                total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


_RMTREE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


def discard(path: Path, layout: Layout) -> None:
    """Drop a state offpkg kept (a generation past --keep, the state a rollback undid) without waiting for it.

    The directory is renamed aside at once (atomic: it is gone from the venv's names),
    then deleted by a detached process: a GPU stack's 40 000 files take seconds to
    unlink, which a rollback should not wait for. A deletion that dies is finished by
    the next run on this venv (its trash name carries a pid that is gone).
    """
    if not path.exists():
        return
    trash = layout.trash()
    os.rename(path, trash)
    import subprocess
    import sys

    try:
        subprocess.Popen([sys.executable, "-c", _RMTREE, str(trash)], start_new_session=True, close_fds=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        shutil.rmtree(trash, ignore_errors=True)


def remove_tree(path: Path, layout: Layout) -> None:
    """Remove a directory offpkg made (a stage, a dropped generation): rename it aside first, then delete.

    The rename makes the removal look atomic: a crash mid-delete leaves a trash
    directory the next run finishes removing, never a half-deleted generation.
    """
    if not path.exists():
        return
    trash = layout.trash()
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
