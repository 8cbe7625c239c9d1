"""Archive formats: detection by magic bytes, decompression, self-extracting payload offsets.

Supported formats, detected by magic bytes: tar, tar.gz, tar.zst, tar.bz2, tar.xz
and zip. An archive may sit at an offset inside a larger file (a self-extracting
bundle: a shell header, then ``__OFFPKG_PAYLOAD_BELOW__``, then the tar).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UnsafeArchiveError
from ._common import _BLOCK, _HINT_CORRUPT, _HINT_UNSAFE
from .rules import _MAX_RATIO, _RATIO_MIN_SIZE


FORMATS = ("tar", "tar.gz", "tar.zst", "tar.bz2", "tar.xz", "zip")
PAYLOAD_MARKER = b"__OFFPKG_PAYLOAD_BELOW__\n"
_MAX_HEADER_SCAN = 16 << 20  # a self-extracting shell header is far smaller than this


# --------------------------------------------------------------------------- format detection


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "tar.zst"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar.xz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if len(head) == _BLOCK and _is_tar_header(head):
        return "tar"
    return None


def _is_tar_header(block: bytes) -> bool:
    if block == b"\0" * _BLOCK:
        return True  # an empty archive starts with its end marker
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def detect_format(path: Path, *, offset: int = 0) -> str:
    """Return one of FORMATS for the archive at ``offset`` in ``path``, judged by its bytes."""
    path = Path(path)
    with _open_input(path) as f:
        f.seek(offset)
        head = f.read(_BLOCK)
        fmt = _sniff(head)
        if fmt is None:
            if not head:
                raise InputError(f"{path} is empty (no archive at byte {offset})", hint=_HINT_CORRUPT)
            if len(head) < _BLOCK and head.strip(b"\0") == b"":
                raise InputError(f"{path} is truncated: too short to be a tar archive", hint=_HINT_CORRUPT)
            raise InputError(
                f"{path} is not a supported archive (expected tar, tar.gz, tar.zst, tar.bz2, tar.xz or zip)",
                hint="Check that you passed the right file; a partial copy also looks like this.",
            )
        if fmt not in ("tar", "zip"):
            # A compressed stream must hold a tar: look at its first block now, not halfway through.
            f.seek(offset)
            with _decompressed(path, fmt, f) as stream:
                block = _read_up_to(path, stream, _BLOCK)
            if len(block) < _BLOCK or not _is_tar_header(block):
                raise InputError(f"{path} is a {fmt[4:]} stream that does not hold a tar archive", hint=_HINT_CORRUPT)
    return fmt


@contextmanager
def _open_input(path: Path) -> Iterator[IO[bytes]]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(f"archive not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an archive") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        yield f


# --------------------------------------------------------------------------- decompression


def _corrupt(path: Path, exc: BaseException, where: str = "") -> InputError:
    what = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in what or "truncated" in what.lower():
        msg = f"{path} is truncated{where}: {what}"
    else:
        msg = f"{path} is corrupt{where}: {what}"
    return InputError(msg, hint=_HINT_CORRUPT)


_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    UnicodeError,
    OverflowError,
    NotImplementedError,
    struct.error,
    IndexError,
    KeyError,
)


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return ()
    return (zstandard.ZstdError,)


def _read_up_to(path: Path, stream: IO[bytes], n: int) -> bytes:
    """Read up to n bytes from a decompressing stream; decompressor failures become InputError."""
    out = bytearray()
    try:
        while len(out) < n:
            chunk = stream.read(n - len(out))
            if not chunk:
                break
            out += chunk
    except (*_PARSE_ERRORS, *_zstd_errors()) as e:
        raise _corrupt(path, e) from None
    return bytes(out)


class _CountingReader:
    """The compressed input, counting what the decompressor consumed (for the ratio rule)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.consumed += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the caller closes the file
        pass


class _RatioGuard:
    """The decompressed stream; refuses to go on once it expands its input more than ``max_ratio``:1.

    Applied to every compression (gzip, bzip2, xz, zstd) and checked on every read, so a
    bomb is refused after about ``_RATIO_MIN_SIZE`` bytes of output, whatever it declares.
    """

    def __init__(self, path: Path, fmt: str, stream: Any, counter: _CountingReader, max_ratio: int) -> None:
        self.path, self.fmt, self.stream, self.counter, self.max_ratio = path, fmt, stream, counter, max_ratio
        self.produced = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.produced += len(data)
        if self.produced > _RATIO_MIN_SIZE and self.produced > self.max_ratio * max(self.counter.consumed, 1):
            raise UnsafeArchiveError(
                f"unsafe archive {self.path}: its {self.fmt[4:]} stream expands {self.counter.consumed} bytes to"
                f" over {self.produced} (more than {self.max_ratio}:1; a decompression bomb?)", hint=_HINT_UNSAFE)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.stream.close()


