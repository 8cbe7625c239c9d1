"""``offpkg licenses BUNDLE``: each carried package's license, from its own metadata."""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import click

from .. import ui
from ..options import json_option


def term_safe(text: str, limit: int = 200, *, markup: bool = True) -> str:
    """A string from a bundle made safe for a terminal: control characters shown escaped (and rich markup
    escaped when the text goes where markup is read, like a table cell)."""
    from rich.markup import escape

    shown = "".join(c if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co") else repr(c)[1:-1] for c in text)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return escape(shown) if markup else shown


@click.command("licenses")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--deny-license", "deny_licenses", multiple=True, metavar="SPDX",
              help="Exit 11 if a package's license is this SPDX id or glob (GPL-*), or 'unknown'; repeatable; "
                   "adds to the deny-licenses config key.")
@json_option
def licenses(bundle: str, deny_licenses: tuple[str, ...], as_json: bool) -> None:
    """List the license of every package in a bundle (and check a deny list).

    The license comes from each wheel's metadata: License-Expression (PEP 639), then
    the License field, then the license classifiers; normalised to SPDX where that is
    unambiguous, "unknown" otherwise. A bundle directory is read from its wheels, an
    archive from its sbom.cdx.json (checked against the manifest).
    """
    ui.state.json = as_json
    from ...review.licenses import check_patterns, denied, gate
    from ...review.model import load
    from ._common import settings

    patterns = check_patterns([*(settings().get("deny_licenses") or []), *deny_licenses])
    view = load(Path(bundle))
    items = sorted(view.items, key=lambda i: (i.role != "requirement", i.name, i.version, i.filename))
    summary = Counter(i.license.expression for i in items)
    bad = [i for i in items if denied(i.license, patterns)]
    payload = {
        "ok": not bad, "bundle": bundle, "source": view.source,
        "packages": [i.to_json() | {"denied": i in bad} for i in items],
        "summary": dict(sorted(summary.items())), "unknown": summary.get("unknown", 0),
        "deny": patterns, "denied": [f"{i.name} {i.version}" for i in bad],
    }
    if as_json and not bad:
        ui.emit_json("licenses", payload)
        return
    if not as_json:
        short = {"License-Expression": "expression", "classifier": "classifier", "License": "License field",
                 "conda record": "conda", "none": "-"}
        ui.table(None, ["package", "version", "license", "from"],
                 [[term_safe(i.name, 60) + ("" if i.role == "requirement" else f" ({i.role})"), term_safe(i.version, 40),
                   ("DENIED " if i in bad else "")
                   + term_safe(i.license.expression if i.license.known
                               else f"unknown ({i.license.raw or 'nothing declared'})", 90),
                   short.get(i.license.source, i.license.source)] for i in items])
        ui.result(f"{len(items)} packages: "
                  + ", ".join(f"{n} {term_safe(k, 60, markup=False)}" for k, n in summary.most_common()))
    if bad:
        if as_json:  # one document: this one, with ok false (like `verify --json`), and exit 11
            ui.emit_json("licenses", payload)
            raise click.exceptions.Exit(11)
        gate([(i.name, i.version, i.license) for i in bad], patterns, consequence="")
