"""Where pip and conda look for their configuration, in which order, and what is in effect.

This module knows pip's and conda's configuration files and their precedence, so
``offpkg mirror use`` knows which file a ``--scope`` writes and ``offpkg mirror show``
can say what is in effect and why. The files themselves are read with the
round-trip editors of :mod:`offpkg.mirrors.confedit`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .confedit import CondarcDoc, IniDoc, UnsupportedYaml, YamlValue, read_text
from ..errors import InputError


# --------------------------------------------------------------------------- where pip looks

PIP_BASENAME = "pip.ini" if sys.platform == "win32" else "pip.conf"
# pip's override order (pip/_internal/configuration.py OVERRIDE_ORDER): a later kind wins.
PIP_KINDS = ("global", "user", "site", "env")


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _xdg_config_home(env: Mapping[str, str]) -> Path:
    v = env.get("XDG_CONFIG_HOME", "")
    return Path(v) if v and os.path.isabs(v) else _home(env) / ".config"


def pip_config_files(env: Mapping[str, str] | None = None, *, prefix: str | None = None) -> list[tuple[str, Path]]:
    """Every file pip reads, as (kind, path), lowest precedence first.

    Mirrors pip: ``PIP_CONFIG_FILE`` (kind "env") wins over the site (virtualenv)
    file, which wins over the user files, which win over the global ones; within a
    kind the later file wins (``~/.config/pip/pip.conf`` over ``~/.pip/pip.conf``,
    ``/etc/pip.conf`` over ``/etc/xdg/pip/pip.conf``). An existing ``PIP_CONFIG_FILE``
    turns the user files off; ``PIP_CONFIG_FILE=/dev/null`` turns every file off.
    """
    env = os.environ if env is None else env
    cfg_env = env.get("PIP_CONFIG_FILE")
    if cfg_env is not None and cfg_env == os.devnull:
        return []
    files: list[tuple[str, Path]] = []
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import platformdirs

        files.append(("global", Path(platformdirs.site_config_dir("pip", appauthor=False)) / PIP_BASENAME))
        user = [_home(env) / "pip" / PIP_BASENAME,
                Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True)) / PIP_BASENAME]
    elif sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        import platformdirs

        files.append(("global", Path(platformdirs.site_data_dir("pip", appauthor=False)) / PIP_BASENAME))
        app = _home(env) / "Library" / "Application Support" / "pip"
        user = [_home(env) / ".pip" / PIP_BASENAME,
                (app if app.is_dir() else _home(env) / ".config" / "pip") / PIP_BASENAME]
    else:
        dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
        files += [("global", Path(d) / "pip" / PIP_BASENAME) for d in dirs]
        files.append(("global", Path("/etc") / PIP_BASENAME))
        user = [_home(env) / ".pip" / PIP_BASENAME, _xdg_config_home(env) / "pip" / PIP_BASENAME]
    if not (cfg_env and os.path.exists(cfg_env)):
        files += [("user", p) for p in user]
    site_prefix = prefix or env.get("VIRTUAL_ENV") or sys.prefix
    files.append(("site", Path(site_prefix) / PIP_BASENAME))
    if cfg_env:
        files.append(("env", Path(cfg_env)))
    return files


def pip_scope_path(scope: str, env: Mapping[str, str] | None = None, *, prefix: str | None = None) -> Path:
    """The pip.conf ``offpkg mirror use --scope`` writes."""
    env = os.environ if env is None else env
    files = [(k, p) for k, p in pip_config_files({k: v for k, v in env.items() if k != "PIP_CONFIG_FILE"},
                                                 prefix=prefix)]
    if scope == "user":
        user = [p for k, p in files if k == "user"]
        legacy, new = user[0], user[-1]
        # Only the legacy file exists: edit it rather than shadow it with a new one.
        return legacy if legacy.exists() and not new.exists() else new
    if scope == "global":
        return [p for k, p in files if k == "global"][-1]
    if scope == "venv":
        return [p for k, p in files if k == "site"][0]
    raise ValueError(scope)


# Options whose value matters for where packages come from; aliases are pip's own.
PIP_KEYS = {"index-url": ("index-url",), "extra-index-url": ("extra-index-url",),
            "trusted-host": ("trusted-host",), "timeout": ("timeout", "default-timeout"),
            "find-links": ("find-links",), "no-index": ("no-index",)}


@dataclass
class Setting:
    key: str
    value: str
    source: str  # a file path, or "env PIP_X"
    section: str = ""


def pip_effective(env: Mapping[str, str] | None = None, *, prefix: str | None = None,
                  command: str = "install") -> tuple[dict[str, Setting], list[dict[str, Any]], list[str]]:
    """What ``pip <command>`` would use for the index options, and where each comes from.

    pip resolves a value by section first (``PIP_*`` variables > ``[install]`` >
    ``[global]``) and, within a section, by file (see :func:`pip_config_files`).
    Returns (settings, files consulted, problems).
    """
    env = os.environ if env is None else env
    files = pip_config_files(env, prefix=prefix)
    # (section, key) -> Setting, filled lowest precedence first so later files win.
    by_section: dict[tuple[str, str], Setting] = {}
    consulted: list[dict[str, Any]] = []
    problems: list[str] = []
    order = {k: i for i, k in enumerate(PIP_KINDS)}
    for kind, path in sorted(files, key=lambda kp: order[kp[0]]):
        text = None
        try:
            text = read_text(path)
        except (InputError, OSError) as exc:
            problems.append(f"{path}: {exc}")
        consulted.append({"kind": kind, "path": str(path), "exists": text is not None})
        if text is None:
            continue
        try:
            doc = IniDoc(text, path=path)
        except InputError as exc:
            problems.append(exc.message)
            continue
        for section in doc.sections():
            if section not in ("global", command):
                continue
            for name, aliases in PIP_KEYS.items():
                for alias in aliases:
                    raw = doc.get(section, alias)
                    if raw is not None:
                        by_section[(section, name)] = Setting(name, " ".join(raw.split()), str(path), section)
    out: dict[str, Setting] = {}
    for name, aliases in PIP_KEYS.items():
        for section in ("global", command):
            if (section, name) in by_section:
                out[name] = by_section[(section, name)]
        for alias in aliases:
            var = "PIP_" + alias.upper().replace("-", "_")
            if env.get(var) is not None:
                out[name] = Setting(name, env[var], f"env {var}")
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        problems.append("PIP_CONFIG_FILE is /dev/null: pip reads no configuration file at all")
    return out, consulted, problems


# --------------------------------------------------------------------------- where conda looks

CONDA_KEYS = ("channels", "default_channels", "custom_channels", "show_channel_urls", "channel_alias")
_CONDA_SEQUENCES = ("channels", "default_channels")


def conda_root(env: Mapping[str, str] | None = None) -> Path:
    """conda's root (base) prefix: $CONDA_ROOT, else from $CONDA_EXE, else this Python's prefix."""
    env = os.environ if env is None else env
    if env.get("CONDA_ROOT"):
        return Path(env["CONDA_ROOT"])
    if env.get("CONDA_EXE"):
        return Path(env["CONDA_EXE"]).resolve().parent.parent
    return Path(sys.prefix)


def condarc_search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    """conda's SEARCH_PATH (conda/base/constants.py), lowest precedence first, with
    variables expanded; entries whose variable is unset are left out."""
    env = os.environ if env is None else env
    home = _home(env)
    if sys.platform == "win32":  # pragma: no cover
        system = ["C:/ProgramData/conda/.condarc", "C:/ProgramData/conda/condarc", "C:/ProgramData/conda/condarc.d"]
    else:
        system = ["/etc/conda/.condarc", "/etc/conda/condarc", "/etc/conda/condarc.d",
                  "/var/lib/conda/.condarc", "/var/lib/conda/condarc", "/var/lib/conda/condarc.d"]
    out = [Path(p) for p in system]

    def under(var: str | None, base: Path | None, names: tuple[str, ...]) -> None:
        if var is not None and not env.get(var):
            return
        root = Path(env[var]) if var else base
        assert root is not None
        out.extend(root / n for n in names)

    rc = (".condarc", "condarc", "condarc.d")
    out += [conda_root(env) / n for n in rc]
    under("XDG_CONFIG_HOME", None, tuple("conda/" + n for n in rc))
    under(None, home / ".config" / "conda", rc)
    under(None, home / ".conda", rc)
    out.append(home / ".condarc")
    under("CONDA_PREFIX", None, rc)
    if env.get("CONDARC"):
        out.append(Path(env["CONDARC"]))
    seen: set[str] = set()
    unique = []
    for p in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique


def condarc_scope_path(scope: str, env: Mapping[str, str] | None = None) -> Path:
    """The .condarc ``offpkg mirror use --scope`` writes, as ``conda config`` would:
    user: $CONDARC or ~/.condarc; global: the root prefix's .condarc (``--system``);
    venv: $CONDA_PREFIX/.condarc (``--env``), else this Python's prefix."""
    env = os.environ if env is None else env
    if scope == "user":
        return Path(env["CONDARC"]) if env.get("CONDARC") else _home(env) / ".condarc"
    if scope == "global":
        return conda_root(env) / ".condarc"
    if scope == "venv":
        return Path(env.get("CONDA_PREFIX") or sys.prefix) / ".condarc"
    raise ValueError(scope)


