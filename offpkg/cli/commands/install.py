from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import backend_option, interpreter, json_option, trust_option


def _from_registry(ctx: click.Context, bundle: str) -> str:
    """``oci://REGISTRY/REPO:TAG``: pull it (every blob checked, verified) into a private temp dir first."""
    if not bundle.startswith("oci://"):
        return bundle
    from ...fleet.artifact import pull_to_temp

    path, cleanup = pull_to_temp(bundle, plain_http=bool(ctx.meta.get("plain_http")))
    ctx.call_on_close(cleanup)
    return str(path)


@click.command()
@click.option("--plain-http", is_flag=True, is_eager=True, expose_value=False, callback=lambda c, _p, v: c.meta.update(
    plain_http=v), help="With an oci:// BUNDLE: talk to the registry without TLS.")
@click.argument("bundle", type=click.Path(exists=False), callback=lambda c, _p, v: _from_registry(c, v))
@click.option("--venv", type=click.Path(file_okay=False), help="The venv to create.")
@click.option("--conda-prefix", type=click.Path(file_okay=False), help="Install the bundle's conda environment here.")
@click.option("--python", type=click.Path(dir_okay=False), help="Interpreter for the venv (default: the one running offpkg).")
@click.option("--upgrade", is_flag=True,
              help="Sync an existing venv to the bundle's lock, atomically; the state before is kept for rollback.")
@click.option("--keep", type=click.IntRange(0, 99), default=None,
              help="With --upgrade: earlier states to keep for `offpkg rollback` (default: config `generations`, 1).")
@click.option("--force", is_flag=True, help="Install even if the GPU/driver check fails (with a warning).")
@click.option("--system-site-packages", is_flag=True, help="Give the venv access to the system site-packages.")
@backend_option
@trust_option
@json_option
def install(bundle: str, venv: str | None, conda_prefix: str | None, python: str | None, upgrade: bool,
            keep: int | None, force: bool, system_site_packages: bool, backend: str | None, trust: str | None,
            as_json: bool) -> None:
    """Verify a bundle, then install it offline into a new venv.

    Refuses when the python or host does not match the bundle's target. If
    anything fails, the venv it created is removed.
    """
    ui.state.json = as_json
    from ...trust import resolve_anchor
    from ._common import UIEvents, settings  # imported here: --help need not load the backends

    anchor = resolve_anchor(trust, settings())

    if conda_prefix:
        from ...conda.install import install_conda_bundle
        from ...errors import UsageError

        if upgrade:
            raise UsageError("--conda-prefix does not support --upgrade: a conda bundle carries the whole packed "
                             "environment, so install it into a new prefix and switch to it (see docs/updates.md)")
        if venv or system_site_packages or keep is not None:
            raise UsageError("--conda-prefix installs a new conda environment: it does not go with --venv, "
                             "--keep or --system-site-packages")
        with ui.reporter() as r:
            # --python: the interpreter that runs conda-unpack if the environment's own cannot.
            res = install_conda_bundle(Path(bundle), Path(conda_prefix), force=force,
                                       python=interpreter(python), events=UIEvents(r), trust=anchor)
        for w in res["warnings"]:
            ui.warn(w)
        if as_json:
            ui.emit_json("install", {"ok": True, **res})
        else:
            wheels = f", {len(res['wheels'])} wheels with {res['backend']}" if res["wheels"] else ""
            ui.result(f"installed the conda environment into {res['prefix']} ({res['platform']}, "
                      f"{res['rewritten']} files relocated{wheels}; offline, hashes checked)")
            ui.info(f"pip check: {res['pip_check']}")
            ui.info(f"offline .condarc: {res['condarc']}")
            ui.info(f"activate it with: source {res['prefix']}/bin/activate (or conda activate {res['prefix']})")
        return
    if not venv:
        raise click.UsageError("give --venv PATH (or --conda-prefix PATH)")
    from ...install import install_bundle

    cfg = settings()
    backend = backend or cfg.get("backend")
    if keep is None and cfg.get("generations") is not None:
        keep = int(cfg.get("generations"))
    with ui.reporter() as r:
        res = install_bundle(Path(bundle), Path(venv), python=interpreter(python), upgrade=upgrade,
                             backend=backend, force=force, system_site_packages=system_site_packages, keep=keep,
                             events=UIEvents(r), trust=anchor)
    for w in res.warnings:
        ui.warn(w)
    if as_json:
        ui.emit_json("install", {"ok": True, **res.to_json()})
    elif res.sync is not None:
        s = res.sync
        ui.result(f"upgraded {res.venv}: {len(s['installed'])} installed or changed, {len(s['removed'])} removed, "
                  f"{s['unchanged']} unchanged (offline, hashes checked, pip check ok, swapped in atomically)")
        for line in s["recovered"]:
            ui.info(line)
        if s["generation"]:
            ui.info(f"the previous state is kept for `offpkg rollback --venv {res.venv}` "
                    f"({len(s['generations_kept'])} kept, {ui.human_size(s['kept_bytes'])} of disk of their own)")
    else:
        ui.result(f"installed {res.packages} packages into {res.venv} with {res.backend} (offline, hashes checked, pip check ok)")
    if not as_json and res.verify.trust is not None and res.verify.trust.trusted:
        ui.result(f"signature: {res.verify.trust.summary()}")
