"""A generated corpus of hostile tar and zip archives (importable by any test).

``generate(dir)`` writes every archive into ``dir`` and returns ``[(path, description)]``;
``generate_cases(dir)`` returns the same as :class:`HostileCase` records that also name
the member a correct extractor must blame. ``CORPUS_SIZE`` is the number of archives.

Escapes aim at ``outside`` (default ``dir/../outside``, created holding only
``victim.txt``, the target of hard-link escapes), so a test can check that nothing
ever lands there: absolute members name it directly, relative ones climb
with ``../`` to the filesystem root and walk back down to it.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard


@dataclass(frozen=True)
class HostileCase:
    path: Path
    description: str
    # The member the error must name when links are allowed (conda mode), and when they
    # are not (bundle mode); None where no single member is to blame (a cut-off file).
    member: str | None
    member_strict: str | None


@dataclass(frozen=True)
class _Spec:
    filename: str
    description: str
    member: str | None
    member_strict: str | None
    build: Callable[[Path, Path], None]  # (archive path, outside dir)


_SPECS: list[_Spec] = []

# A file that hard links aim at; a broken extractor would link to it (and could overwrite it).
VICTIM = "victim.txt"
VICTIM_DATA = b"must stay unchanged\n"

_UNSET = object()


def _case(filename: str, description: str, member: str | None, member_strict: object = _UNSET) -> Callable:
    def register(fn: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
        strict = member if member_strict is _UNSET else member_strict
        _SPECS.append(_Spec(filename, description, member, strict, fn))  # type: ignore[arg-type]
        return fn

    return register


# ----------------------------------------------------------------------------- building blocks


def _ti(
    name: str,
    kind: str = "file",
    data: bytes = b"x",
    *,
    link: str = "",
    pax_path: str | None = None,
    mode: int = 0o644,
) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    ti.mtime = 1_700_000_000
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    ti.type = types[kind]
    if kind in ("chr", "blk"):
        ti.devmajor, ti.devminor = 1, 3
    ti.linkname = link
    if pax_path is not None:
        # A PAX record overrides the ustar name: the way to carry NUL bytes, very long
        # names, or a harmless-looking ustar name with a hostile real one.
        ti.pax_headers = {"path": pax_path}
    if kind == "file":
        ti.size = len(data)
        return ti, data
    return ti, None


def _write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> None:
    with tarfile.open(path, "w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _climb(outside: Path, leaf: str) -> str:
    """A relative name that climbs from any destination to ``outside/leaf``."""
    return "../" * 40 + str(outside).lstrip("/") + "/" + leaf


def _zip(
    path: Path,
    entries: list[tuple[zipfile.ZipInfo, bytes]],
    tweak: Callable[[zipfile.ZipFile], None] | None = None,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which is the point
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for zi, data in entries:
                zf.writestr(zi, data)
            if tweak is not None:
                tweak(zf)  # edits the central directory, written on close


def _zi(name: str, *, mode: int | None = None) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.create_system = 3
    if mode is not None:
        zi.external_attr = mode << 16
    return zi


# ----------------------------------------------------------------------------- tar: names


@_case("dotdot.tar", "member name climbs out with ../", "<climb>")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("ok.txt"), _ti(_climb(out, "dotdot-pwned"))])


@_case("dotdot-middle.tar", "member name with .. in the middle (a/../../x)", "a/../../x")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("a/../../x")])


@_case("absolute.tar", "absolute member name", "<abs>")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti(str(out / "abs-pwned"))])


@_case("pax-override.tar", "harmless ustar name, PAX path record climbing out", "<climb>")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("harmless.txt", pax_path=_climb(out, "pax-pwned"))])


@_case("gnu-longname.tar", "GNU ././@LongLink name climbing out", "<climb>")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti(_climb(out, "long-" + "n" * 120))], fmt=tarfile.GNU_FORMAT)


@_case("win-drive.tar", "Windows drive letter name C:/x", "C:/evil.txt")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("C:/evil.txt")])


@_case("win-drive-relative.tar", "Windows drive-relative name C:evil", "C:evil.txt")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("C:evil.txt")])


@_case("win-backslash.tar", "backslash traversal ..\\..\\x", "..\\..\\evil.txt")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("..\\..\\evil.txt")])


@_case("win-unc.tar", "Windows UNC name \\\\server\\share\\x", "\\\\server\\share\\evil.txt")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("\\\\server\\share\\evil.txt")])


@_case("nul-name.tar", "NUL byte inside a member name (PAX)", "ok\x00/../../evil")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("ok", pax_path="ok\x00/../../evil")])


@_case("empty-name.tar", "regular file with an empty name (PAX)", "")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("placeholder", pax_path="")])


@_case("long-name.tar", "member name of 5000 bytes", "<long>")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("d", pax_path=_LONG_NAME)])


_LONG_NAME = "/".join(["d" * 200] * 24) + "/f"  # 4825 bytes, every component legal


@_case("long-component.tar", "path component of 300 bytes", "dir/" + "c" * 300)
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("dir/" + "c" * 300)])


# ----------------------------------------------------------------------------- tar: special members


@_case("chrdev.tar", "character device node", "dev/null-ish")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("dev/null-ish", "chr")])


@_case("blkdev.tar", "block device node", "dev/sda-ish")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("dev/sda-ish", "blk")])


@_case("fifo.tar", "FIFO (named pipe)", "pipe")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("pipe", "fifo")])


# ----------------------------------------------------------------------------- tar: links


@_case("symlink-abs.tar", "symlink to an absolute path", "etc-link")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("etc-link", "symlink", link=str(out))])


@_case("symlink-rel.tar", "symlink climbing out with ../", "sub/up")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("sub", "dir", mode=0o755), _ti("sub/up", "symlink", link="../../..")])


@_case("symlink-chain.tar", "symlink chain: each link looks inside, together they leave", "esc", "sub/up")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("sub/up", "symlink", link=".."), _ti("esc", "symlink", link="sub/up/..")])


@_case("symlink-chain-deep.tar", "symlink chain through directories and a later link", "a/b/x", "a/b/x")
def _(p: Path, out: Path) -> None:
    # a/b/x -> ../../c/../d ; d -> e/../.. : resolving x needs d, which comes later.
    _write_tar(p, [_ti("a/b/x", "symlink", link="../../d/f"), _ti("d", "symlink", link="e/../..")])


@_case("symlink-loop.tar", "symlink loop a -> b -> a", "a")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("a", "symlink", link="b"), _ti("b", "symlink", link="a")])


@_case("symlink-empty-target.tar", "symlink with an empty target (cpython#149486)", "empty")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("empty", "symlink", link="")])


@_case("symlink-then-file.tar", "symlink to a directory inside, then a file written through it", "lnk/pwned", "lnk")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("real", "dir", mode=0o755), _ti("lnk", "symlink", link="real"), _ti("lnk/pwned")])


@_case("symlink-out-then-file.tar", "symlink to outside, then a file written through it", "lnk")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("lnk", "symlink", link=str(out)), _ti("lnk/symlink-then-file-pwned")])


@_case(
    "symlink-case-then-file.tar",
    "symlink 'Lnk', then a file through 'lnk/' (case-insensitive filesystems)",
    "lnk/x",
    "Lnk",
)
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("Lnk", "symlink", link="."), _ti("lnk/x")])


@_case("hardlink-out.tar", "hard link climbing out to a file outside", "hl")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("hl", "hardlink", link=_climb(out, VICTIM))])


@_case("hardlink-abs.tar", "hard link to an absolute path", "hl")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("hl", "hardlink", link=str(out / VICTIM))])


@_case("hardlink-to-symlink.tar", "hard link to a symlink member", "hl", "s")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("f"), _ti("s", "symlink", link="f"), _ti("hl", "hardlink", link="s")])


@_case("hardlink-forward.tar", "hard link to a member that comes later", "hl")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("hl", "hardlink", link="f"), _ti("f")])


@_case("hardlink-to-dir.tar", "hard link to a directory", "hl")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("d", "dir", mode=0o755), _ti("hl", "hardlink", link="d")])


# ----------------------------------------------------------------------------- tar: duplicates


@_case("dup-exact.tar", "the same name twice (second overwrites the first)", "bin/tool")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("bin/tool", data=b"good"), _ti("bin/tool", data=b"evil")])


@_case("dup-dotslash.tar", "'./x' and 'x'", "x")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("./x"), _ti("x")])


@_case("dup-nfc-nfd.tar", "NFC and NFD forms of the same name", "cafe\u0301.txt")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("caf\u00e9.txt"), _ti("cafe\u0301.txt")])


@_case("dup-casefold.tar", "names that differ only in case", "readme")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("README"), _ti("readme")])


@_case("dup-dir-then-file.tar", "a directory, then a file of the same name", "x")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("x", "dir", mode=0o755), _ti("x")])


@_case("file-under-file.tar", "a file, then a member below it", "f/g")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("f"), _ti("f/g")])


@_case("dup-symlink-over-dir.tar", "a directory filled, then a symlink of the same name", "d", "d")
def _(p: Path, out: Path) -> None:
    _write_tar(p, [_ti("d/f"), _ti("d", "symlink", link=".")])


# ----------------------------------------------------------------------------- tar: damaged


@_case("truncated-data.tar", "tar cut off inside a member's data", "big.bin")
def _(p: Path, out: Path) -> None:
    data = _tar_bytes([_ti("a.txt"), _ti("big.bin", data=b"z" * 20000), _ti("c.txt")])
    p.write_bytes(data[: 512 * 3 + 6000])


@_case("truncated-header.tar", "tar cut off inside a member header", "a.txt")
def _(p: Path, out: Path) -> None:
    data = _tar_bytes([_ti("a.txt"), _ti("b.txt")])
    p.write_bytes(data[: 1024 + 200])


@_case("truncated-no-end.tar", "tar cut off exactly between members (no end marker)", "a.txt")
def _(p: Path, out: Path) -> None:
    data = _tar_bytes([_ti("a.txt"), _ti("b.txt")])
    p.write_bytes(data[:1024])


@_case("size-lie.tar", "header declares 10 MiB, the file holds 10 bytes", "liar.bin")
def _(p: Path, out: Path) -> None:
    ti, _ = _ti("liar.bin", data=b"0123456789")
    ti.size = 10 << 20
    p.write_bytes(ti.tobuf(tarfile.PAX_FORMAT) + b"0123456789".ljust(512, b"\0") + b"\0" * 1024)


@_case("garbage-header.tar", "valid first member, then a garbled header", "a.txt")
def _(p: Path, out: Path) -> None:
    data = bytearray(_tar_bytes([_ti("a.txt"), _ti("b.txt"), _ti("c.txt")]))
    data[1024 + 148 : 1024 + 156] = b"9999999\0"  # wrong checksum on the second header
    p.write_bytes(bytes(data))


@_case("truncated.tar.gz", "gzip stream cut off", None)
def _(p: Path, out: Path) -> None:
    data = gzip.compress(_tar_bytes([_ti("a.txt", data=bytes(range(256)) * 200)]), mtime=0)
    p.write_bytes(data[: len(data) // 2])


@_case("truncated.tar.zst", "zstd stream cut off", None)
def _(p: Path, out: Path) -> None:
    data = zstandard.ZstdCompressor().compress(_tar_bytes([_ti("a.txt", data=bytes(range(256)) * 400)]))
    p.write_bytes(data[: len(data) // 2])


@_case("truncated-last-byte.tar.zst", "zstd stream missing its last byte", None)
def _(p: Path, out: Path) -> None:
    data = zstandard.ZstdCompressor(write_checksum=True).compress(_tar_bytes([_ti("a.txt")]))
    p.write_bytes(data[:-1])


@_case("hostile.tar.zst", "zstd-compressed tar with a ../ member (checked through the stream)", "<climb>")
def _(p: Path, out: Path) -> None:
    p.write_bytes(zstandard.ZstdCompressor().compress(_tar_bytes([_ti("ok"), _ti(_climb(out, "zst-pwned"))])))


@_case("hostile.tar.gz", "gzip-compressed tar with a device node", "dev/x")
def _(p: Path, out: Path) -> None:
    p.write_bytes(gzip.compress(_tar_bytes([_ti("ok"), _ti("dev/x", "chr")]), mtime=0))


@_case("not-an-archive.tar", "random bytes named .tar", None)
def _(p: Path, out: Path) -> None:
    p.write_bytes(b"this is not a tar archive at all\n" * 40)


@_case("empty.tar", "zero-byte file", None)
def _(p: Path, out: Path) -> None:
    p.write_bytes(b"")


@_case("gzip-not-tar.tar.gz", "gzip stream holding something that is not a tar", None)
def _(p: Path, out: Path) -> None:
    p.write_bytes(gzip.compress(b'{"not": "a tar"}' * 100, mtime=0))


# ----------------------------------------------------------------------------- zip


@_case("dotdot.zip", "zip member climbing out with ../", "<climb>")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("ok.txt"), b"ok"), (_zi(_climb(out, "zip-pwned")), b"evil")])


@_case("absolute.zip", "zip member with an absolute name", "<abs-zip>")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi(str(out / "zip-abs-pwned")), b"evil")])


@_case("backslash.zip", "zip member ..\\..\\x (Windows separators)", "..\\..\\evil.txt")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("..\\..\\evil.txt"), b"evil")])


@_case("drive.zip", "zip member C:\\x", "C:\\evil.txt")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("C:\\evil.txt"), b"evil")])


@_case("nul.zip", "zip member with a NUL byte (zipfile hides it from .filename)", "ok.txt\x00../../evil")
def _(p: Path, out: Path) -> None:
    zi = _zi("x")
    zi.filename = "ok.txt\x00../../evil"
    _zip(p, [(zi, b"evil")])


@_case("symlink.zip", "zip symlink pointing outside", "link")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("link", mode=stat.S_IFLNK | 0o777), str(out).encode())])


@_case("symlink-rel.zip", "zip symlink climbing out with ../", "link")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("link", mode=stat.S_IFLNK | 0o777), b"../../../../../../etc")])


@_case("symlink-then-file.zip", "zip symlink, then a file through it", "lnk/x", "lnk")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("lnk", mode=stat.S_IFLNK | 0o777), b"."), (_zi("lnk/x"), b"evil")])


@_case("fifo.zip", "zip member marked as a FIFO", "pipe")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("pipe", mode=stat.S_IFIFO | 0o644), b"")])


@_case("dup.zip", "zip with the same name twice", "a.txt")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("a.txt"), b"good"), (_zi("a.txt"), b"evil")])


@_case("dup-casefold.zip", "zip names differing only in case", "a.TXT")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("A.txt"), b"good"), (_zi("a.TXT"), b"evil")])


@_case("dup-dotslash.zip", "zip './a' and 'a'", "a")
def _(p: Path, out: Path) -> None:
    _zip(p, [(_zi("./a"), b"good"), (_zi("a"), b"evil")])


@_case("encrypted.zip", "zip member flagged as encrypted", "secret.bin")
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].flag_bits |= 0x1

    _zip(p, [(_zi("secret.bin"), b"data")], tweak)


@_case("ratio-bomb.zip", "zip member declaring 200 MB from a few bytes (ratio over 1000:1)", "bomb.bin")
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].file_size = 200_000_000

    _zip(p, [(_zi("bomb.bin"), b"\0" * 1000)], tweak)


@_case("size-lie-small.zip", "zip member holding more than it declares", "liar.bin")
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].file_size = 10

    _zip(p, [(_zi("liar.bin"), b"A" * 5000)], tweak)


@_case("size-lie-big.zip", "zip member holding less than it declares", "liar.bin")
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].file_size = 5000

    _zip(p, [(_zi("liar.bin"), b"A" * 100)], tweak)


@_case("size-lie-stored.zip", "stored zip member whose sizes disagree", "liar.bin")
def _(p: Path, out: Path) -> None:
    zi = _zi("liar.bin")
    zi.compress_type = zipfile.ZIP_STORED

    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].file_size = 1 << 30

    _zip(p, [(zi, b"A" * 100)], tweak)


@_case("overlap.zip", "two zip entries sharing one local header (overlapped-files bomb)", None)
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[1].header_offset = zf.filelist[0].header_offset

    _zip(p, [(_zi("a.bin"), b"A" * 3000), (_zi("b.bin"), b"B" * 3000)], tweak)


@_case("name-mismatch.zip", "central directory and local header disagree on the name", "innocent.txt")
def _(p: Path, out: Path) -> None:
    def tweak(zf: zipfile.ZipFile) -> None:
        zf.filelist[-1].filename = "innocent.txt"  # the local header says ../evil.txt

    _zip(p, [(_zi("../evil.tx"), b"evil")], tweak)


@_case("truncated.zip", "zip cut off before its central directory", None)
def _(p: Path, out: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"a" * 1000)
    p.write_bytes(buf.getvalue()[:-30])


# ----------------------------------------------------------------------------- resource attacks
# Not in the corpus above (which every archive test walks): these are whole bundles, built
# on demand by the tests of offpkg's limits (tests/test_hostile_bundles.py).

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RLE_BLOCK = 128 << 10  # the largest zstd block: one byte, repeated 131,072 times


def _zstd_rle_zeros(size: int) -> bytes:
    """A zstd frame of ``size`` zero bytes made of RLE blocks: 4 bytes per 128 KiB (a 32,768:1 ratio).

    Written by hand (RFC 8878): no compressor would take the time to emit a terabyte of zeros.
    """
    out = bytearray(_ZSTD_MAGIC)
    out += bytes([0x00, 0x38])  # descriptor: no content size, not single-segment; window 2**17
    full, rest = divmod(size, _RLE_BLOCK)
    block = ((_RLE_BLOCK << 3) | (1 << 1)).to_bytes(3, "little") + b"\x00"
    out += block * (full - (0 if rest else 1))
    last_size = rest or _RLE_BLOCK
    out += ((last_size << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"\x00"
    return bytes(out)


def zstd_bomb(path: Path, *, declared: int = 1000 << 30, name: str = "AAA-bomb.bin",
              before: list[tuple[str, bytes]] = (), after: list[tuple[str, bytes]] = ()) -> Path:
    """A .tar.zst whose member ``name`` declares ``declared`` bytes of zeros (1,000 GiB: about 33 MB on disk).

    ``before``/``after``: small regular members (name, data) around the bomb, e.g. a bundle's files.
    """
    cctx = zstandard.ZstdCompressor()
    head = b"".join(_member_bytes(n, d) for n, d in before)
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = declared, 0o644, 1_700_000_000
    head += ti.tobuf(tarfile.PAX_FORMAT)  # PAX: a size over 8 GiB
    pad = -declared % tarfile.BLOCKSIZE
    tail = b"\0" * pad + b"".join(_member_bytes(n, d) for n, d in after) + b"\0" * (2 * tarfile.BLOCKSIZE)
    with open(path, "wb") as f:
        f.write(cctx.compress(head))
        f.write(_zstd_rle_zeros(declared))
        f.write(cctx.compress(tail))
    return path


def _member_bytes(name: str, data: bytes) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
    return ti.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def many_members(path: Path, count: int = 300_000, *, first: list[tuple[str, bytes]] = (),
                 last: list[tuple[str, bytes]] = (), compress: bool = False) -> Path:
    """A tar (or .tar.zst): ``first`` members, ``count`` empty files (m/000000 ...), then ``last``."""
    buf = bytearray()
    for n, d in first:
        buf += _member_bytes(n, d)
    # One ustar header, its name and checksum patched per member (tobuf per member takes 15 s).
    ti = tarfile.TarInfo("m/000000")
    ti.mode, ti.mtime = 0o644, 1_700_000_000
    template = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    base = sum(template) - sum(b"m/000000")
    for i in range(count):
        name = b"m/%06d" % i
        template[0:8] = name
        template[148:155] = b"%06o\0" % (base + sum(name))
        buf += template
    for n, d in last:
        buf += _member_bytes(n, d)
    buf += b"\0" * (2 * tarfile.BLOCKSIZE)
    data = zstandard.ZstdCompressor().compress(bytes(buf)) if compress else bytes(buf)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- hostile bundles
# An attacker with write access to a bundle (a USB stick, a shared folder) edits files and then
# rewrites offpkg.json and SHA256SUMS to match: integrity checks pass by construction, so what
# must stop these is verification that means what pip and uv will do.


def bundle_files(bundle: Path) -> list[tuple[str, bytes]]:
    """Every file of a bundle directory as (relative path, data), sorted like offpkg's archives."""
    return [(p.relative_to(bundle).as_posix(), p.read_bytes()) for p in sorted(bundle.rglob("*")) if p.is_file()]


