"""Deterministic writing: a byte-for-byte reproducible tar of a directory."""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ._common import _BLOCK, _CHUNK, _O_BINARY, _O_CLOEXEC, _O_NOFOLLOW, _RECORD, _os_problem
from .rules import _Bad, _parse_name


def _source_date_epoch(mtime: int | None) -> int:
    if mtime is not None:
        if mtime < 0:
            raise UsageError(f"archive mtime must not be negative (got {mtime})")
        return int(mtime)
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is None or env.strip() == "":
        return 0
    try:
        value = int(env.strip())
    except ValueError:
        raise InputError(
            f"SOURCE_DATE_EPOCH={env!r} is not a whole number of seconds",
            hint="Set it to e.g. $(git log -1 --format=%ct), or unset it.",
        ) from None
    if value < 0:
        raise InputError(f"SOURCE_DATE_EPOCH={env!r} is negative")
    return value


def _collect(src: Path) -> list[tuple[tuple[str, ...], str, os.stat_result]]:
    """(relative parts, path, lstat) of the tree in a stable, locale-independent order."""
    out: list[tuple[tuple[str, ...], str, os.stat_result]] = []

    def walk(directory: str, rel: tuple[str, ...]) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError as e:
            raise InputError(f"cannot read directory {directory}: {e.strerror or e}") from None
        for name in names:
            p = os.path.join(directory, name)
            st = os.lstat(p)
            parts = (*rel, name)
            if stat.S_ISLNK(st.st_mode):
                raise InputError(
                    f"cannot archive {p}: it is a symbolic link;"
                    " bundle archives hold regular files and directories only",
                    hint="Replace the link with a copy of what it points to (cp -L), or remove it.",
                )
            if stat.S_ISDIR(st.st_mode):
                out.append((parts, p, st))
                walk(p, parts)
            elif stat.S_ISREG(st.st_mode):
                out.append((parts, p, st))
            else:
                raise InputError(
                    f"cannot archive {p}: it is neither a regular file nor a directory",
                    hint="Remove sockets, pipes and device files from the directory being archived.",
                )

    walk(str(src), ())
    return out


class _Sink:
    """Where tar bytes go: the file itself (fast kernel copies) or a compressor."""

    def __init__(self, raw: io.FileIO, compression: str | None) -> None:
        self.raw = raw
        self.fd = raw.fileno()
        self.comp: Any = None
        if compression == "gz":
            # mtime=0 and no file name: the gzip header must not depend on when or where.
            self.comp = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        elif compression == "zst":
            import zstandard

            # Single-threaded: the frame must not depend on the machine's core count.
            cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, threads=0)
            self.comp = cctx.stream_writer(raw, closefd=False)
        self.buf = bytearray(_CHUNK)
        self.total = 0  # uncompressed tar bytes so far

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if self.comp is not None:
            self.comp.write(data)
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def copy_from(self, fd: int, size: int, what: str) -> None:
        left = size
        if self.comp is None and hasattr(os, "sendfile"):
            try:
                pos = 0
                while left:
                    n = os.sendfile(self.fd, fd, pos, min(left, 1 << 30))
                    if n == 0:
                        break
                    pos += n
                    left -= n
                    self.total += n
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP) or left != size:
                    raise
            else:
                if left:
                    raise InputError(f"{what} shrank while it was being archived", hint="Run the command again.")
                return
        view = memoryview(self.buf)
        while left:
            n = _readinto(fd, view[: min(left, len(self.buf))])
            if n == 0:
                raise InputError(f"{what} shrank while it was being archived", hint="Run the command again.")
            self.write(view[:n])
            left -= n

    def close(self) -> None:
        if self.comp is not None:
            self.comp.close()  # ends the gzip member / zstd frame; raw stays open


def _readinto(fd: int, view: memoryview) -> int:
    if hasattr(os, "readv"):
        return os.readv(fd, [view])
    chunk = os.read(fd, len(view))  # pragma: no cover - Windows
    view[: len(chunk)] = chunk
    return len(chunk)


def _tar_header(name: str, *, is_dir: bool, size: int, mode: int, mtime: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    ti.size = 0 if is_dir else size
    ti.mode = mode
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tar(
    src_dir: Path,
    out: Path,
    *,
    compression: str | None = None,
    mtime: int | None = None,
    arcname_prefix: str = "",
) -> None:
    """Write a byte-for-byte reproducible tar of ``src_dir`` (regular files and directories only).

    Entries are sorted; mtime is ``mtime``, else SOURCE_DATE_EPOCH, else 0; owners are
    0/0 with empty names; modes are 0o755 (dirs, executables) or 0o644; PAX format without
    atime/ctime. ``compression``: None (plain tar), "gz" or "zst". The archive is
    written to a temporary sibling, fsynced and renamed onto ``out``.
    """
    src, out = Path(src_dir), Path(out)
    if compression not in (None, "gz", "zst"):
        raise UsageError(f"unknown compression {compression!r}; use none, 'gz' or 'zst'")
    if not src.is_dir():
        raise InputError(f"cannot archive {src}: not a directory")
    epoch = _source_date_epoch(mtime)
    try:
        prefix = _parse_name(arcname_prefix) if arcname_prefix.strip("/.") else []
    except _Bad as e:
        raise UsageError(f"archive prefix {arcname_prefix!r} {e}") from None
    out_abs, src_abs = out.resolve(), src.resolve()
    if out_abs == src_abs or src_abs in out_abs.parents:
        raise UsageError(f"cannot write {out} inside the directory being archived ({src})")
    entries = _collect(src)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name[:100]}.", suffix=".partial", dir=out.parent)
    except OSError as e:
        raise _os_problem(e, f"cannot write next to {out}") from None
    try:
        with open(fd, "wb", buffering=0, closefd=True) as raw:
            sink = _Sink(raw, compression)  # type: ignore[arg-type]
            for i in range(len(prefix)):
                sink.write(_tar_header("/".join(prefix[: i + 1]), is_dir=True, size=0, mode=0o755, mtime=epoch))
            for parts, path, st in entries:
                name = "/".join((*prefix, *parts))
                if stat.S_ISDIR(st.st_mode):
                    sink.write(_tar_header(name, is_dir=True, size=0, mode=0o755, mtime=epoch))
                    continue
                _write_file_entry(sink, name, path, epoch)
            # End of archive: two zero blocks, padded to a whole record like GNU tar.
            sink.write(b"\0" * (2 * _BLOCK))
            sink.write(b"\0" * (-sink.total % _RECORD))
            sink.close()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _os_problem(exc, f"cannot write {out}") from None
        raise


def _write_file_entry(sink: _Sink, name: str, path: str, epoch: int) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"cannot archive {path}: it is no longer a regular file")
        mode = 0o755 if st.st_mode & 0o111 else 0o644
        sink.write(_tar_header(name, is_dir=False, size=st.st_size, mode=mode, mtime=epoch))
        sink.copy_from(fd, st.st_size, path)
        if st.st_size % _BLOCK:
            sink.write(b"\0" * (_BLOCK - st.st_size % _BLOCK))
    finally:
        os.close(fd)
