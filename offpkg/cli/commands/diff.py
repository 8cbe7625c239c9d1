"""``offpkg diff A B``: what changes from A to B (bundles, archives, manifests, receipts, venvs)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import json_option


def clean(text: object) -> str:
    """A string from a bundle or receipt, safe for the terminal: no control characters, no rich markup."""
    from rich.markup import escape

    s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text))
    return escape(s[:200])


def _size(n: int | None) -> str:
    return "?" if n is None else ui.human_size(n)


@click.command("diff")
@click.argument("a", type=click.Path(exists=False))
@click.argument("b", type=click.Path(exists=False))
@json_option
def cli(a: str, b: str, as_json: bool) -> None:
    """Packages added, removed, upgraded and downgraded from A to B, with sizes, targets and CUDA changes.

    A and B: a bundle directory or archive, an offpkg.json, a venv's
    offpkg-receipt.json, or a venv (or conda prefix) installed by offpkg.
    """
    ui.state.json = as_json
    from ...updates.diff import diff_paths

    d = diff_paths(Path(a), Path(b))
    if as_json:
        ui.emit_json("diff", {"ok": True, **d.to_json()})
        return
    rows = []
    for c in d.changes:
        old = f"{clean(c.old_version)} ({_size(c.old_size)})" if c.old_version is not None else ""
        new = f"{clean(c.new_version)} ({_size(c.new_size)})" if c.new_version is not None else ""
        rows.append([c.kind, clean(c.name), old, new])
    if rows:
        ui.table(None, ["change", "package", "A", "B"], rows)
    counts = d.to_json()["counts"]
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no packages"
    change = "" if d.total_a is None or d.total_b is None else f" ({'+' if d.total_b >= d.total_a else '-'}" \
        f"{ui.human_size(abs(d.total_b - d.total_a))})"
    ui.result(f"{summary}; size {_size(d.total_a)} -> {_size(d.total_b)}{change}")
    if d.targets_added or d.targets_removed:
        ui.result("targets: " + ", ".join([f"+{clean(t)}" for t in d.targets_added]
                                          + [f"-{clean(t)}" for t in d.targets_removed]))
    if d.cuda:
        ui.result(f"CUDA variant: {clean(d.cuda[0] or 'none')} -> {clean(d.cuda[1] or 'none')}")
    for n in d.notes:
        ui.info(f"note: {n}")
