"""The rules a conda environment must meet to be installed offline, checked at build and at install.

One set of functions, used on both sides, so the build host refuses everything the
target would refuse, in the same words (issue 13.7):

- :func:`check_members`: the archive extraction rules (:mod:`offpkg.archive.tree`) over
  the members the archive holds: no link out of the prefix (absolute, or ``..`` past the
  root, also through other links), no device/FIFO/socket, nothing written through a link,
  no two members with one name (a file conda-pack adds, such as ``bin/activate``, that the
  environment already has would be *clobbered*: the archive would hold it twice).
- :func:`check_prefix_record`: a file ``conda-unpack`` rewrites in place must be a regular
  file inside the prefix, not a link.

At build (:func:`check_packable`) the members are the files conda-pack will write, plus the
scripts it adds; at install they are the archive's (``safe_extract``) or, for a no-archive
folder, the folder's own entries (:func:`check_tree`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..archive.tree import _Raw, check_entries, entry_of, tree_entries
from ..errors import UnsafeArchiveError
from .env import _ON_WIN, BIN

HINT_BUILD = ("offpkg install would refuse this environment on the target; fix it before packing: make links "
              "relative and inside the environment (or remove them), remove devices, FIFOs and sockets, and "
              "rename files that conda-pack adds to every archive (bin/activate, bin/deactivate, "
              "bin/activate.fish, bin/conda-unpack, bin/conda_unpack_progress.py)")


def pack_adds() -> list[str]:
    """The files conda-pack adds to every archive it writes (activate scripts, conda-unpack)."""
    names: list[str] = []
    try:
        from conda_pack import core

        names = [t.replace("\\", "/") for _src, t in core._scripts]
    except (ImportError, AttributeError, ValueError):  # another conda-pack layout: its documented set
        names = [f"{BIN}/activate", f"{BIN}/deactivate"] + ([] if _ON_WIN else [f"{BIN}/activate.fish"])
    names.append(f"{BIN}/conda_unpack_progress.py")
    names += [f"{BIN}/conda-unpack-script.py", f"{BIN}/conda-unpack.exe"] if _ON_WIN else [f"{BIN}/conda-unpack"]
    return names


_MAX_SCRIPT = 1 << 20  # conda-pack's scripts are a few KiB; a bigger file is not one of them


def _is_conda_unpack(data: bytes) -> bool:
    """Whether ``data`` is a ``conda-unpack`` script conda-pack generated (its template's fixed lines)."""
    return all(marker in data for marker in (b"from conda_unpack_progress import progressbar",
                                             b"_prefix_records = [", b"prog='conda-unpack'"))


def drop_conda_pack_leftovers(files: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """Leave out what an earlier conda-unpack left in the environment and conda-pack writes afresh.

    An environment that was itself unpacked from a conda-pack archive (``offpkg install
    --conda-prefix``) holds ``bin/conda-unpack``, its progress module and ``bin/activate.fish``;
    packing it again would put each name into the archive twice, which the install refuses.
    Only unmanaged files byte-identical to what conda-pack writes (or, for the generated
    ``conda-unpack``, carrying its template's lines) are left out; any other file at one of
    those names stays, and :func:`check_packable` refuses it as a clobbered file.
    """
    expected: dict[str, bytes | None] = {name: None for name in pack_adds()}
    try:
        from conda_pack import core

        for src, target in core._scripts:
            expected[target.replace("\\", "/")] = Path(src).read_bytes()
        expected[f"{BIN}/conda_unpack_progress.py"] = (Path(core.__file__).parent / "_progress.py").read_bytes()
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # another conda-pack layout: nothing is recognised, so nothing is left out
    kept, dropped = [], []
    for f in files:
        target = f.target.replace("\\", "/")
        if target in expected and not getattr(f, "is_conda", True) and not os.path.islink(f.source) \
                and os.path.isfile(f.source) and os.path.getsize(f.source) <= _MAX_SCRIPT:
            data = Path(f.source).read_bytes()
            want = expected[target]
            if (want is not None and data == want) or (want is None and _is_conda_unpack(data)):
                dropped.append(target)
                continue
        kept.append(f)
    notes = [f"left out {', '.join(sorted(dropped))}: left by an earlier conda-unpack; conda-pack writes them "
             "afresh"] if dropped else []
    return kept, notes


def check_members(entries: Iterable[_Raw], *, where: str, lead: str | None = None, hint: str | None = None,
                  case_sensitive: bool = True) -> list[_Raw]:
    """The extraction rules over ``entries`` (UnsafeArchiveError: ``LEAD: member NAME REASON``)."""
    kw: dict[str, Any] = {"lead": lead}
    if hint:
        kw["hint"] = hint
    return check_entries(where, entries, allow_symlinks=True, allow_case_collisions=case_sensitive, **kw)


def check_prefix_record(path: str, prefix: Path, where: str) -> None:
    """A prefix record ``path`` (rewritten in place by conda-unpack) must name a regular file inside ``prefix``."""
    parts = path.replace("\\", "/").split("/")
    if os.path.isabs(path) or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) \
            or ".." in parts or "\x00" in path:
        raise UnsafeArchiveError(f"{where}: prefix record {path!r} points outside the environment")
    root = os.path.realpath(prefix)
    full = Path(prefix) / path
    if not os.path.realpath(full).startswith(root + os.sep) or full.is_symlink() or not full.is_file():
        raise UnsafeArchiveError(f"{where}: prefix record {path!r} is not a regular file inside the environment")


def check_tree(src: Path, where: str) -> list[tuple[str, _Raw]]:
    """A no-archive folder's entries (full path, member), checked like an archive's members."""
    entries = tree_entries(src)
    check_members((raw for _, raw in entries), where=where)
    return entries


def check_packable(src: Path, files: Sequence[Any], archive_name: str) -> list[str]:
    """Refuse, before packing, an environment whose archive ``offpkg install`` would refuse.

    ``files`` are conda-pack's ``File`` records (``source``, ``target``, ``file_mode``). The
    message is the one the install gives for the archive (``member NAME REASON``), led by the
    environment's path. Returns notes for what only some targets refuse (names that differ
    only in case: refused where the filesystem folds case).
    """
    lead = f"the conda environment {src} cannot be installed offline ({archive_name})"
    entries = []
    for f in files:
        try:
            entries.append(entry_of(f.source, f.target.replace("\\", "/")))
        except FileNotFoundError:
            continue  # gone since conda-pack listed it: conda-pack itself reports a missing file
    entries += [_Raw(name, "file", 0, 0o755, None, "") for name in pack_adds()]
    check_members(entries, where=archive_name, lead=lead, hint=HINT_BUILD)
    for f in files:
        if getattr(f, "file_mode", None) in ("text", "binary") and not os.path.islink(f.source) \
                and not os.path.isdir(f.source):
            try:
                check_prefix_record(f.target, src, "conda-unpack")
            except UnsafeArchiveError as exc:
                raise UnsafeArchiveError(f"{lead}: {exc.message}", hint=HINT_BUILD) from None
    folded: dict[str, list[str]] = {}
    for raw in entries:
        folded.setdefault(raw.name.casefold(), []).append(raw.name)
    clashes = [names for names in folded.values() if len(names) > 1]
    if clashes:
        shown = "; ".join(" / ".join(n) for n in clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        return [f"{len(clashes)} file name(s) differ only in case ({shown}): the environment installs only "
                "onto a case-sensitive filesystem (Linux; not default macOS or Windows)"]
    return []
