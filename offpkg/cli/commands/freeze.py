from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import ui
from ...freeze import freeze as do_freeze
from ...fsutil import write_text_atomic
from ..options import json_option


@click.command()
@click.option("--python", "python", type=click.Path(dir_okay=False), help="The environment's interpreter (default: this one).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the requirements here instead of stdout.")
@click.option("--all", "include_all", is_flag=True, help="Include pip, setuptools and wheel.")
@json_option
def freeze(python: str | None, output: str | None, include_all: bool, as_json: bool) -> None:
    """Pinned, sorted requirements of an existing environment (venv, conda env, this one)."""
    ui.state.json = as_json
    frozen = do_freeze(python, include_all)
    for name, why in frozen.skipped:
        ui.warn(f"{name}: {why}")
    if output:
        write_text_atomic(Path(output), frozen.text())
        ui.info(f"wrote {len(frozen.pins)} pins to {output}")
    if as_json:
        ui.emit_json("freeze", {"ok": True, "requirements": frozen.pins,
                                "skipped": [{"name": n, "reason": w} for n, w in frozen.skipped], "output": output})
    elif not output:
        sys.stdout.write(frozen.text())
