"""Safe extraction: check every member, then write all of them, or nothing.

Extraction goes into a private temporary sibling directory that is renamed onto the
destination only when everything succeeded.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import InputError, OutputExistsError, UnsafeArchiveError
from ._common import _CHUNK, _HINT_CORRUPT, _HINT_UNSAFE, _O_BINARY, _O_CLOEXEC, _O_NOFOLLOW, _os_problem
from .formats import _PARSE_ERRORS, _corrupt, _zstd_errors, detect_format
from .readers import _checked, _reader, _TarReader, _ZipReader
from .rules import DEFAULT_MAX_MEMBERS, DEFAULT_MAX_TOTAL_SIZE, Expected, _Checker, _Member, _Raw, display_name


OnProgress = Callable[[int], None]


class _Writer:
    """Writes checked members under a fresh private root; symlinks are made last."""

    def __init__(self, root: str, archive: Path, progress: OnProgress | None) -> None:
        self.root = root
        self.archive = archive
        self.progress = progress
        self.dirs: set[tuple[str, ...]] = {()}
        self.modes: dict[tuple[str, ...], int] = {}
        self.symlinks: list[_Member] = []

    def path(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.root, *parts)

    def ensure_dir(self, parts: tuple[str, ...]) -> None:
        for i in range(1, len(parts) + 1):
            sub = parts[:i]
            if sub in self.dirs:
                continue
            p = self.path(sub)
            try:
                os.mkdir(p, 0o755)
            except FileExistsError:
                # Only we write here, and files never sit where a directory goes (checked);
                # a case-insensitive filesystem can merge 'A/' and 'a/', which is harmless.
                if not stat.S_ISDIR(os.lstat(p).st_mode):
                    raise UnsafeArchiveError(
                        f"unsafe archive {self.archive}: {display_name('/'.join(sub))} is not a directory",
                        hint=_HINT_UNSAFE,
                    ) from None
            self.dirs.add(sub)

    def write_file(self, m: _Member, src: IO[bytes]) -> None:
        self.ensure_dir(m.parts[:-1])
        p = self.path(m.parts)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY, 0o600)
        except FileExistsError:
            raise UnsafeArchiveError(
                f"unsafe archive {self.archive}: member {display_name(m.name)} collides with an earlier member"
                " on this filesystem",
                hint=_HINT_UNSAFE,
            ) from None
        try:
            written = 0
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except (*_PARSE_ERRORS, *_zstd_errors(), RuntimeError) as e:
                    raise _corrupt(self.archive, e, f" at member {display_name(m.name)}") from None
                if not chunk:
                    break
                written += len(chunk)
                if written > m.raw.size:
                    raise UnsafeArchiveError(
                        f"unsafe archive {self.archive}: member {display_name(m.name)} holds more data than the"
                        f" {m.raw.size} bytes it declares",
                        hint=_HINT_UNSAFE,
                    )
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                if self.progress:
                    self.progress(len(chunk))
            if written != m.raw.size:
                raise InputError(
                    f"{self.archive} is truncated: member {display_name(m.name)} declares {m.raw.size} bytes"
                    f" but holds {written}",
                    hint=_HINT_CORRUPT,
                )
            mode = 0o755 if m.raw.mode & 0o111 else 0o644
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            else:  # pragma: no cover - Windows before 3.13
                os.chmod(p, mode)
            if m.raw.mtime is not None and 0 <= m.raw.mtime < 1 << 33 and os.utime in os.supports_fd:
                os.utime(fd, (m.raw.mtime, m.raw.mtime))
        finally:
            os.close(fd)

    def hardlink(self, m: _Member) -> None:
        self.ensure_dir(m.parts[:-1])
        src, dst = self.path(m.link_parts), self.path(m.parts)
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.EEXIST:
                raise
            shutil.copy2(src, dst, follow_symlinks=False)  # a filesystem without hard links

    def finish(self) -> None:
        for m in self.symlinks:
            self.ensure_dir(m.parts[:-1])
            os.symlink(m.raw.linkname, self.path(m.parts))
        # mkdir obeys the umask; the result should not depend on it.
        for parts in self.dirs:
            os.chmod(self.path(parts), 0o755)


def _prepare_dest(dest: Path) -> list[Path]:
    """Check dest is absent or an empty directory; create missing parents (returned, to undo)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode) or any(os.scandir(dest)):
            raise OutputExistsError(
                f"destination {dest} already exists and is not an empty directory",
                hint="Choose a new directory, or remove this one first.",
            )
    created: list[Path] = []
    parent = dest.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for p in reversed(created):
        try:
            p.mkdir()
        except OSError as e:
            raise _os_problem(e, f"cannot create {p}") from None
    return created


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    allow_symlinks: bool = False,
    progress: OnProgress | None = None,
    offset: int = 0,
    allow_case_collisions: bool = False,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    max_members: int = DEFAULT_MAX_MEMBERS,
    expected: Expected | None = None,
) -> list[str]:
    """Check every member, then extract all of them into the new directory ``dest``.

    Returns the normalised member names in archive order. Raises UnsafeArchiveError
    naming the first offending member, InputError for a corrupt or truncated archive,
    OutputExistsError when ``dest`` is a non-empty directory or a file, and
    EnvironmentProblem when the disk is full or not writable. On any failure nothing is
    left behind. ``allow_symlinks`` admits relative symlinks that stay inside ``dest``
    and hard links to earlier regular members (conda archives need them; bundles do not).
    ``allow_case_collisions`` admits names that differ only in case (ncurses' terminfo
    in conda packages has them; they are only safe on case-sensitive filesystems).
    ``max_members`` caps the member count; ``expected`` (a bundle manifest's ``{path:
    size}``, read first) refuses any other member, or another size, before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    fmt = detect_format(archive, offset=offset)
    created_parents = _prepare_dest(dest)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{dest.name[:100]}.offpkg-partial-", dir=dest.parent)
    except OSError as e:
        _remove_created(created_parents)
        raise _os_problem(e, f"cannot create a directory next to {dest}") from None
    try:
        rules = _Rules(allow_symlinks, allow_case_collisions, max_total_size, max_members,
                       expected)
        names = _extract_into(archive, fmt, offset, tmp, rules, progress)
        try:
            os.rename(tmp, dest)  # POSIX replaces an empty directory atomically
        except OSError:
            if dest.is_dir() and not any(os.scandir(dest)):
                os.rmdir(dest)
                os.rename(tmp, dest)
            else:
                raise OutputExistsError(f"destination {dest} appeared while extracting; nothing was changed") from None
        return names
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created_parents)
        if isinstance(exc, OSError):
            raise _os_problem(exc, f"cannot extract {archive} into {dest}") from None
        raise


def _remove_created(created: list[Path]) -> None:
    for p in created:
        try:
            p.rmdir()
        except OSError:
            pass


@dataclass(frozen=True)
class _Rules:
    allow_symlinks: bool
    allow_case_collisions: bool
    max_total_size: int
    max_members: int = DEFAULT_MAX_MEMBERS
    expected: Expected | None = None


def _extract_into(
    archive: Path, fmt: str, offset: int, root: str, rules: _Rules, progress: OnProgress | None
) -> list[str]:
    def checker() -> _Checker:
        return _Checker(
            archive,
            allow_symlinks=rules.allow_symlinks,
            allow_case_collisions=rules.allow_case_collisions,
            max_total_size=rules.max_total_size,
            max_members=rules.max_members,
            expected=rules.expected,
        )

    # Pass 1: every rule, over every member, before anything is written.
    first = checker()
    with _reader(archive, fmt, offset) as reader:
        checked = list(_checked(reader, first))
        first.finish()
        if isinstance(reader, _TarReader):
            for raw, member in checked:
                problem = reader.defence_in_depth(raw, root) if member is not None else None
                if problem:
                    raise first.reject(raw.name, problem)
        writer = _Writer(root, archive, progress)
        if fmt in ("tar", "zip"):
            # Seekable: extract the very members that were checked.
            for raw, member in checked:
                _write_member(writer, reader, raw, member)
            writer.finish()
            return [m.name for _, m in checked if m is not None]
    # Compressed tar: a second stream. It must be the same sequence of members (the
    # file could change between passes), and the rules run again as it goes.
    second = checker()
    with _reader(archive, fmt, offset) as reader:
        i = 0
        for raw, member in _checked(reader, second):
            if i >= len(checked) or checked[i][0].fingerprint() != raw.fingerprint():
                raise UnsafeArchiveError(
                    f"unsafe archive {archive}: it changed while being extracted (at member {display_name(raw.name)})",
                    hint="Make sure nothing writes to the archive while offpkg reads it, then retry.",
                )
            _write_member(writer, reader, raw, member)
            i += 1
        if i != len(checked):
            raise UnsafeArchiveError(f"unsafe archive {archive}: it changed while being extracted", hint=_HINT_UNSAFE)
        second.finish()
    writer.finish()
    return [m.name for _, m in checked if m is not None]


def _write_member(writer: _Writer, reader: _TarReader | _ZipReader, raw: _Raw, member: _Member | None) -> None:
    if member is None:
        return
    kind = member.kind
    if kind == "dir":
        writer.ensure_dir(member.parts)
    elif kind == "file":
        with reader.open(raw) as src:
            writer.write_file(member, src)
    elif kind == "hardlink":
        writer.hardlink(member)
    elif kind == "symlink":
        writer.symlinks.append(member)
    else:  # pragma: no cover - the checker refuses every other kind
        raise AssertionError(kind)
