"""``offpkg conda ...``: conda environments packed with conda-pack (see docs/conda.md)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ...conda.pack import FORMATS, pack_env
from ...errors import UsageError
from ..options import force_option, json_option
from ._common import UIEvents


@click.group(name="conda")
def cli() -> None:
    """Conda environments: pack one with conda-pack, checked and ready for `offpkg install --conda-prefix`."""


@cli.command("pack")
@click.option("-n", "--name", default=None, help="Name of the conda environment to pack.")
@click.option("-p", "--prefix", type=click.Path(file_okay=False), default=None,
              help="Path of the conda environment to pack.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Archive to write (.tar.zst, .tar.gz, .zip), or a folder with --format no-archive.")
@click.option("--format", "fmt", type=click.Choice(["infer", *FORMATS]), default="infer", show_default=True,
              help="Archive format; 'infer' takes it from the output name.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Compression threads (-1: every core; tar.gz only).")
@click.option("--ignore-missing-files", is_flag=True,
              help="Pack even when files conda installed are gone (they stay missing).")
@click.option("--ignore-editable", is_flag=True, help="Pack even with editable installs (they will not work).")
@force_option
@json_option
def pack(name: str | None, prefix: str | None, output: str, fmt: str, threads: int, ignore_missing_files: bool,
         ignore_editable: bool, force: bool, as_json: bool) -> None:
    """Pack a conda environment (-n NAME or -p PREFIX) into OUTPUT with conda-pack.

    Refuses environments that cannot travel (editable installs, files pip
    deleted or overwrote) with the packages named and what to do.
    """
    ui.state.json = as_json
    if (name is None) == (prefix is None):
        raise UsageError("give the environment with either -n NAME or -p PREFIX")
    with ui.reporter() as rep:
        result = pack_env(name=name, prefix=Path(prefix) if prefix else None, output=Path(output), format=fmt,
                          threads=threads, progress=UIEvents(rep), ignore_editable=ignore_editable,
                          ignore_missing_files=ignore_missing_files, force=force)
    for w in result.warnings:
        if not as_json:
            ui.warn(w)
    if as_json:
        ui.emit_json("conda pack", {"ok": True, **result.to_dict()})
        return
    size = ui.human_size(result.size)
    py = f", python {result.python}" if result.python else ""
    ui.result(f"ok: {result.path} ({result.format}, {size}): {result.packages} conda packages, "
              f"{result.platform}{py}")
    if result.sha256:
        ui.result(f"sha256: {result.sha256}")
    if result.pip_packages:
        names = ", ".join(f"{n}=={v}" for n, v in result.pip_packages)
        ui.info(f"installed by pip on top of conda (packed as files): {names}")
