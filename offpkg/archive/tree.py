"""The extraction rules applied to entries that are not in an archive (yet).

A folder about to be packed (a conda environment) or copied (a no-archive conda-pack
output) must meet exactly the rules :func:`~offpkg.archive.safe_extract` applies to
archive members, with the same words: :func:`check_entries` runs them through the same
:class:`~offpkg.archive.rules._Checker`; :func:`entry_of` describes one path as a member.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import UnsafeArchiveError
from ._common import _HINT_UNSAFE
from .rules import _ONLY, DEFAULT_MAX_TOTAL_SIZE, _Checker, _Raw, display_name

_SPECIAL = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (named pipe)",
            stat.S_IFSOCK: "a socket"}


def entry_of(path: str | os.PathLike[str], name: str) -> _Raw:
    """``path`` (not followed if a link) as the archive member ``name`` it would become."""
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return _Raw(name, "symlink", 0, mode, st.st_mtime, os.readlink(path))
    if stat.S_ISDIR(mode):
        return _Raw(name, "dir", 0, mode, st.st_mtime, "")
    if stat.S_ISREG(mode):
        return _Raw(name, "file", st.st_size, mode, st.st_mtime, "")
    what = _SPECIAL.get(stat.S_IFMT(mode), f"of unsupported type {stat.S_IFMT(mode):o}")
    return _Raw(name, f"special:is {what}{_ONLY}", 0, mode, st.st_mtime, "")


class _LabelledChecker(_Checker):
    """The same rules; the message leads with ``lead`` instead of ``unsafe archive PATH``."""

    def __init__(self, lead: str, hint: str, **kw: object) -> None:
        super().__init__(Path(lead), **kw)  # type: ignore[arg-type]
        self.lead, self.hint = lead, hint

    def reject(self, name: str, reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{self.lead}: member {display_name(name)} {reason}", hint=self.hint)


def check_entries(where: str | os.PathLike[str], entries: Iterable[_Raw], *, lead: str | None = None,
                  hint: str = _HINT_UNSAFE, allow_symlinks: bool = True, allow_case_collisions: bool = True,
                  max_total_size: int = DEFAULT_MAX_TOTAL_SIZE) -> list[_Raw]:
    """Apply the extraction rules to ``entries`` in order; UnsafeArchiveError names the first offender.

    The message is ``unsafe archive WHERE: member NAME REASON`` (``lead`` replaces the part
    before the colon), REASON in the very words :func:`~offpkg.archive.safe_extract` uses.
    """
    checker = _LabelledChecker(lead or f"unsafe archive {where}", hint, allow_symlinks=allow_symlinks,
                               allow_case_collisions=allow_case_collisions, max_total_size=max_total_size)
    out = []
    for raw in entries:
        checker.add(raw)
        out.append(raw)
    checker.finish()
    return out


def tree_entries(root: Path) -> list[tuple[str, _Raw]]:
    """Every entry below ``root`` (links not followed), parents first: (full path, entry as a member)."""
    out: list[tuple[str, _Raw]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for nm in dirnames + sorted(filenames):
            full = os.path.join(dirpath, nm)
            out.append((full, entry_of(full, Path(os.path.relpath(full, root)).as_posix())))
    return out
