"""Member-name normalisation and the extraction rules every archive member must pass.

A bundle crosses an air gap and is unpacked as root, so nothing in an archive is
trusted. Every member is checked by these rules *before* anything is written
(Python's ``filter='data'`` has been bypassed by several CVEs, so it is only an
extra layer here).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UnsafeArchiveError
from ._common import _HINT_UNSAFE


MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255
# Folders deeper than this are hostile, not a wheel or an environment (the deepest real ones are
# a few dozen levels); they would also exhaust the recursion of tools that walk the tree.
MAX_DEPTH = 256
DEFAULT_MAX_TOTAL_SIZE = 1 << 40  # 1 TiB of declared member data
# Zip bomb guard: members above this size may not be compressed more than _MAX_RATIO:1.
_RATIO_MIN_SIZE = 100 * 1000 * 1000
_MAX_RATIO = 1000
_MAX_LINK_DEPTH = 40  # like Linux MAXSYMLINKS: deeper chains are treated as loops
_DRIVE = re.compile(r"^[A-Za-z]:")


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
    if len(parts) > MAX_DEPTH:
        raise _Bad(f"has a {what} {len(parts)} folders deep (limit {MAX_DEPTH})")
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
