"""Licenses from a wheel's own metadata, normalised to SPDX, and the deny-license gate.

Order (PEP 639): ``License-Expression`` first, then the free-text ``License`` field,
then the ``License ::`` classifiers. A value becomes an SPDX expression only where
that is unambiguous: a valid SPDX expression (``packaging.licenses``), or a name or
classifier that offpkg/data/licenses.json maps to exactly one license. Everything
else is ``unknown``, with what the metadata said kept as ``raw``.

A wheel is read without running anything from it: its zip directory, METADATA, the
license files of its ``.dist-info`` and the SBOMs it carries (PEP 770), each read
with a size limit (a hostile wheel cannot make this read gigabytes).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from importlib import resources
from pathlib import Path
from typing import Any

from license_expression import ExpressionError, ParseError
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import InputError, LicensePolicyError

UNKNOWN = "unknown"
MAX_METADATA = 2 << 20
MAX_LICENSE_FILE = 1 << 20
MAX_LICENSE_FILES = 64
MAX_LICENSE_TOTAL = 8 << 20
MAX_SBOM_FILE = 8 << 20
MAX_SBOMS = 16
MAX_RAW = 300
MAX_MEMBERS = 500_000  # torch has ~16,000; far more is a hostile zip directory
# Names of license files at the top of a .dist-info (before PEP 639 put them under licenses/).
_LICENSE_NAME = re.compile(r"(?i)^(licen[cs]e|copying|notice|authors|copyright)([._-].*)?$")


@dataclass(frozen=True)
class License:
    """A package's license: an SPDX expression or ``unknown``, where it came from, and what was written."""

    expression: str
    source: str  # License-Expression | License | classifier | none
    raw: str = ""

    @property
    def known(self) -> bool:
        return self.expression != UNKNOWN

    def to_json(self) -> dict[str, str]:
        return {"license": self.expression, "license_source": self.source, "license_raw": self.raw}


@dataclass(frozen=True)
class WheelFacts:
    """What a wheel says about itself; read once, used by the gate, the SBOM and the notices."""

    filename: str
    name: str
    version: str
    license: License
    requires_dist: tuple[str, ...] = ()
    summary: str = ""
    license_files: tuple[tuple[str, bytes], ...] = ()  # (path inside the wheel, bytes)
    sboms: tuple[tuple[str, bytes], ...] = ()  # PEP 770: .dist-info/sboms/*
    notes: tuple[str, ...] = field(default=())  # what was skipped (over a limit)


@functools.lru_cache(maxsize=1)
def _tables() -> dict[str, dict[str, str]]:
    data = json.loads((resources.files("offpkg") / "data" / "licenses.json").read_text(encoding="utf-8"))
    return {"classifiers": data["classifiers"], "names": {k.lower(): v for k, v in data["names"].items()}}


def _spdx(text: str) -> str | None:
    try:
        return str(canonicalize_license_expression(text))
    except (InvalidLicenseExpression, ValueError, TypeError):
        return None


def _short(text: str) -> str:
    """One line, bounded, control characters replaced: metadata text is shown in terminals, notices and HTML."""
    one = "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in " ".join(text.split()))
    return one if len(one) <= MAX_RAW else one[: MAX_RAW - 1] + "…"


def license_of(meta: Message) -> License:
    """The license a distribution's METADATA declares (see the module docstring for the order)."""
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return License(_spdx(expr) or UNKNOWN, "License-Expression", _short(expr))
    text = (meta.get("License") or "").strip()
    if text and text.upper() not in ("UNKNOWN", "NONE"):
        # A short value may be an SPDX id or a well-known name; a long one is usually the license text.
        if "\n" not in text and len(text) <= 100:
            found = _spdx(text) or _tables()["names"].get(" ".join(text.lower().split()))
            if found:
                return License(found, "License", _short(text))
    classifiers = [c.strip() for c in meta.get_all("Classifier") or [] if c.strip().startswith("License ::")]
    mapped = {_tables()["classifiers"].get(c) for c in classifiers}
    if classifiers and len(mapped) == 1 and None not in mapped:
        return License(mapped.pop() or UNKNOWN, "classifier", _short("; ".join(classifiers)))
    raw = "; ".join(x for x in [_short(text) if text else "", *classifiers] if x)
    return License(UNKNOWN, "License" if text else ("classifier" if classifiers else "none"), _short(raw))


