"""``offpkg config show``: the effective configuration and where each value came from."""

from __future__ import annotations

from typing import Any

import click

from ... import config as config_mod
from .. import ui
from ..options import json_option
from ...redact import redact_url


@click.group(name="config")
def cli() -> None:
    """offpkg's own configuration (offpkg.toml, [tool.offpkg], the user file, OFFPKG_* variables)."""


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "[]"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            parts.append(f"{k} = {v['url'] + (' (' + v['kind'] + ')' if v.get('kind', 'pypi') != 'pypi' else '') if isinstance(v, dict) else v}")
        return "; ".join(parts) or "{}"
    return str(value)


@cli.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print each setting, its value and where it came from (credentials redacted).

    Precedence, lowest first: defaults < user file ($OFFPKG_CONFIG or
    ~/.config/offpkg/config.toml) < project file (offpkg.toml or [tool.offpkg] in
    pyproject.toml, nearest above the working directory) < OFFPKG_<KEY> variables
    < command-line options.
    """
    ui.state.json = as_json
    cfg = config_mod.load()
    for p in cfg.problems:
        ui.warn(p)
    if as_json:
        ui.emit_json("config show", {
            "ok": True,
            "config": {k: {"value": _redact(v), "source": s} for k, v, s in cfg.items_with_sources()},
            "files": cfg.files,
            "user_config": str(config_mod.user_config_path()),
            "problems": cfg.problems,
        })
        return
    ui.table(None, ["key", "value", "source"], [[k, _text(_redact(v)), s] for k, v, s in cfg.items_with_sources()])
    if not cfg.files:
        ui.info(f"no config file found; the user file would be {config_mod.user_config_path()}")
