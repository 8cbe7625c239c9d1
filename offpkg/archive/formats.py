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

from ..errors import InputError
from ._common import _BLOCK, _HINT_CORRUPT


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


@contextmanager
def _decompressed(path: Path, fmt: str, f: IO[bytes]) -> Iterator[IO[bytes]]:
    """A reader of the decompressed stream starting at f's position (f is not closed)."""
    if fmt == "tar.gz":
        stream: Any = gzip.GzipFile(fileobj=f, mode="rb")
    elif fmt == "tar.bz2":
        stream = bz2.BZ2File(f, "rb")
    elif fmt == "tar.xz":
        stream = lzma.LZMAFile(f, "rb")
    elif fmt == "tar.zst":
        import zstandard

        # zstandard's reader stops silently at a cut-off frame: check the frames first.
        start = f.tell()
        _check_zstd_frames(path, f)
        f.seek(start)
        stream = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True, closefd=False)
    else:  # pragma: no cover - callers pass compressed formats only
        raise AssertionError(fmt)
    try:
        yield stream
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - a failing close of a reader must not hide the real error
            pass


def _check_zstd_frames(path: Path, f: IO[bytes]) -> None:
    """Walk zstd frame and block headers (RFC 8878) to the end; refuse a stream that is cut off."""
    frames = 0
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
            _skip(path, f, struct.unpack("<I", size_b)[0])
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
        _skip(path, f, header_rest)
        while True:
            bh = f.read(3)
            if len(bh) < 3:
                raise InputError(f"{path} is truncated: a zstd frame ends without its last block", hint=_HINT_CORRUPT)
            value = int.from_bytes(bh, "little")
            last, btype, bsize = value & 1, (value >> 1) & 3, value >> 3
            if btype == 3:
                raise InputError(f"{path} is corrupt: reserved zstd block type", hint=_HINT_CORRUPT)
            _skip(path, f, 1 if btype == 1 else bsize)
            if last:
                break
        if checksum:
            _skip(path, f, 4)
        frames += 1
    if not frames:
        raise InputError(f"{path} holds no zstd frame", hint=_HINT_CORRUPT)


def _skip(path: Path, f: IO[bytes], n: int) -> None:
    if n <= 0:
        return
    pos = f.tell()
    end = f.seek(0, os.SEEK_END)
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