# ------------------------------------------------------------------ reading a wheel

def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """The member's bytes, or None when it is bigger than ``limit`` (checked while reading, not from the header)."""
    if info.file_size > limit:
        return None
    with z.open(info) as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def _dist_info(names: list[str], filename: str) -> str:
    name, version, _, _ = parse_wheel_filename(filename)
    dirs = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info") and "/" in n})
    for d in dirs:
        dn, _, dv = d[: -len(".dist-info")].rpartition("-")
        if canonicalize_name(dn) == name and dv == str(version):
            return d
    for d in dirs:  # a version spelled differently (1.0 vs 1.0.0): match the name only
        if canonicalize_name(d[: -len(".dist-info")].rpartition("-")[0]) == name:
            return d
    raise InputError(f"{filename}: the wheel has no .dist-info directory for {name}",
                     hint="the wheel is malformed; it cannot be installed either")


def read_wheel(path: Path, filename: str | None = None) -> WheelFacts:
    """Read a wheel's metadata, license files and embedded SBOMs (bounded; nothing is executed)."""
    filename = filename or path.name
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except ValueError as exc:
        raise InputError(f"{filename}: not a wheel file name ({exc})") from None
    notes: list[str] = []
    try:
        with zipfile.ZipFile(path) as z:
            if len(z.infolist()) > MAX_MEMBERS:
                raise InputError(f"{filename}: the wheel has over {MAX_MEMBERS} members; refusing to read it")
            infos = [i for i in z.infolist() if not i.is_dir()]
            by_name = {i.filename: i for i in infos}
            di = _dist_info(list(by_name), filename)
            meta_info = by_name.get(f"{di}/METADATA")
            if meta_info is None:
                raise InputError(f"{filename}: {di}/METADATA is missing", hint="the wheel is malformed")
            raw_meta = _read(z, meta_info, MAX_METADATA)
            if raw_meta is None:
                raise InputError(f"{filename}: {di}/METADATA is larger than {MAX_METADATA} bytes")
            meta = HeaderParser().parsestr(raw_meta.decode("utf-8", "replace"))
            lic_files: list[tuple[str, bytes]] = []
            total = 0
            for i in sorted(infos, key=lambda i: i.filename):
                rest = i.filename[len(di) + 1:] if i.filename.startswith(di + "/") else None
                if rest is None or not (rest.startswith("licenses/") or ("/" not in rest and _LICENSE_NAME.match(rest))):
                    continue
                if len(lic_files) >= MAX_LICENSE_FILES or total + i.file_size > MAX_LICENSE_TOTAL:
                    notes.append(f"license file {i.filename} left out (over {MAX_LICENSE_FILES} files or "
                                 f"{MAX_LICENSE_TOTAL} bytes)")
                    continue
                data = _read(z, i, MAX_LICENSE_FILE)
                if data is None:
                    notes.append(f"license file {i.filename} left out (over {MAX_LICENSE_FILE} bytes)")
                    continue
                total += len(data)
                lic_files.append((i.filename, data))
            sboms: list[tuple[str, bytes]] = []
            for i in sorted(infos, key=lambda i: i.filename):
                if not i.filename.startswith(f"{di}/sboms/"):
                    continue
                data = _read(z, i, MAX_SBOM_FILE) if len(sboms) < MAX_SBOMS else None
                if data is None:
                    notes.append(f"SBOM {i.filename} left out (over {MAX_SBOMS} files or {MAX_SBOM_FILE} bytes)")
                    continue
                sboms.append((i.filename, data))
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"{filename}: cannot read the wheel ({exc})",
                         hint="the file is damaged; fetch or copy it again") from None
    return WheelFacts(
        filename=filename, name=str(name), version=str(version), license=license_of(meta),
        requires_dist=tuple(meta.get_all("Requires-Dist") or ()), summary=_short(meta.get("Summary") or ""),
        license_files=tuple(lic_files), sboms=tuple(sboms), notes=tuple(notes))


