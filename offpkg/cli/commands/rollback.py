"""``offpkg rollback --venv V``: the state before the last ``install --upgrade``, exactly."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import json_option


@click.command("rollback")
@click.option("--venv", required=True, type=click.Path(file_okay=False), help="The venv to roll back.")
@click.option("--keep", type=click.IntRange(0, 99), default=None,
              help="Also drop older kept states beyond this many.")
@click.option("--list", "list_", is_flag=True, help="Only list the kept states and their disk cost.")
@json_option
def cli(venv: str, keep: int | None, list_: bool, as_json: bool) -> None:
    """Restore the venv's state from before its last `install --upgrade`.

    The kept state is the venv directory exactly as it was (renamed aside by the
    upgrade); the rollback swaps it back in one atomic rename and removes the
    state rolled back from.
    """
    ui.state.json = as_json
    from ...updates.rollback import generations_info, rollback
    from .diff import clean

    if list_:
        info = generations_info(Path(venv))
        if as_json:
            ui.emit_json("rollback", {"ok": True, **info})
            return
        rows = [[str(g["generation"]), clean(g["bundle"] or "?"), clean(g["installed"] or "?"),
                 ui.human_size(g["unique_bytes"])] for g in info["generations"]]
        ui.table(None, ["generation", "bundle", "installed", "disk of its own"], rows)
        ui.result(f"{len(rows)} earlier state(s) kept for {venv}, {ui.human_size(info['kept_bytes'])} of disk")
        return
    from ._common import UIEvents

    with ui.reporter() as r:
        res = rollback(Path(venv), keep=keep, events=UIEvents(r))
    if as_json:
        ui.emit_json("rollback", {"ok": True, **res.to_json()})
        return
    for line in res.recovered:
        ui.info(line)
    ui.result(f"rolled back {res.venv} to its state from {clean(res.bundle or 'an unknown bundle')}")
    ui.info(f"{len(res.generations_left)} earlier state(s) still kept ({ui.human_size(res.kept_bytes)} of disk)")
