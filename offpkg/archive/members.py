"""Reading archive members without extracting: streaming hashes, one member's data."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Iterator
from typing import IO

from ..errors import InputError, UnsafeArchiveError
from ..hashing import default_workers
from ._common import _CHUNK, _HINT_CORRUPT, _HINT_UNSAFE
from .formats import _PARSE_ERRORS, _corrupt, _read_up_to, _zstd_errors, detect_format
from .readers import _checked, _reader, _TarReader
from .rules import _KIND_WORDS, DEFAULT_MAX_TOTAL_SIZE, _Bad, _Checker, _Member, _parse_name, _Raw, display_name


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


def each_member(archive: Path, names: set[str], *, offset: int = 0) -> Iterator[tuple[str, IO[bytes]]]:
    """Stream each regular member whose name is in ``names``, as (name, readable stream), in archive order.

    Every member name on the way is checked by the archive rules (unsafe names raise
    UnsafeArchiveError); a stream is valid only until the next one is yielded.
    """
    archive = Path(archive)
    fmt = detect_format(archive, offset=offset)
    checker = _Checker(archive, allow_symlinks=True, allow_case_collisions=True, max_total_size=DEFAULT_MAX_TOTAL_SIZE)
    with _reader(archive, fmt, offset) as reader:
        for raw, m in _checked(reader, checker):
            if m is None or m.name not in names or m.kind != "file":
                continue
            with reader.open(raw) as src:
                yield m.name, src
