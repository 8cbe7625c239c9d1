"""``offpkg stack list`` and ``offpkg stack show NAME``: the built-in stacks."""

from __future__ import annotations

import click

from .. import ui
from ..options import json_option
from ...stacks import get_stack, list_stacks


@click.group(name="stack")
def cli() -> None:
    """Built-in package stacks (bundle one with `offpkg bundle --stack NAME`)."""


@cli.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the built-in stacks."""
    ui.state.json = as_json
    stacks = list_stacks()
    if as_json:
        ui.emit_json("stack list", {"ok": True, "stacks": [s.to_json() for s in stacks]})
        return
    ui.table(None, ["stack", "CUDA planning", "packages", "description"],
             [[s.name, "yes" if s.needs_cuda else "no", str(len(s.requirements)), s.description] for s in stacks])


@cli.command("show")
@click.argument("name")
@json_option
def show_cmd(name: str, as_json: bool) -> None:
    """Show a stack's packages, smoke test and notes."""
    ui.state.json = as_json
    s = get_stack(name)
    if as_json:
        ui.emit_json("stack show", {"ok": True, "stack": s.to_json()})
        return
    ui.result(f"{s.name}: {s.description}")
    ui.result("packages: " + " ".join(s.requirements))
    ui.result("CUDA planning: " + ("yes (torch comes from the variant `offpkg cuda plan` picks)" if s.needs_cuda
                                   else "no"))
    ui.result(f"smoke test: {s.smoke_name} (run in the installed environment with --expect-cuda X.Y|none)")
    if s.notes:
        ui.result("")
        ui.result(s.notes)
