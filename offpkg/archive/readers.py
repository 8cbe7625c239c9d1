"""Member readers for tar (plain or compressed) and zip archives.

Readers yield every member as a ``_Raw`` record, unchecked; ``_checked`` runs each
one through the rules in :mod:`offpkg.archive.rules` as it passes. Data is streamed
(never a whole member in memory).
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UnsafeArchiveError
from ._common import _HINT_CORRUPT, _HINT_UNSAFE
from .formats import _PARSE_ERRORS, _corrupt, _decompressed, _open_input, _read_up_to, _zstd_errors
from .rules import _MAX_RATIO, _ONLY, _RATIO_MIN_SIZE, MAX_NAME_BYTES, _Checker, _Member, _Raw, display_name


class _EndTrackingTarInfo(tarfile.TarInfo):
    """Records why tarfile stopped: it silently treats a cut-off or garbled header as the end."""

    @classmethod
    def fromtarfile(cls, tf: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tf)
        except tarfile.EOFHeaderError:
            tf._offpkg_end = None  # type: ignore[attr-defined]  # a zero block: the proper end
            raise
        except tarfile.EmptyHeaderError:
            tf._offpkg_end = "truncated: it ends without an end-of-archive marker"  # type: ignore[attr-defined]
            raise
        except tarfile.TruncatedHeaderError:
            tf._offpkg_end = "truncated in the middle of a member header"  # type: ignore[attr-defined]
            raise
        except tarfile.InvalidHeaderError as e:
            tf._offpkg_end = f"corrupt: bad member header ({e})"  # type: ignore[attr-defined]
            raise


def _tar_kind(ti: tarfile.TarInfo) -> str:
    t = ti.type
    if t in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
        if ti.sparse is not None:
            return "special:is a sparse file, which offpkg does not support"
        return "file"
    if t == tarfile.DIRTYPE:
        return "dir"
    if t == tarfile.SYMTYPE:
        return "symlink"
    if t == tarfile.LNKTYPE:
        return "hardlink"
    words = {
        tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device",
        tarfile.FIFOTYPE: "a FIFO (named pipe)",
        tarfile.GNUTYPE_SPARSE: "a sparse file",
    }
    return f"special:is {words.get(t, f'of unsupported type {t!r}')}{_ONLY}"


def _tar_raw(ti: tarfile.TarInfo) -> _Raw:
    return _Raw(
        name=ti.name,
        kind=_tar_kind(ti),
        size=ti.size,
        mode=ti.mode,
        mtime=ti.mtime,
        linkname=ti.linkname,
        ref=ti,
        data_offset=ti.offset_data,
    )


class _TarReader:
    """Iterates tar members; ``open(raw)`` streams the data of the current member."""

    def __init__(self, path: Path, fmt: str, offset: int) -> None:
        self.path, self.fmt, self.offset = path, fmt, offset
        self._stack = ExitStack()
        self.tf: tarfile.TarFile | None = None

    def __enter__(self) -> _TarReader:
        try:
            f = self._stack.enter_context(_open_input(self.path))
            f.seek(self.offset)
            if self.fmt == "tar":
                self.tf = self._open_tar(fileobj=f, mode="r:")
            else:
                stream = self._stack.enter_context(_decompressed(self.path, self.fmt, f))
                self.tf = self._open_tar(fileobj=stream, mode="r|")
        except BaseException:
            self._stack.close()
            raise
        return self

    def _open_tar(self, **kw: Any) -> tarfile.TarFile:
        try:
            tf = tarfile.open(tarinfo=_EndTrackingTarInfo, encoding="utf-8", errors="surrogateescape", **kw)
        except (*_PARSE_ERRORS, *_zstd_errors()) as e:
            raise _corrupt(self.path, e) from None
        self._stack.callback(tf.close)
        return tf

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def members(self) -> Iterator[_Raw]:
        assert self.tf is not None
        it = iter(self.tf)
        last = None
        while True:
            try:
                ti = next(it)
            except StopIteration:
                break
            except (*_PARSE_ERRORS, *_zstd_errors()) as e:
                where = f" after member {display_name(last)}" if last else ""
                raise _corrupt(self.path, e, where) from None
            last = ti.name
            yield _tar_raw(ti)
        problem = getattr(self.tf, "_offpkg_end", None)
        if problem:
            where = f" after member {display_name(last)}" if last else ""
            raise InputError(f"{self.path} is {problem}{where}", hint=_HINT_CORRUPT)

    def open(self, raw: _Raw) -> IO[bytes]:
        assert self.tf is not None
        try:
            f = self.tf.extractfile(raw.ref)
        except (*_PARSE_ERRORS, *_zstd_errors()) as e:
            raise _corrupt(self.path, e, f" at member {display_name(raw.name)}") from None
        assert f is not None
        return f

    def defence_in_depth(self, raw: _Raw, root: str) -> str | None:
        """Python's own 'data' filter as a second opinion (our checks already passed)."""
        data_filter = getattr(tarfile, "data_filter", None)
        if data_filter is None:
            return None
        try:
            data_filter(raw.ref, root)
        except tarfile.FilterError as e:
            return f"is refused by Python's tarfile data filter ({e})"
        except Exception as e:  # noqa: BLE001 - a crash in the filter is a refusal, not a traceback
            return f"is refused by Python's tarfile data filter ({type(e).__name__})"
        return None


