from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..install import install_bundle
from ..options import backend_option, json_option
from ._common import UIEvents, settings


@click.command()
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--venv", type=click.Path(file_okay=False), help="The venv to create.")
@click.option("--conda-prefix", type=click.Path(file_okay=False), help="Install the bundle's conda environment here.")
@click.option("--python", type=click.Path(dir_okay=False), help="Interpreter for the venv (default: the one running offpkg).")
@click.option("--upgrade", is_flag=True, help="Install into an existing venv.")
@click.option("--force", is_flag=True, help="Install even if the GPU/driver check fails (with a warning).")
@click.option("--system-site-packages", is_flag=True, help="Give the venv access to the system site-packages.")
@backend_option
@json_option
def install(bundle: str, venv: str | None, conda_prefix: str | None, python: str | None, upgrade: bool, force: bool,
            system_site_packages: bool, backend: str | None, as_json: bool) -> None:
    """Verify a bundle, then install it offline into a new venv.

    Refuses when the python or host does not match the bundle's target. If
    anything fails, the venv it created is removed.
    """
    ui.state.json = as_json
    if conda_prefix:
        from ..condainstall import install_conda_bundle

        res = install_conda_bundle(Path(bundle), Path(conda_prefix), force=force)
        if as_json:
            ui.emit_json("install", {"ok": True, **res})
        else:
            ui.result(f"installed the conda environment into {conda_prefix}")
        return
    if not venv:
        raise click.UsageError("give --venv PATH (or --conda-prefix PATH)")
    backend = backend or settings().get("backend")
    with ui.reporter() as r:
        res = install_bundle(Path(bundle), Path(venv), python=Path(python) if python else None, upgrade=upgrade,
                             backend=backend, force=force, system_site_packages=system_site_packages,
                             events=UIEvents(r))
    for w in res.warnings:
        ui.warn(w)
    if as_json:
        ui.emit_json("install", {"ok": True, **res.to_json()})
    else:
        ui.result(f"installed {res.packages} packages into {res.venv} with {res.backend} (offline, hashes checked, pip check ok)")
