"""The bundle's lock files, checked against an allowlist: what pip and uv will do is what verify saw.

pip and uv read far more from a requirements file than pins: ``--find-links``,
``--index-url``, ``--no-binary``, ``-c``/``-r`` includes, URLs and ``${VAR}``
expansion. A lenient parser that skips what it does not understand lets a bundle
say one thing to ``verify`` and another to the installer. So every line must be
one of the few shapes offpkg itself writes, and anything else is a problem:

- blank lines and whole-line comments (``# ...``), outside a continued requirement;
- ``name==version`` followed by ``--hash=sha256:HEX`` options only (on the same
  line or on ``\\``-continued lines), with exactly the manifest's hash(es).

``pylock.toml`` is compared key by key: only known keys, every package only as
wheels with a ``path`` that is a locked wheel of the manifest, its exact size and
exactly its sha256; no ``url``, ``vcs``, ``directory``, ``archive`` or ``sdist`` source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from .._compat import tomllib
from ..manifest import Manifest, Package

# A requirement line: exactly `name==version`, nothing else (no extras, markers, URLs, `===`).
_PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
# Lock files are offpkg's ASCII output; anything else (controls, bidi overrides, NUL) is refused.
_ALLOWED_CHAR = re.compile(r"[\t\n\x20-\x7e]*")
# Files that pip, uv or installers would pick up as a package: only wheels/ and tools/ may hold them.
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar.zst",
                     ".zip", ".egg", ".conda", ".pyz", ".7z", ".rar")
_PACKAGE_DIRS = ("wheels/", "tools/")

_PYLOCK_TOP = {"lock-version", "environments", "requires-python", "extras", "dependency-groups",
               "default-groups", "created-by", "packages", "tool"}
# `tool` tables are tool-specific notes (offpkg records built-from-sdist there); installers ignore others'.
_PYLOCK_PACKAGE = {"name", "version", "wheels", "marker", "requires-python", "tool"}
_PYLOCK_WHEEL = {"name", "path", "size", "hashes", "upload-time", "tool"}
_PYLOCK_SOURCES = ("vcs", "directory", "archive", "sdist", "index")


@dataclass(frozen=True)
class Pinned:
    """One requirement of a requirements file: its name as written, version, hashes, line number."""

    name: str
    version: str
    hashes: tuple[str, ...]
    line: int


def _shown(text: str, limit: int = 80) -> str:
    """A line of the file as it appears in a problem: quoted, control characters escaped."""
    s = repr(text)
    return s if len(s) <= limit else s[: limit - 4] + "...'"


def parse_requirements(text: str, rel: str) -> tuple[dict[str, Pinned], list[str]]:
    """The pins of a bundle's requirements file by canonical name, and every line that breaks the allowlist."""
    problems: list[str] = []
    pins: dict[str, Pinned] = {}
    if not _ALLOWED_CHAR.fullmatch(text):
        bad = next(c for c in text if not _ALLOWED_CHAR.fullmatch(c))
        problems.append(f"{rel}: contains the character {bad!r}; a bundle's requirements file is plain ASCII")
        return pins, problems
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # One logical line: physical lines joined while they end in a backslash.
        tokens: list[str] = []
        physical = line
        while True:
            cont = physical.rstrip().endswith("\\")
            body = physical.rstrip()[:-1] if cont else physical
            tokens += body.split()
            if not cont:
                break
            if i >= len(lines) or not lines[i].strip() or lines[i].lstrip().startswith("#"):
                problems.append(f"{rel}:{start + 1}: a line continuation not followed by a --hash line")
                break
            physical = lines[i]
            i += 1
        pin = _PIN.fullmatch(tokens[0]) if tokens else None
        if pin is None:
            problems.append(f"{rel}:{start + 1}: {_shown(stripped)} is not allowed in a bundle's requirements file "
                            "(only `name==version` with --hash=sha256 options, comments and blank lines)")
            continue
        hashes: list[str] = []
        for tok in tokens[1:]:
            h = _HASH.fullmatch(tok)
            if h is None:
                problems.append(f"{rel}:{start + 1}: {_shown(tok)} after {pin.group(1)}=={pin.group(2)} is not "
                                "allowed (only --hash=sha256:<64 hex digits>)")
                continue
            hashes.append(h.group(1))
        name = canonicalize_name(pin.group(1))
        if name in pins:
            problems.append(f"{rel}:{start + 1}: pins {name} a second time")
            continue
        pins[name] = Pinned(pin.group(1), pin.group(2), tuple(hashes), start + 1)
    return pins, problems


def check_requirements(text: str, rel: str, wheels: Iterable[Package]) -> list[str]:
    """Problems of one requirements file against the wheels of its target: exactly these pins, exactly these hashes."""
    pins, problems = parse_requirements(text, rel)
    want: dict[str, list[Package]] = {}
    for p in wheels:
        want.setdefault(p.name, []).append(p)
    for name in sorted(set(pins) - set(want)):
        problems.append(f"{rel}: pins {name}, which has no wheel in the bundle")
    for name, pkgs in sorted(want.items()):
        got = pins.get(name)
        if got is None:
            problems.append(f"{rel}: does not pin {name}")
            continue
        versions = {p.version for p in pkgs}
        if got.version not in versions:
            problems.append(f"{rel}: pins {name}=={got.version}, the bundle holds {', '.join(sorted(versions))}")
            continue
        expected = {p.sha256 for p in pkgs}
        listed = set(got.hashes)
        if not listed:
            problems.append(f"{rel}: pins {name} without a --hash")
        for h in sorted(listed - expected):
            problems.append(f"{rel}: {name} has --hash=sha256:{h}, which is not the hash of its bundled wheel "
                            "(a second hash lets pip install another file)")
        for p in pkgs:
            if p.sha256 not in listed:
                problems.append(f"{rel}: the hash of {p.filename} is not among {name}'s --hash values")
    return problems


