"""Archives: safe extraction, deterministic writing, streaming member hashes.

A bundle crosses an air gap and is unpacked as root, so nothing in an archive is
trusted. Every member is checked by our own rules *before* anything is written
(Python's ``filter='data'`` has been bypassed by several CVEs, so it is only an
extra layer here); extraction goes into a private temporary sibling directory that
is renamed onto the destination only when everything succeeded. Data is streamed
(never a whole member in memory).

Supported formats, detected by magic bytes: tar, tar.gz, tar.zst, tar.bz2, tar.xz
and zip. An archive may sit at an offset inside a larger file (a self-extracting
bundle: a shell header, then ``__OFFPKG_PAYLOAD_BELOW__``, then the tar).
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import EnvironmentProblem, InputError, OutputExistsError, UnsafeArchiveError, UsageError
from .hashing import default_workers

__all__ = [
    "FORMATS",
    "PAYLOAD_MARKER",
    "detect_format",
    "display_name",
    "hash_members",
    "payload_offset",
    "read_member",
    "safe_extract",
    "write_tar",
]

FORMATS = ("tar", "tar.gz", "tar.zst", "tar.bz2", "tar.xz", "zip")
PAYLOAD_MARKER = b"__OFFPKG_PAYLOAD_BELOW__\n"
MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255
DEFAULT_MAX_TOTAL_SIZE = 1 << 40  # 1 TiB of declared member data
# Zip bomb guard: members above this size may not be compressed more than _MAX_RATIO:1.
_RATIO_MIN_SIZE = 100 * 1000 * 1000
_MAX_RATIO = 1000
_MAX_LINK_DEPTH = 40  # like Linux MAXSYMLINKS: deeper chains are treated as loops
_MAX_HEADER_SCAN = 16 << 20  # a self-extracting shell header is far smaller than this
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_DRIVE = re.compile(r"^[A-Za-z]:")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_HINT_UNSAFE = (
    "Nothing was extracted. The archive is corrupt or was built to attack the machine that unpacks it; "
    "obtain it again from a trusted source and compare its sha256 with the one you recorded."
)
_HINT_CORRUPT = "The file is damaged or incomplete (an interrupted copy?); copy it again and compare its sha256."

OnProgress = Callable[[int], None]


# --------------------------------------------------------------------------- names


def display_name(name: str, limit: int = 160) -> str:
    """How a member name appears in messages: quoted, control characters escaped, shortened."""
    shown = repr(name)
    if len(shown) > limit:
        shown = shown[: limit - 4] + "...'"
    return shown


class _Bad(Exception):
    """A rule violation, turned into UnsafeArchiveError with the archive and member named."""


def _nbytes(s: str) -> int:
    try:
        return len(s.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        raise _Bad("is not valid UTF-8") from None


def _parse_name(raw: str, what: str = "name") -> list[str]:
    """Split a member name into safe components, or raise _Bad saying which rule it breaks.

    ``./`` prefixes, ``.`` components, repeated and trailing slashes are dropped (they
    do not change the meaning); everything that could leave the destination is refused.
    """
    if raw == "":
        raise _Bad(f"has an empty {what}")
    if "\x00" in raw:
        raise _Bad(f"has a NUL byte in its {what}")
    if "\\" in raw:
        raise _Bad(f"has a backslash (a Windows path separator) in its {what}")
    size = _nbytes(raw)
    if size > MAX_NAME_BYTES:
        raise _Bad(f"has a {what} of {size} bytes (limit {MAX_NAME_BYTES})")
    if raw.startswith("/"):
        raise _Bad(f"has an absolute {what}")
    if _DRIVE.match(raw):
        raise _Bad(f"has a {what} starting with a Windows drive letter")
    parts: list[str] = []
    for comp in raw.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            raise _Bad(f"has a '..' component in its {what}")
        if _nbytes(comp) > MAX_COMPONENT_BYTES:
            raise _Bad(f"has a path component longer than {MAX_COMPONENT_BYTES} bytes in its {what}")
        parts.append(comp)
    return parts


def _check_link_target(target: str) -> list[str]:
    """Lexical checks of a symlink target; returns its components (``..`` kept)."""
    if target == "":
        raise _Bad("is a symbolic link with an empty target")
    if "\x00" in target:
        raise _Bad("is a symbolic link whose target has a NUL byte")
    if "\\" in target:
        raise _Bad("is a symbolic link whose target has a backslash")
    if _nbytes(target) > MAX_NAME_BYTES:
        raise _Bad("is a symbolic link with an overlong target")
    if target.startswith("/") or _DRIVE.match(target):
        raise _Bad(f"is a symbolic link to an absolute path ({display_name(target)})")
    return target.split("/")


# --------------------------------------------------------------------------- members


@dataclass
class _Raw:
    """One archive member as read, before any check."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special:<what it is>"
    size: int
    mode: int
    mtime: float | None
    linkname: str
    ref: Any = None  # TarInfo or ZipInfo
    data_offset: int = -1  # plain tar: absolute file offset of the data (for parallel hashing)

    def fingerprint(self) -> tuple[str, str, int, str]:
        return (self.name, self.kind, self.size, self.linkname)