class _ZipReader:
    """Iterates zip members (central directory order); reads each member independently."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path, self.offset = path, offset
        self._stack = ExitStack()
        self.zf: zipfile.ZipFile | None = None

    def __enter__(self) -> _ZipReader:
        try:
            f = self._stack.enter_context(_open_input(self.path))
            try:
                # zipfile finds the central directory from the end, so data before the
                # archive (a self-extracting header) is handled by zipfile itself.
                self.zf = zipfile.ZipFile(f)
            except (*_PARSE_ERRORS,) as e:
                raise _corrupt(self.path, e) from None
            self._stack.callback(self.zf.close)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def members(self) -> Iterator[_Raw]:
        assert self.zf is not None
        infos = self.zf.infolist()
        self._check_layout(infos)
        for zi in infos:
            yield self._raw(zi)

    def _check_layout(self, infos: list[zipfile.ZipInfo]) -> None:
        """Refuse overlapping members (the 'overlapped files' zip bomb construction)."""
        ordered = sorted(infos, key=lambda z: z.header_offset)
        end_of_data = getattr(self.zf, "start_dir", None)
        for i, zi in enumerate(ordered):
            nxt = ordered[i + 1].header_offset if i + 1 < len(ordered) else end_of_data
            if nxt is not None and zi.header_offset + 30 + zi.compress_size > nxt:
                raise UnsafeArchiveError(
                    f"unsafe archive {self.path}: member {display_name(zi.orig_filename)} overlaps the next member"
                    " (a zip bomb construction)",
                    hint=_HINT_UNSAFE,
                )

    def _raw(self, zi: zipfile.ZipInfo) -> _Raw:
        # orig_filename: ZipInfo.filename is cut at a NUL byte, which would hide it from our checks.
        name = zi.orig_filename
        mode = (zi.external_attr >> 16) & 0xFFFF if zi.create_system == 3 else 0
        ftype = stat.S_IFMT(mode)
        if zi.flag_bits & 0x1:
            kind = "special:is encrypted; offpkg cannot check encrypted members"
        elif ftype == stat.S_IFLNK:
            kind = "symlink"
        elif ftype == stat.S_IFDIR or (ftype in (0, stat.S_IFREG) and name.endswith("/")):
            kind = "dir"
        elif ftype in (0, stat.S_IFREG):
            kind = "file"
        else:
            kind = f"special:is {_ZIP_SPECIAL.get(ftype, f'of unsupported file type {oct(ftype)}')}{_ONLY}"
        return _Raw(name=name, kind=kind, size=zi.file_size, mode=mode or 0o644, mtime=None, linkname="", ref=zi)

    def check_sizes(self, raw: _Raw) -> str | None:
        """Declared-size and ratio rules, before any data is read."""
        zi: zipfile.ZipInfo = raw.ref
        if raw.kind == "dir" and zi.file_size:
            return "is a directory that carries data"
        if zi.compress_type == zipfile.ZIP_STORED and zi.compress_size != zi.file_size:
            return f"is stored uncompressed but declares {zi.file_size} bytes in {zi.compress_size} (a size lie)"
        if zi.file_size and not zi.compress_size:
            return "declares data but no compressed bytes (a size lie)"
        if zi.file_size > _RATIO_MIN_SIZE and zi.file_size > _MAX_RATIO * zi.compress_size:
            return (
                f"expands {zi.compress_size} compressed bytes to {zi.file_size}"
                f" (over {_MAX_RATIO}:1; a zip bomb?)"
            )
        return None

    def read_link(self, raw: _Raw) -> str:
        """A zip symlink keeps its target as the member's data."""
        if raw.size > MAX_NAME_BYTES:
            raise UnsafeArchiveError(
                f"unsafe archive {self.path}: member {display_name(raw.name)} is a symbolic link"
                " with an overlong target",
                hint=_HINT_UNSAFE,
            )
        with self.open(raw) as f:
            data = _read_up_to(self.path, f, MAX_NAME_BYTES + 1)
        return data.decode("utf-8", "surrogateescape")

    def open(self, raw: _Raw) -> IO[bytes]:
        assert self.zf is not None
        try:
            return self.zf.open(raw.ref)
        except (*_PARSE_ERRORS, RuntimeError) as e:
            raise _corrupt(self.path, e, f" at member {display_name(raw.name)}") from None


_ZIP_SPECIAL = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def _reader(path: Path, fmt: str, offset: int) -> _TarReader | _ZipReader:
    return _ZipReader(path, offset) if fmt == "zip" else _TarReader(path, fmt, offset)


def _checked(reader: _TarReader | _ZipReader, checker: _Checker) -> Iterator[tuple[_Raw, _Member | None]]:
    """Members with every per-member rule applied (symlink chains are checked by checker.finish())."""
    for raw in reader.members():
        if isinstance(reader, _ZipReader):
            problem = reader.check_sizes(raw)
            if problem:
                raise checker.reject(raw.name, problem)
            if raw.kind == "symlink":
                raw.linkname = reader.read_link(raw)
        yield raw, checker.add(raw)