def read_condarc_values(path: Path) -> dict[str, YamlValue]:
    """The managed keys of one .condarc (an unreadable value raises UnsupportedYaml)."""
    text = read_text(path)
    if text is None:
        return {}
    doc = CondarcDoc(text, path=path)
    values = {k: doc.get(k) for k in CONDA_KEYS if k in doc.keys()}
    _register_conda_secrets(values)
    return values


_CONDA_TOKEN = re.compile(r"/t/([^/\s]+)")


def _register_conda_secrets(value: Any) -> None:
    """Remember tokens in channel URLs (userinfo, ``?token=``, conda's ``/t/<token>/``)
    so redact_text keeps them out of every output."""
    from ..redact import register_secret, secrets_in_url

    if isinstance(value, dict):
        for v in value.values():
            _register_conda_secrets(v)
    elif isinstance(value, list):
        for v in value:
            _register_conda_secrets(v)
    elif isinstance(value, str) and "://" in value:
        for secret in secrets_in_url(value) + _CONDA_TOKEN.findall(value):
            register_secret(secret)


def conda_effective(env: Mapping[str, str] | None = None) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The channel settings conda would use, merged as conda merges them.

    Sequences (channels, default_channels) are concatenated, the higher-precedence
    file's entries first, duplicates dropped; custom_channels is merged key by key
    (the later file wins a key); scalars come from the last file that sets them;
    ``CONDA_<KEY>`` variables win over every file. Returns (settings, files, problems),
    each setting as {"value": ..., "sources": [...]}.
    """
    env = os.environ if env is None else env
    files: list[Path] = []
    for p in condarc_search_path(env):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in (".yml", ".yaml"))
        else:
            files.append(p)
    consulted: list[dict[str, Any]] = []
    problems: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    for path in files:
        exists = path.is_file()
        consulted.append({"path": str(path), "exists": exists})
        if not exists:
            continue
        try:
            values = read_condarc_values(path)
        except (UnsupportedYaml, InputError, OSError) as exc:
            problems.append(f"{path}: cannot read ({exc}); conda may still understand it")
            continue
        for key, value in values.items():
            cur = out.get(key)
            if key in _CONDA_SEQUENCES and isinstance(value, list):
                prev = cur["value"] if cur else []
                merged = [str(v) for v in value] + [v for v in prev if v not in value]
                out[key] = {"value": merged, "sources": [str(path)] + (cur["sources"] if cur else [])}
            elif key == "custom_channels" and isinstance(value, dict):
                prev = dict(cur["value"]) if cur else {}
                prev.update({str(k): str(v) for k, v in value.items()})
                out[key] = {"value": prev, "sources": [str(path)] + (cur["sources"] if cur else [])}
            else:
                out[key] = {"value": value, "sources": [str(path)]}
    for key in CONDA_KEYS:
        var = "CONDA_" + key.upper()
        if env.get(var):
            raw = env[var]
            value: Any = [v.strip() for v in raw.split(",") if v.strip()] if key in _CONDA_SEQUENCES else raw
            out[key] = {"value": value, "sources": [f"env {var}"]}
    return out, consulted, problems