@dataclass
class _Member:
    """A member that passed the checks."""

    raw: _Raw
    name: str  # normalised: no './', no trailing slash; original unicode form
    parts: tuple[str, ...]
    link_parts: tuple[str, ...] = ()  # hard link: the target member's parts

    @property
    def kind(self) -> str:
        return self.raw.kind


class _Checker:
    """The extraction rules, applied member by member, then once over all symlinks."""

    def __init__(
        self,
        archive: Path,
        *,
        allow_symlinks: bool,
        allow_case_collisions: bool,
        max_total_size: int,
    ) -> None:
        self.archive = archive
        self.allow_symlinks = allow_symlinks
        self.fold_case = not allow_case_collisions
        self.max_total_size = max_total_size
        self.total = 0
        # key -> (kind, explicit, display name); implicit entries are parents of members
        self.entries: dict[str, tuple[str, bool, str]] = {}
        # symlink key -> (its parent's key parts, its target components keyed)
        self.links: dict[str, tuple[list[str], list[str], str]] = {}
        self.parts_by_key: dict[str, tuple[str, ...]] = {}

    def reject(self, name: str, reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"unsafe archive {self.archive}: member {display_name(name)} {reason}", hint=_HINT_UNSAFE
        )

    def key(self, comp: str) -> str:
        k = unicodedata.normalize("NFC", comp)
        if self.fold_case:
            k = unicodedata.normalize("NFC", k.casefold())
        return k

    def add(self, raw: _Raw) -> _Member | None:
        """Check one member; None for the archive's own root entry ('./')."""
        try:
            return self._add(raw)
        except _Bad as e:
            raise self.reject(raw.name, str(e)) from None

    def _add(self, raw: _Raw) -> _Member | None:
        parts = _parse_name(raw.name)
        kind = raw.kind
        if kind.startswith("special:"):
            raise _Bad(kind[8:])
        if not parts:
            if kind == "dir":
                return None
            raise _Bad("has an empty name")
        if kind in ("symlink", "hardlink") and not self.allow_symlinks:
            what = "a symbolic link" if kind == "symlink" else "a hard link"
            raise _Bad(f"is {what} (to {display_name(raw.linkname)}); this archive may not contain links")
        keys = [self.key(p) for p in parts]
        key = "/".join(keys)
        # Nothing may be written below a file or a link: this refuses "symlink-then-file".
        for i in range(1, len(keys)):
            pkey = "/".join(keys[:i])
            entry = self.entries.get(pkey)
            if entry is None:
                self.entries[pkey] = ("dir", False, "/".join(parts[:i]))
            elif entry[0] != "dir":
                raise _Bad(f"would be written through {display_name(entry[2])}, which is a {_KIND_WORDS[entry[0]]}")
        old = self.entries.get(key)
        if old is not None:
            if not (kind == "dir" and old[0] == "dir" and not old[1]):
                same = old[2] == "/".join(parts)
                how = "" if same else f" ({display_name(old[2])} after normalisation)"
                raise _Bad(f"is a duplicate of an earlier member{how}")
        member = _Member(raw=raw, name="/".join(parts), parts=tuple(parts))
        if kind == "file":
            if raw.size < 0:
                raise _Bad("has a negative size")
            self.total += raw.size
            if self.total > self.max_total_size:
                raise _Bad(
                    f"brings the declared total size to {self.total} bytes, over the limit of {self.max_total_size}"
                )
        elif kind == "symlink":
            comps = _check_link_target(raw.linkname)
            self.links[key] = (keys[:-1], [c if c in ("", ".", "..") else self.key(c) for c in comps], member.name)
        elif kind == "hardlink":
            try:
                tparts = _parse_name(raw.linkname, "hard link target")
            except _Bad as e:
                raise _Bad(f"is a hard link that {e}") from None
            tkey = "/".join(self.key(p) for p in tparts)
            target = self.entries.get(tkey)
            if target is None or target[0] not in ("file", "hardlink") or not target[1]:
                what = "nothing" if target is None else f"a {_KIND_WORDS[target[0]]}"
                raise _Bad(
                    f"is a hard link to {display_name(raw.linkname)}, which is {what} earlier in the archive;"
                    " hard links may only point to earlier regular files"
                )
            member.link_parts = self.parts_by_key[tkey]
        self.entries[key] = (kind, True, member.name)
        self.parts_by_key[key] = member.parts
        return member

    def finish(self) -> None:
        """Resolve every symlink through the archive's other symlinks; none may leave the root."""
        for key, (parent, comps, name) in self.links.items():
            try:
                self._walk(list(parent), comps, [_MAX_LINK_DEPTH])
            except _Bad as e:
                raise self.reject(name, str(e)) from None

    def _walk(self, cur: list[str], comps: list[str], budget: list[int]) -> list[str]:
        for comp in comps:
            if comp in ("", "."):
                continue
            if comp == "..":
                if not cur:
                    raise _Bad("is a symbolic link that points outside the destination")
                cur.pop()
                continue
            cur.append(comp)
            link = self.links.get("/".join(cur))
            if link is not None:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _Bad("is part of a symbolic link loop (or a chain deeper than 40 links)")
                cur = self._walk(list(link[0]), link[1], budget)
        return cur