def check_pylock(text: str, manifest: Manifest) -> list[str]:
    """Problems of pylock.toml: every package and every source against the manifest's locked wheels."""
    rel = "pylock.toml"
    if not _ALLOWED_CHAR.fullmatch(text):
        return [f"{rel}: contains characters other than plain ASCII"]
    try:
        data = tomllib.loads(text)
        from packaging.pylock import Pylock

        Pylock.from_dict(data)
    except Exception as exc:  # a malformed lock is a problem to report, not a crash
        return [f"{rel}: invalid ({type(exc).__name__}: {_shown(str(exc), 200)})"]
    problems = [f"{rel}: unexpected key {_shown(k)}" for k in sorted(set(data) - _PYLOCK_TOP)]
    by_path = {p.path: p for p in manifest.requirement_packages}
    seen: dict[str, int] = {}
    packages = data.get("packages", [])
    for i, pk in enumerate(packages if isinstance(packages, list) else []):
        where = f"{rel}: packages[{i}]"
        if not isinstance(pk, dict):
            problems.append(f"{where}: not a table")
            continue
        name = str(pk.get("name", ""))
        where = f"{rel}: package {_shown(name)}"
        for k in sorted(set(pk) - _PYLOCK_PACKAGE):
            what = "a source other than the bundle's wheels" if k in _PYLOCK_SOURCES else "an unexpected key"
            problems.append(f"{where}: {_shown(k)} is {what}; only wheels inside wheels/ are allowed")
        wheels = pk.get("wheels")
        if not isinstance(wheels, list) or not wheels:
            problems.append(f"{where}: has no wheels")
            continue
        for w in wheels:
            problems += _check_pylock_wheel(w, pk, where, by_path, seen)
    for path in sorted(set(by_path) - set(seen)):
        problems.append(f"{rel}: does not lock {path}")
    for path, n in sorted(seen.items()):
        if n > 1:
            problems.append(f"{rel}: locks {path} {n} times")
    return problems


def _check_pylock_wheel(w: Any, pk: dict[str, Any], where: str, by_path: dict[str, Package],
                        seen: dict[str, int]) -> list[str]:
    if not isinstance(w, dict):
        return [f"{where}: a wheel entry that is not a table"]
    problems = [f"{where}: wheel key {_shown(k)} is not allowed (only a path inside wheels/)"
                for k in sorted(set(w) - _PYLOCK_WHEEL)]
    path = w.get("path")
    p = by_path.get(path) if isinstance(path, str) else None
    if p is None:
        return problems + [f"{where}: wheel path {_shown(str(path))} is not a locked wheel of the bundle"]
    seen[p.path] = seen.get(p.path, 0) + 1
    if canonicalize_name(str(pk.get("name", ""))) != p.name or str(pk.get("version")) != p.version:
        problems.append(f"{where}: {p.path} belongs to {p.name} {p.version}")
    if w.get("name", p.filename) != p.filename:
        problems.append(f"{where}: wheel name {_shown(str(w.get('name')))} is not {p.filename}")
    if "size" in w and w["size"] != p.size:
        problems.append(f"{where}: size of {p.path} is {_shown(str(w['size']))}, the manifest says {p.size}")
    if w.get("hashes") != {"sha256": p.sha256}:
        problems.append(f"{where}: hashes of {p.path} are not exactly its sha256 from the manifest")
    return problems


# The only settings a bundle's pip.conf may carry: what offpkg writes (offpkg.bundle.PIP_CONF).
_PIP_CONF_ALLOWED = {("no-index", "true"), ("find-links", "wheels"), ("only-binary", ":all:"),
                     ("disable-pip-version-check", "true")}


def check_pip_conf(text: str, rel: str = "pip.conf") -> list[str]:
    """Problems of the bundle's pip.conf: only offpkg's own offline settings (no index, no other find-links)."""
    if not _ALLOWED_CHAR.fullmatch(text):
        return [f"{rel}: contains characters other than plain ASCII"]
    problems = []
    for no, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s or s.startswith(("#", ";")) or s == "[global]":
            continue
        key, sep, value = s.partition("=")
        if not sep or (key.strip(), value.strip()) not in _PIP_CONF_ALLOWED:
            problems.append(f"{rel}:{no}: {_shown(s)} is not allowed (a bundle's pip.conf only keeps pip offline: "
                            "no-index, find-links = wheels, only-binary, disable-pip-version-check)")
    return problems


def check_layout(manifest: Manifest) -> list[str]:
    """No archive or wheel outside wheels/ and tools/ (but the packed conda environment the manifest names)."""
    allowed = set()
    if manifest.conda is not None and isinstance(manifest.conda.get("path"), str):
        allowed.add(manifest.conda["path"])
    problems = []
    for rel in sorted(manifest.all_entries()):
        if rel.startswith(_PACKAGE_DIRS) or rel in allowed:
            continue
        if rel.lower().endswith(_ARCHIVE_SUFFIXES):
            problems.append(f"{rel}: a package archive outside wheels/ and tools/; an installer could pick it up")
    return problems
