"""``offpkg mirror list|test|use|show|reset``: choose, test and configure package mirrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ... import config as config_mod
from ... import mirrors
from ...mirrors import confedit, conflookup
from .. import ui
from ...errors import InputError, NetworkError, UsageError
from ..options import json_option
from ...redact import redact_url, secrets_in_url

mirror_option = click.option(
    "--mirror", "extra", multiple=True, metavar="NAME=URL",
    help="An ad hoc PyPI mirror (NAME=conda:URL for a conda one). Repeatable. Credentials in the URL are never shown.")
scope_option = click.option(
    "--scope", type=click.Choice(["user", "global", "venv"]), default="user", show_default=True,
    help="Which pip.conf/.condarc to write when --pip-conf/--condarc are not given.")
only_option = click.option("--only", type=click.Choice(["pip", "conda"]), default=None,
                           help="Touch only pip.conf or only .condarc.")
pip_conf_option = click.option("--pip-conf", type=click.Path(dir_okay=False, path_type=Path), default=None,
                               help="The pip.conf to edit (default: the one for --scope).")
condarc_option = click.option("--condarc", type=click.Path(dir_okay=False, path_type=Path), default=None,
                              help="The .condarc to edit (default: the one for --scope).")


@click.group(name="mirror")
def cli() -> None:
    """Choose, test and configure package mirrors (pip.conf and .condarc)."""


def _load_config() -> config_mod.Config:
    cfg = config_mod.load()
    for p in cfg.problems:
        ui.warn(p)
    return cfg


def _label(url: str, known: list[mirrors.Mirror]) -> str:
    """``url (name)`` when the URL is a known mirror's."""
    for m in known:
        if m.url.rstrip("/") == url.rstrip("/"):
            return f"{redact_url(url)} ({m.name})"
    return redact_url(url)


@cli.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the mirror catalog plus the mirrors defined in offpkg's config."""
    ui.state.json = as_json
    known = mirrors.known_mirrors(_load_config())
    if as_json:
        ui.emit_json("mirror list", {"ok": True, "mirrors": [m.public() for m in known]})
        return
    # Plain lines rather than a table: URLs must never be cut to fit the terminal.
    width = max(len(m.name) for m in known)
    for kind in mirrors.KINDS:
        group = [m for m in known if m.kind == kind]
        if not group:
            continue
        ui.result(f"{kind}:")
        for m in group:
            flags = "" if m.checked else "  [unchecked]"
            ui.result(f"  {m.name:<{width}}  {redact_url(m.url)}  {m.region}{flags}")
            if m.notes:
                ui.result(f"  {'':<{width}}    {m.notes}")
    ui.info("`checked: no`: the URL form was not fetched when the catalog was written; "
            "`offpkg mirror test` tells what answers from your network.")


def _selected(names: tuple[str, ...], extra: tuple[str, ...], cfg: config_mod.Config) -> list[mirrors.Mirror]:
    adhoc = [mirrors.parse_mirror_option(v) for v in extra]
    known = mirrors.known_mirrors(cfg, adhoc)
    if names:
        chosen = [mirrors.find(known, n, "pypi")[0] for n in names]
        chosen += [m for m in adhoc if m not in chosen]
    elif adhoc:
        chosen = adhoc
    else:
        chosen = [m for m in known if m.kind == "pypi"]
    seen: set[str] = set()
    unique = []
    for m in chosen:
        if m.name not in seen:
            seen.add(m.name)
            unique.append(m)
    return unique


def _run_tests(chosen: list[mirrors.Mirror], *, project: str, timeout: float,
               cfg: config_mod.Config) -> list[mirrors.ProbeResult]:
    with ui.spinner(f"probing {len(chosen)} mirror(s) for {project!r}"):
        results = mirrors.test_mirrors(chosen, project=project, timeout=timeout)
    try:
        mirrors.save_ranking(results, cfg.get("cache_dir"), project=project)
    except OSError as exc:  # a read-only cache only loses the remembered order
        ui.detail(f"could not remember the ranking: {exc}")
    return results


def _fmt_rate(bps: float | None) -> str:
    return "-" if bps is None else ui.human_size(bps) + "/s"