_ONLY = "; only regular files, directories and links are allowed"
_KIND_WORDS = {"file": "regular file", "dir": "directory", "symlink": "symbolic link", "hardlink": "hard link"}


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


# --------------------------------------------------------------------------- readers


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


# --------------------------------------------------------------------------- extraction


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


def _os_problem(e: OSError, what: str) -> EnvironmentProblem:
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return EnvironmentProblem(f"{what}: the disk is full", hint="Free some space and run the command again.")
    return EnvironmentProblem(f"{what}: {e.strerror or e}", hint="Check the permissions and free space there.")


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    allow_symlinks: bool = False,
    progress: OnProgress | None = None,
    offset: int = 0,
    allow_case_collisions: bool = False,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
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
        rules = _Rules(allow_symlinks, allow_case_collisions, max_total_size)
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


def _extract_into(
    archive: Path, fmt: str, offset: int, root: str, rules: _Rules, progress: OnProgress | None
) -> list[str]:
    def checker() -> _Checker:
        return _Checker(
            archive,
            allow_symlinks=rules.allow_symlinks,
            allow_case_collisions=rules.allow_case_collisions,
            max_total_size=rules.max_total_size,
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


# --------------------------------------------------------------------------- hashing and reading


def _hash_stream(path: Path, name: str, src: IO[bytes], size: int) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while True:
        try:
            chunk = src.read(_CHUNK)
        except (*_PARSE_ERRORS, *_zstd_errors(), RuntimeError) as e:
            raise _corrupt(path, e, f" at member {display_name(name)}") from None
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
        if n > size:
            break
    if n != size:
        raise InputError(
            f"{path} is truncated or corrupt: member {display_name(name)} declares {size} bytes but holds {n}",
            hint=_HINT_CORRUPT,
        )
    return h.hexdigest(), n


def _hash_range(path: Path, name: str, start: int, size: int) -> tuple[str, int]:
    """sha256 of ``size`` bytes at ``start`` of a plain tar (one file handle per call, so threads work)."""
    h = hashlib.sha256()
    buf = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buf)
    left = size
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while left:
            n = f.readinto(view[: min(left, len(buf))])
            if not n:
                raise InputError(
                    f"{path} is truncated: member {display_name(name)} is cut off", hint=_HINT_CORRUPT
                )
            h.update(view[:n])
            left -= n
    return h.hexdigest(), size