# ------------------------------------------------------------------ the gate

@functools.lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import Licensing

    return Licensing()  # no symbol table: parse the tree as written, without aliasing names


def _symbols(expression: str) -> list[str]:
    """The license ids of an SPDX expression (exceptions dropped)."""
    return [s.key for s in _licensing().license_symbols(expression, unique=True, decompose=True)]


def check_patterns(patterns: list[str] | tuple[str, ...]) -> list[str]:
    """Validate deny patterns: SPDX ids or globs (``GPL-*``), an expression of them, or ``unknown``."""
    out: list[str] = []
    for p in patterns:
        p = p.strip()
        if not p:
            continue
        if p.lower() == UNKNOWN:
            out.append(UNKNOWN)
            continue
        if not re.fullmatch(r"[A-Za-z0-9.+*?:()\- ]+", p):
            raise InputError(f"--deny-license {p!r} is not an SPDX license id, glob or expression",
                             hint="e.g. --deny-license GPL-3.0-only, --deny-license 'AGPL-*', --deny-license unknown")
        try:
            out += _symbols(p) if re.search(r"\s(AND|OR|WITH)\s", p, re.IGNORECASE) else [p]
        except (ExpressionError, ParseError, ValueError, TypeError) as exc:
            raise InputError(f"--deny-license {p!r} is not a valid SPDX expression ({exc})") from None
    return out


def _matches(symbol: str, patterns: list[str]) -> bool:
    return any(p != UNKNOWN and fnmatch.fnmatchcase(symbol.lower(), p.lower()) for p in patterns)


def denied(lic: License, patterns: list[str]) -> bool:
    """Whether a package's license falls under the deny list.

    ``A OR B`` is denied only when every choice is (the user may take the other);
    ``A AND B`` when any part is; ``A WITH exception`` when A is.
    """
    if not patterns:
        return False
    if not lic.known:
        return UNKNOWN in patterns
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

    def walk(node: Any) -> bool:
        if isinstance(node, LicenseWithExceptionSymbol):
            return walk(node.license_symbol)
        if isinstance(node, LicenseSymbol):
            return _matches(node.key, patterns)
        if isinstance(node, OR):
            return all(walk(a) for a in node.args)
        if isinstance(node, AND):
            return any(walk(a) for a in node.args)
        return False

    try:
        return walk(_licensing().parse(lic.expression))
    except (ExpressionError, ParseError, ValueError, TypeError):  # unreadable: judge its ids one by one
        return any(_matches(s, patterns) for s in re.findall(r"[A-Za-z0-9.+\-]+", lic.expression))


def gate(facts: list[tuple[str, str, License]], patterns: list[str], consequence: str = "no bundle was written") -> None:
    """Refuse (LicensePolicyError) when any (name, version, license) is denied; name them all."""
    if not patterns:
        return
    bad = sorted({f"{n} {v}: {lic.expression}" + (f" ({lic.raw})" if not lic.known and lic.raw else "")
                  for n, v, lic in facts if denied(lic, patterns)})
    if bad:
        raise LicensePolicyError(
            f"{len(bad)} package(s) have a denied license (deny: {', '.join(patterns)})"
            + (f"; {consequence}" if consequence else ""),
            problems=bad,
            hint="drop or replace those requirements, or change --deny-license / the deny-licenses config key")
