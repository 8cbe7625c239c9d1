"""THIRD_PARTY_NOTICES: the license files the carried wheels ship, gathered in one text file.

Taken from each wheel's ``.dist-info/licenses/`` (PEP 639) and the ``LICENSE*``,
``COPYING*``, ``NOTICE*``, ``AUTHORS*`` files at the top of its ``.dist-info``. One
section per distribution version (wheels of several targets share one when their
texts are the same); a distribution without license files says so, with the license
its metadata declares.
"""

from __future__ import annotations

from ..manifest import Package
from .licenses import WheelFacts

NOTICES_NAME = "THIRD_PARTY_NOTICES"
_RULE = "=" * 78


def _text(data: bytes) -> str:
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    # Keep the file plain text: no terminal control characters from a wheel.
    return "".join(c for c in text if c in "\n\t" or c >= " ").rstrip() + "\n"


def third_party_notices(packages: list[Package], facts: dict[str, WheelFacts], header: str = "") -> str:
    """The text of THIRD_PARTY_NOTICES for ``packages`` (their facts read by licenses.read_wheel)."""
    groups: dict[tuple[str, str], list[Package]] = {}
    for p in packages:
        groups.setdefault((p.name, p.version), []).append(p)
    out = [header or "Third-party notices: the license files of every package in this bundle, as each wheel ships them.",
           ""]
    for (name, version), files in sorted(groups.items()):
        texts: dict[tuple[str, bytes], list[str]] = {}
        lic = None
        for p in sorted(files, key=lambda p: p.filename):
            f = facts.get(p.filename)
            if f is None:
                continue
            lic = lic or f.license
            for path, data in f.license_files:
                # the same text under the same name in several wheels: printed once
                texts.setdefault((path.split("/", 1)[1], data), []).append(p.filename)
        out += [_RULE, f"{name} {version}" + (f"  (license: {lic.expression}"
                                              + (f"; declared: {lic.raw}" if lic.raw and not lic.known else "")
                                              + ")" if lic else ""),
                "files: " + ", ".join(sorted(p.filename for p in files)), _RULE, ""]
        if not texts:
            out += ["(this distribution ships no license file)", ""]
        for (rel, data), owners in texts.items():
            out += [f"--- {rel}" + (f"  (in {', '.join(owners)})" if len(owners) < len(files) else ""), "",
                    _text(data)]
    return "\n".join(out).rstrip() + "\n"