@cli.command("test")
@click.argument("names", nargs=-1)
@mirror_option
@click.option("--timeout", type=click.FloatRange(min=0.1), default=mirrors.DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each connection and read.")
@click.option("--project", default=mirrors.DEFAULT_PROBE_PROJECT, show_default=True,
              help="Project whose simple-index page is probed.")
@json_option
def test_cmd(names: tuple[str, ...], extra: tuple[str, ...], timeout: float, project: str, as_json: bool) -> None:
    """Probe PyPI mirrors in parallel and rank them.

    Measures the time to the first byte of <mirror>/<project>/, the throughput of
    one file linked there (up to 2 MB), and freshness: a mirror whose newest
    release of the project is older than the official index's (or, when PyPI is
    not probed, than the newest any mirror has) is stale. Failing mirrors are
    reported, never fatal. With no NAME and no --mirror, every PyPI mirror known
    is probed; with only --mirror, just those.
    """
    ui.state.json = as_json
    cfg = _load_config()
    chosen = _selected(names, extra, cfg)
    results = _run_tests(chosen, project=project, timeout=timeout, cfg=cfg)
    best = results[0] if results and results[0].ok else None
    if as_json:
        ui.emit_json("mirror test", {"ok": True, "project": project, "timeout": timeout,
                                     "mirrors": [r.to_dict() for r in results],
                                     "best": best.name if best else None,
                                     "best_url": redact_url(best.url) if best else None})
        return
    rows = []
    for i, r in enumerate(results, 1):
        state = "FAILED" if not r.ok else {True: "fresh", False: "stale", None: "ok"}[r.fresh]
        rows.append([str(i), r.name, state, "-" if r.latency_ms is None else f"{r.latency_ms:.0f} ms",
                     _fmt_rate(r.throughput_bps), r.newest or "-", r.error or ""])
    ui.table(None, ["#", "mirror", "state", "latency", "throughput", project, "error"], rows)
    if best:
        ui.result(f"best: {best.name} ({redact_url(best.url)})")
    else:
        ui.warn("no mirror answered; check the network, a proxy (HTTPS_PROXY) or --timeout")


@cli.command("use")
@click.argument("name", required=False)
@click.option("--fastest", is_flag=True, help="Test the PyPI mirrors first and use the best one.")
@mirror_option
@pip_conf_option
@condarc_option
@scope_option
@only_option
@click.option("--pip-timeout", type=click.IntRange(min=1), default=None,
              help=f"pip's network timeout to write (default: keep the file's, else {mirrors.PIP_TIMEOUT} s).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=mirrors.DEFAULT_TIMEOUT,
              help="Probe timeout for --fastest.")
@click.option("--project", default=mirrors.DEFAULT_PROBE_PROJECT, help="Probe project for --fastest.")
@click.option("--dry-run", is_flag=True, help="Show the change; write nothing.")
@json_option
def use_cmd(name: str | None, fastest: bool, extra: tuple[str, ...], pip_conf: Path | None, condarc: Path | None,
            scope: str, only: str | None, pip_timeout: int | None, timeout: float, project: str, dry_run: bool,
            as_json: bool) -> None:
    """Make NAME (or the fastest mirror) the package source in pip.conf and/or .condarc.

    Writes pip.conf's [global] index-url (trusted-host only for a plain-http
    mirror; a timeout if the file has none) and .condarc's default_channels,
    custom_channels and show_channel_urls (channels only when absent). Every other
    line is kept as it was; the previous file is saved as FILE.offpkg-backup.N
    (`offpkg mirror reset` puts it back) and the change is shown as a diff.
    With --pip-conf/--condarc only the files named are written; --fastest writes
    .condarc only when --condarc is given.
    """
    ui.state.json = as_json
    if bool(name) == fastest:
        raise UsageError("give a mirror NAME or --fastest (one of them)",
                         hint="`offpkg mirror list` shows the names")
    cfg = _load_config()
    adhoc = [mirrors.parse_mirror_option(v) for v in extra]
    known = mirrors.known_mirrors(cfg, adhoc)
    write_pip, write_conda, pip_path, conda_path = mirrors.target_files(pip_conf, condarc, scope, only)
    tested: list[mirrors.ProbeResult] = []
    if fastest:
        chosen = [m for m in adhoc if m.kind == "pypi"] or [m for m in known if m.kind == "pypi"]
        tested = _run_tests(chosen, project=project, timeout=timeout, cfg=cfg)
        if not tested or not tested[0].ok:
            raise NetworkError("no mirror answered, so none can be chosen",
                               hint="run `offpkg mirror test` to see why, or name one: `offpkg mirror use NAME`")
        name = tested[0].name
        write_conda = write_conda and condarc is not None
    assert name is not None
    plan = mirrors.plan_use(name, known, pip_conf=pip_path, condarc=conda_path, write_pip=write_pip,
                            write_conda=write_conda, timeout=pip_timeout)
    files: list[dict[str, Any]] = []
    warnings: list[str] = []
    for change in plan.changes:
        diff = change.diff()
        backup = None
        if change.changed and not dry_run:
            private = any(secrets_in_url(word) for word in change.new.split())
            backup = change.apply(mode=0o600 if private else 0o644)
            if private and change.path.stat().st_mode & 0o077:
                warnings.append(f"{change.path} holds a credential and other users can read it: "
                                f"chmod 600 {change.path}")
        if change.kind == "pip" and not dry_run:
            w = mirrors.pip_precedence_warning(change.path)
            if w:
                warnings.append(w)
        files.append({"path": str(change.path), "kind": change.kind, "changed": change.changed,
                      "written": change.changed and not dry_run, "backup": str(backup) if backup else None,
                      "diff": diff, "notes": change.notes})
    if as_json:
        ui.emit_json("mirror use", {"ok": True, "mirror": name, "dry_run": dry_run, "files": files,
                                    "notes": plan.notes, "warnings": warnings,
                                    "tested": [r.to_dict() for r in tested]})
        return
    if tested:
        ui.info(f"fastest: {name} ({redact_url(tested[0].url)})")
    for f in files:
        if not f["changed"]:
            ui.result(f"{f['path']}: already uses {name}")
            continue
        ui.result(f["diff"].rstrip("\n"))
        for n in f["notes"]:
            ui.info(f"note: {n}")
        if dry_run:
            ui.result(f"{f['path']}: not written (--dry-run)")
        else:
            ui.result(f"{f['path']}: written (previous version saved as {f['backup']})")
    for n in plan.notes:
        ui.info(f"note: {n}")
    for w in warnings:
        ui.warn(w)


@cli.command("show")
@json_option
def show_cmd(as_json: bool) -> None:
    """Show the package sources in effect for pip and conda, and where each comes from.

    pip: PIP_* variables > [install] > [global]; within a section PIP_CONFIG_FILE >
    site (virtualenv) > user > global file. conda: CONDA_* variables, then the
    .condarc files on conda's search path (later files win; channel lists merge).
    """
    ui.state.json = as_json
    cfg = _load_config()
    known = mirrors.known_mirrors(cfg)
    pip_settings, pip_files, pip_problems = conflookup.pip_effective()
    conda_settings, conda_files, conda_problems = conflookup.conda_effective()
    idx = pip_settings.get("index-url")
    pip_index = {"value": redact_url(idx.value) if idx else mirrors.OFFICIAL_PYPI,
                 "source": idx.source if idx else "pip default",
                 "mirror": next((m.name for m in known if idx and m.url.rstrip("/") == idx.value.rstrip("/")),
                                None) if idx else mirrors.OFFICIAL}
    try:
        offpkg_urls = [redact_url(u) for u in mirrors.index_urls(cfg)]
    except UsageError as exc:
        offpkg_urls = []
        ui.warn(exc.message)
    if as_json:
        ui.emit_json("mirror show", {
            "ok": True,
            "pip": {"command": "install", "index_url": pip_index,
                    "settings": {k: {"value": redact_url(s.value) if "://" in s.value else s.value,
                                     "source": s.source, "section": s.section} for k, s in pip_settings.items()},
                    "files": pip_files, "problems": pip_problems},
            "conda": {"settings": conda_settings, "files": conda_files, "problems": conda_problems},
            "offpkg": {"index_urls": offpkg_urls, "index_url_source": cfg.source("index_url"),
                       "mirror": cfg.get("mirror"), "mirror_source": cfg.source("mirror"),
                       "torch_index_base": redact_url(mirrors.torch_index_base(cfg))},
        })
        return
    rows = [["index-url", _label(idx.value, known) if idx else f"{mirrors.OFFICIAL_PYPI} (pip default)",
             (idx.source + (f" [{idx.section}]" if idx.section else "")) if idx else "-"]]
    for k, s in pip_settings.items():
        if k != "index-url":
            rows.append([k, s.value, s.source + (f" [{s.section}]" if s.section else "")])
    ui.table("pip (for pip install)", ["setting", "value", "from"], rows)
    crow = [[k, ", ".join(f"{a}: {b}" for a, b in v["value"].items()) if isinstance(v["value"], dict)
             else ", ".join(map(str, v["value"])) if isinstance(v["value"], list) else str(v["value"]),
             ", ".join(v["sources"])] for k, v in conda_settings.items()]
    if crow:
        ui.table("conda", ["setting", "value", "from"], crow)
    else:
        ui.result("conda: no channel settings in any .condarc (conda's defaults apply)")
    ui.result(f"offpkg downloads try: {', '.join(offpkg_urls[:3])}{' ...' if len(offpkg_urls) > 3 else ''}")
    for p in pip_problems + conda_problems:
        ui.warn(p)


@cli.command("reset")
@pip_conf_option
@condarc_option
@scope_option
@only_option
@json_option
def reset_cmd(pip_conf: Path | None, condarc: Path | None, scope: str, only: str | None, as_json: bool) -> None:
    """Put back the pip.conf/.condarc saved before the last `offpkg mirror use`.

    Each reset goes one step back; the oldest backup is the file as it was before
    offpkg first touched it (or its absence).
    """
    ui.state.json = as_json
    write_pip, write_conda, pip_path, conda_path = mirrors.target_files(pip_conf, condarc, scope, only)
    paths = ([pip_path] if write_pip else []) + ([conda_path] if write_conda else [])
    todo = [p for p in paths if confedit.backups(p)]
    if not todo:
        raise InputError("no offpkg backup of " + " or ".join(str(p) for p in paths),
                         hint="offpkg keeps backups only of files it wrote with `offpkg mirror use`")
    done = []
    for p in todo:
        backup, before, after = confedit.restore(p)
        done.append({"path": str(p), "restored_from": str(backup), "removed": after is None,
                     "diff": confedit.unified_diff(p, before, after)})
    if as_json:
        ui.emit_json("mirror reset", {"ok": True, "files": done})
        return
    for d in done:
        ui.result(d["diff"].rstrip("\n"))
        ui.result(f"{d['path']}: " + ("removed (offpkg had created it)" if d["removed"]
                                       else f"restored from {d['restored_from']}"))