def reseal(bundle: Path, **manifest_fields: object) -> None:
    """Rewrite offpkg.json and SHA256SUMS to match the files as they are now (new files listed too)."""
    import hashlib
    import json

    mpath = bundle / "offpkg.json"
    m = json.loads(mpath.read_text(encoding="utf-8"))
    m.update(manifest_fields)
    listed = {e["path"]: e for e in m["packages"] + m["files"]}
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if not p.is_file() or p.is_symlink() or rel in ("offpkg.json", "SHA256SUMS"):
            continue
        data = p.read_bytes()
        entry = listed.get(rel)
        if entry is None:
            entry = {"path": rel}
            m["files"].append(entry)
            listed[rel] = entry
        entry["sha256"], entry["size"] = hashlib.sha256(data).hexdigest(), len(data)
    mpath.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle).as_posix()}"
            for p in sorted(bundle.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (bundle / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")


def evil_wheel(outdir: Path, name: str, version: str, marker: Path, *, build: str | None = None,
               tag: str = "py3-none-any") -> Path:
    """A wheel whose .pth file writes ``marker`` whenever a Python starts in the venv it is installed in."""
    import base64
    import hashlib

    snake = name.replace("-", "_")
    distinfo = f"{snake}-{version}.dist-info"
    files = {
        f"{snake}/__init__.py": b"EVIL = True\n",
        f"{snake}-evil.pth": f"import os; open({str(marker)!r}, 'w').write('pwned')\n".encode(),
        f"{distinfo}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
        f"{distinfo}/WHEEL": f"Wheel-Version: 1.0\nGenerator: hostile\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
                     f"{len(d)}\n" for n, d in files.items()) + f"{distinfo}/RECORD,,\n"
    files[f"{distinfo}/RECORD"] = record.encode()
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{snake}-{version}-{build + '-' if build else ''}{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(n, date_time=(2024, 1, 1, 0, 0, 0)), d)
    return path


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- public API


def generate_cases(directory: Path, *, outside: Path | None = None) -> list[HostileCase]:
    """Write every hostile archive into ``directory``; return the cases."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    outside = Path(outside) if outside is not None else directory.parent / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / VICTIM).write_bytes(VICTIM_DATA)
    cases: list[HostileCase] = []
    for spec in _SPECS:
        path = directory / spec.filename
        spec.build(path, outside)
        cases.append(
            HostileCase(path, spec.description, _resolve(spec.member, outside), _resolve(spec.member_strict, outside))
        )
    return cases


def _resolve(token: str | None, outside: Path) -> str | None:
    leaf = {
        "<climb>": None,
        "<abs>": str(outside / "abs-pwned"),
        "<abs-zip>": str(outside / "zip-abs-pwned"),
        "<long>": _LONG_NAME,
    }
    if token in leaf:
        return leaf[token] if leaf[token] is not None else "../" * 40  # the start of every climbing name
    return token


def generate(directory: Path, *, outside: Path | None = None) -> list[tuple[Path, str]]:
    """Write every hostile archive into ``directory``; return ``[(path, description)]``."""
    return [(c.path, c.description) for c in generate_cases(directory, outside=outside)]


CORPUS_SIZE = len(_SPECS)
CASE_FILENAMES = [s.filename for s in _SPECS]