def hash_members(
    archive: Path,
    *,
    workers: int | None = None,
    offset: int = 0,
    allow_symlinks: bool = False,
    allow_case_collisions: bool = False,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
) -> dict[str, tuple[str, int]]:
    """{normalised name: (sha256, size)} of every regular member, streaming, nothing extracted.

    The same rules as :func:`safe_extract` apply, so a hostile archive raises
    UnsafeArchiveError here too. Hard links (when allowed) report their target's hash.
    Plain tar and zip members are hashed in parallel threads.
    """
    archive = Path(archive)
    fmt = detect_format(archive, offset=offset)
    checker = _Checker(
        archive,
        allow_symlinks=allow_symlinks,
        allow_case_collisions=allow_case_collisions,
        max_total_size=max_total_size,
    )
    result: dict[str, tuple[str, int]] = {}
    links: list[_Member] = []
    with _reader(archive, fmt, offset) as reader:
        if fmt.startswith("tar."):
            # One stream: hash each member as it passes.
            for raw, m in _checked(reader, checker):
                if m is not None and m.kind == "file":
                    with reader.open(raw) as src:
                        result[m.name] = _hash_stream(archive, m.name, src, raw.size)
                elif m is not None and m.kind == "hardlink":
                    links.append(m)
        else:
            checked = [(raw, m) for raw, m in _checked(reader, checker) if m is not None]
            files = [(raw, m) for raw, m in checked if m.kind == "file"]
            links = [m for _, m in checked if m.kind == "hardlink"]

            if isinstance(reader, _TarReader):

                def one(item: tuple[_Raw, _Member]) -> tuple[str, int]:
                    return _hash_range(archive, item[1].name, item[0].data_offset, item[0].size)

            else:
                zreader = reader

                def one(item: tuple[_Raw, _Member]) -> tuple[str, int]:
                    with zreader.open(item[0]) as src:
                        return _hash_stream(archive, item[1].name, src, item[0].size)

            with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
                for (_, m), digest in zip(files, pool.map(one, files)):
                    result[m.name] = digest
    checker.finish()  # symlink chains: only now is every link known
    for m in links:
        result[m.name] = result["/".join(m.link_parts)]
    return result


def read_member(archive: Path, name: str, max_size: int, *, offset: int = 0) -> bytes:
    """The data of the regular member ``name`` (e.g. offpkg.json), refusing more than ``max_size`` bytes.

    Member names seen on the way are checked (unsafe names raise UnsafeArchiveError);
    a seekable archive is checked in full, a compressed stream up to the member.
    """
    archive = Path(archive)
    try:
        want = "/".join(_parse_name(name))
    except _Bad as e:
        raise InputError(f"cannot read {display_name(name)} from an archive: the name {e}") from None
    fmt = detect_format(archive, offset=offset)
    checker = _Checker(archive, allow_symlinks=True, allow_case_collisions=True, max_total_size=DEFAULT_MAX_TOTAL_SIZE)
    found: tuple[_Raw, _Member] | None = None
    with _reader(archive, fmt, offset) as reader:
        for raw, m in _checked(reader, checker):
            if m is None or m.name != want:
                continue
            found = (raw, m)
            if fmt.startswith("tar."):
                break  # a stream: read it now, before the reader moves on
        if found is None:
            raise InputError(f"{archive} has no member {display_name(name)}", hint="Is this an offpkg bundle?")
        raw, m = found
        if m.kind != "file":
            raise UnsafeArchiveError(
                f"unsafe archive {archive}: member {display_name(name)} is a {_KIND_WORDS[m.kind]}, not a file",
                hint=_HINT_UNSAFE,
            )
        if raw.size > max_size:
            raise InputError(
                f"member {display_name(name)} of {archive} is {raw.size} bytes, over the {max_size}-byte limit",
                hint=_HINT_UNSAFE,
            )
        with reader.open(raw) as src:
            data = _read_up_to(archive, src, max_size + 1)
    if len(data) != raw.size:
        raise InputError(f"{archive} is truncated: member {display_name(name)} is cut off", hint=_HINT_CORRUPT)
    return data


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


# --------------------------------------------------------------------------- writing


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