@contextmanager
def _decompressed(path: Path, fmt: str, f: IO[bytes], max_ratio: int = _MAX_RATIO) -> Iterator[IO[bytes]]:
    """A reader of the decompressed stream starting at f's position (f is not closed)."""
    src = _CountingReader(f)
    if fmt == "tar.gz":
        stream: Any = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    elif fmt == "tar.bz2":
        stream = bz2.BZ2File(src, "rb")  # type: ignore[arg-type]
    elif fmt == "tar.xz":
        stream = lzma.LZMAFile(src, "rb")  # type: ignore[arg-type]
    elif fmt == "tar.zst":
        import zstandard

        # zstandard's reader stops silently at a cut-off frame: check the frames first.
        start = f.tell()
        _check_zstd_frames(path, f, max_ratio)
        f.seek(start)
        stream = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True, closefd=False)
    else:  # pragma: no cover - callers pass compressed formats only
        raise AssertionError(fmt)
    guarded = _RatioGuard(path, fmt, stream, src, max_ratio)
    try:
        yield guarded  # type: ignore[misc]
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - a failing close of a reader must not hide the real error
            pass


_ZSTD_MAX_BLOCK = 128 << 10  # RFC 8878: no block regenerates more than 128 KiB


def _check_zstd_frames(path: Path, f: IO[bytes], max_ratio: int = _MAX_RATIO) -> None:
    """Walk zstd frame and block headers (RFC 8878) to the end; refuse a stream that is cut off.

    The walk also bounds what the stream can regenerate (a raw or RLE block its size, a
    compressed one at most 128 KiB): a stream of 4-byte RLE blocks declaring a terabyte is
    refused here after a few thousand headers, before any decompression.
    """
    start = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(start)
    frames = 0
    bound = 0
    while True:
        magic = f.read(4)
        if not magic:
            break
        if len(magic) < 4:
            raise InputError(f"{path} is truncated: partial zstd frame header", hint=_HINT_CORRUPT)
        (m,) = struct.unpack("<I", magic)
        if 0x184D2A50 <= m <= 0x184D2A5F:  # skippable frame
            size_b = f.read(4)
            if len(size_b) < 4:
                raise InputError(f"{path} is truncated inside a zstd skippable frame", hint=_HINT_CORRUPT)
            _skip(path, f, struct.unpack("<I", size_b)[0], end)
            continue
        if m != 0xFD2FB528:
            if frames:
                raise InputError(f"{path} has trailing data after its zstd stream", hint=_HINT_CORRUPT)
            raise InputError(f"{path} is not a zstd stream", hint=_HINT_CORRUPT)
        desc_b = f.read(1)
        if not desc_b:
            raise InputError(f"{path} is truncated in a zstd frame header", hint=_HINT_CORRUPT)
        desc = desc_b[0]
        fcs_flag, single, checksum, dict_flag = desc >> 6, (desc >> 5) & 1, (desc >> 2) & 1, desc & 3
        if desc & 0x08:
            raise InputError(f"{path} is corrupt: reserved bit set in a zstd frame header", hint=_HINT_CORRUPT)
        header_rest = (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + (1 if single else 0, 2, 4, 8)[fcs_flag]
        _skip(path, f, header_rest, end)
        while True:
            bh = f.read(3)
            if len(bh) < 3:
                raise InputError(f"{path} is truncated: a zstd frame ends without its last block", hint=_HINT_CORRUPT)
            value = int.from_bytes(bh, "little")
            last, btype, bsize = value & 1, (value >> 1) & 3, value >> 3
            if btype == 3:
                raise InputError(f"{path} is corrupt: reserved zstd block type", hint=_HINT_CORRUPT)
            _skip(path, f, 1 if btype == 1 else bsize, end)
            bound += bsize if btype in (0, 1) else _ZSTD_MAX_BLOCK
            if bound > _RATIO_MIN_SIZE and bound > max_ratio * (f.tell() - start):
                raise UnsafeArchiveError(
                    f"unsafe archive {path}: its zstd stream declares over {bound} bytes in {f.tell() - start}"
                    f" (more than {max_ratio}:1; a decompression bomb?)", hint=_HINT_UNSAFE)
            if last:
                break
        if checksum:
            _skip(path, f, 4, end)
        frames += 1
    if not frames:
        raise InputError(f"{path} holds no zstd frame", hint=_HINT_CORRUPT)


def _skip(path: Path, f: IO[bytes], n: int, end: int) -> None:
    if n <= 0:
        return
    pos = f.tell()
    if pos + n > end:
        raise InputError(f"{path} is truncated: the zstd stream is cut off", hint=_HINT_CORRUPT)
    f.seek(pos + n)


def payload_offset(path: Path) -> int:
    """Byte offset of the archive that follows the ``__OFFPKG_PAYLOAD_BELOW__`` line.

    The marker must be a whole line (at the start of the file or after a newline); the
    first such line counts. Only the first 16 MiB are searched.
    """
    path = Path(path)
    with _open_input(path) as f:
        head = f.read(_MAX_HEADER_SCAN)
    if head.startswith(PAYLOAD_MARKER):
        return len(PAYLOAD_MARKER)
    i = head.find(b"\n" + PAYLOAD_MARKER)
    if i < 0:
        raise InputError(
            f"{path} is not a self-extracting offpkg bundle (no {PAYLOAD_MARKER.decode().strip()} line)",
            hint="Pass the bundle archive itself, or a file written by 'offpkg bundle -o NAME.sh'.",
        )
    return i + 1 + len(PAYLOAD_MARKER)
