"""Hashes the user pinned are honored, as ``pip --require-hashes`` would honor them.

A requirements file made by ``pip-compile --generate-hashes`` is its owner's trust
anchor: every ``--hash`` in it (and in the constraint files it names or that are given
with ``-c``) names the only files acceptable for that package. offpkg resolves and
downloads with the index's hashes; this module then checks every downloaded file of a
pinned package against the user's pins (for a wheel built from an sdist, the sdist
that was downloaded, as pip checks what it downloads). A mismatch refuses the bundle,
naming the package, the expected and the found hashes. Packages the user did not pin
are reported too, so the output can say that their hashes came from the index.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import InputError, VerificationError

# pip's hash-checking mode accepts these algorithms.
ALGORITHMS = ("sha256", "sha384", "sha512")
_HASH_OPT = re.compile(r"(?:^|\s)--hash[= ]([A-Za-z0-9]+):([0-9A-Fa-f]+)(?=\s|$)")


@dataclass(frozen=True)
class PinLine:
    """The hashes one line of one file allows for a package."""

    where: str  # file:line
    hashes: dict[str, frozenset[str]]  # algorithm -> hex digests


@dataclass
class HashPins:
    """Every hash-pinning line, by canonical package name."""

    lines: dict[str, list[PinLine]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.lines)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read requirements file {path}: {exc}") from None


def collect_pins(files: Iterable[Path], constraints: Iterable[Path]) -> HashPins:
    """The ``--hash`` pins of requirement files (following ``-r`` and ``-c``) and constraint files."""
    pins = HashPins()
    seen: set[Path] = set()
    todo = [Path(p) for p in (*files, *constraints)]
    while todo:
        path = todo.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        for no, line in _logical_lines(_read(path)):
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            m = re.match(r"^(-r|--requirement|-c|--constraint)(?:=|\s+)(\S+)$", line)
            if m:
                todo.append(path.parent / m.group(2))
                continue
            if not line or line.startswith("-"):
                continue
            found = _HASH_OPT.findall(line)
            if not found:
                continue
            where = f"{path}:{no}"
            try:
                name = canonicalize_name(Requirement(_HASH_OPT.sub(" ", line).strip()).name)
            except InvalidRequirement:
                continue  # read_requirement_lines reports it
            hashes: dict[str, set[str]] = {}
            for algo, digest in found:
                algo = algo.lower()
                if algo not in ALGORITHMS:
                    raise InputError(f"{where}: --hash={algo}:... uses an algorithm pip does not accept",
                                     hint="use sha256 (pip-compile --generate-hashes writes sha256)")
                hashes.setdefault(algo, set()).add(digest.lower())
            pins.lines.setdefault(name, []).append(
                PinLine(where, {a: frozenset(h) for a, h in hashes.items()}))
    return pins


@dataclass(frozen=True)
class Downloaded:
    """One file offpkg downloaded for a package (the wheel, or the sdist it builds)."""

    name: str  # canonical
    version: str
    filename: str
    path: Path
    sha256: str


def check_pins(pins: HashPins, files: Iterable[Downloaded]) -> tuple[list[str], list[str]]:
    """(pinned package names, unpinned ones); raises VerificationError listing every mismatch."""
    problems: list[str] = []
    pinned: set[str] = set()
    unpinned: set[str] = set()
    for f in files:
        lines = pins.lines.get(f.name)
        if not lines:
            unpinned.add(f.name)
            continue
        pinned.add(f.name)
        digests = {"sha256": f.sha256}
        for line in lines:
            for algo in line.hashes:
                if algo not in digests:
                    digests[algo] = _digest(f.path, algo)
            if any(digests[a] in allowed for a, allowed in line.hashes.items()):
                continue
            expected = " or ".join(f"{a}:{h}" for a, hs in sorted(line.hashes.items()) for h in sorted(hs))
            found = ", ".join(f"{a}:{digests[a]}" for a in sorted(line.hashes))
            problems.append(f"{f.name}=={f.version} ({f.filename}, pinned at {line.where}): "
                            f"expected {expected}; got {found}")
    if problems:
        raise VerificationError(
            "the files to bundle do not match the hashes pinned in your requirements (as pip --require-hashes "
            "would refuse them); nothing was written", problems,
            hint="the index serves other files than the ones you pinned: check the index (or mirror), or update "
                 "the pins (pip-compile --generate-hashes) if the change is expected")
    return sorted(pinned), sorted(unpinned - pinned)


def check_bundle_pins(pins: HashPins, locks: Iterable[Iterable[Any]], fetched: dict[str, Any]) -> dict[str, list[str]]:
    """The bundle hook: every selected file of every target's lock (``offpkg.resolve.Selection``) as downloaded."""
    files = [Downloaded(s.pin.name, s.pin.version, s.file.filename, fetched[s.file.filename].path,
                        fetched[s.file.filename].sha256) for sels in locks for s in sels]
    pinned, from_index = check_pins(pins, files)
    return {"pinned": pinned, "from_index": from_index}


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
