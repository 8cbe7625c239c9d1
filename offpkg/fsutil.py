"""Atomic file-system helpers: temp siblings renamed into place, hard links with copy fallback."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import EnvironmentProblem, OutputExistsError


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            # mkstemp creates 0600; a written file should get the usual umask-derived mode.
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same filesystem), else copy it."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copyfile(src, dst)


def remove(path: Path) -> None:
    """Remove a file, symlink or tree; best effort, never follows symlinks, any depth."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        remove_tree(path)


def remove_tree(root: Path) -> None:
    """``shutil.rmtree(root, ignore_errors=True)`` without recursion.

    shutil.rmtree recurses once per level (before Python 3.12), so a hostile tree
    a thousand folders deep raises RecursionError and stays behind; this walks
    with an explicit stack. Symlinks are unlinked, never followed.
    """
    stack = [(Path(root), False)]
    while stack:
        path, visited = stack.pop()
        if visited:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            continue
        try:
            entries = list(os.scandir(path))
        except NotADirectoryError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        except OSError:
            continue
        stack.append((path, True))
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((Path(e.path), False))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)


def check_output(path: Path, force: bool) -> None:
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(f"{path} already exists", hint="choose another output path, or pass --force to replace it")


@contextmanager
def staging(final: Path, *, directory: bool) -> Iterator[Path]:
    """Yield a temp sibling of ``final`` (dir or file path); remove it on failure.

    The caller renames it into place with :func:`commit`; anything left behind on
    an exception (or Ctrl-C) is removed, so a failed run never leaves something
    that looks complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_dead_staging(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.offpkg-tmp-{os.getpid()}-", dir=final.parent))
    target = tmp if directory else tmp / final.name
    try:
        yield target
    finally:
        if tmp.exists():
            remove_tree(tmp)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a run that was killed left its temporaries)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def clean_dead_staging(final: Path) -> list[Path]:
    """Remove temp siblings of ``final`` left by runs that were killed (their pid is gone)."""
    removed = []
    prefix = f".{final.name}.offpkg-tmp-"
    for p in final.parent.glob(prefix + "*"):
        pid = p.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            remove(p)
            removed.append(p)
    return removed


def commit(staged: Path, final: Path, force: bool) -> None:
    """Move a staged file or directory onto ``final`` (replacing it only with ``force``)."""
    old = None
    if final.exists() or final.is_symlink():
        if not force:
            raise OutputExistsError(f"{final} already exists", hint="pass --force to replace it")
        old = final.with_name(f".{final.name}.offpkg-old-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(staged, final)
    except OSError as exc:
        if old is not None:
            os.replace(old, final)
        raise EnvironmentProblem(f"cannot move the finished output to {final}: {exc.strerror}") from None
    if old is not None:
        remove(old)
