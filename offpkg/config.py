"""offpkg's own configuration, and where each value came from.

Layers, lowest precedence first:

1. built-in defaults;
2. the user file: ``$OFFPKG_CONFIG`` if set, else ``<user config dir>/offpkg/config.toml``
   (``~/.config/offpkg/config.toml`` on Linux, honouring ``XDG_CONFIG_HOME``);
3. the project file: the nearest ``offpkg.toml``, or ``pyproject.toml`` with a
   ``[tool.offpkg]`` table, walking up from the working directory and stopping at
   the repository root (a directory holding ``.git``);
4. environment variables ``OFFPKG_<KEY>`` (``OFFPKG_INDEX_URL``, ...);
5. command-line options (passed to :func:`load` as ``cli``).

The ``mirrors`` table is merged across layers name by name; every other key is
replaced whole by a higher layer. An unknown key is a problem reported back (a
warning), not an error; a malformed file or a bad value is an :class:`InputError`
naming the file, line or key.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._compat import tomllib
from .errors import InputError

PROJECT_FILE = "offpkg.toml"
USER_FILE = "config.toml"
ENV_PREFIX = "OFFPKG_"
ENV_CONFIG = "OFFPKG_CONFIG"
# Shorter variable names other commands already document (`offpkg cuda plan`).
ENV_ALIASES = {"torch_index_url": "OFFPKG_TORCH_INDEX"}


def _default_cache_dir() -> str:
    import platformdirs

    return platformdirs.user_cache_dir("offpkg", appauthor=False)


@dataclass(frozen=True)
class Key:
    name: str
    kind: str  # str | url | list | table | path | choice | fallback | int
    help: str
    default: Callable[[], Any] = lambda: None
    choices: tuple[str, ...] = ()
    pattern: str = ""


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("index_url", "url", "Package index base URL (PEP 503/691); overrides `mirror`."),
    Key("extra_index_urls", "list", "Extra indexes consulted alongside the main one.", lambda: []),
    Key("mirror", "str", "Name of a catalog mirror (`offpkg mirror list`) or of one in `mirrors`."),
    Key("mirrors", "table", "Your own mirrors: {name = URL} or {name = {url = URL, kind = 'pypi'|'conda'}}.",
        lambda: {}),
    Key("cache_dir", "path", "Content-addressed download cache.", _default_cache_dir),
    Key("backend", "choice", "Resolver/installer backend.", lambda: "auto", choices=("auto", "uv", "pip")),
    Key("target", "path", "Default target file written by `offpkg probe`."),
    Key("generations", "choice", "Earlier venv states `install --upgrade` keeps for `offpkg rollback`.", lambda: "1",
        pattern=r"[0-9]|[1-9][0-9]"),
    Key("cuda", "choice", "CUDA variant for torch: auto, cpu or cuXYZ.", lambda: "auto",
        pattern=r"auto|cpu|cu\d{2,3}"),
    Key("torch_index_url", "url", "Base of the PyTorch wheel index (variants below it: <base>/cu126 ...)."),
    Key("max_bundle_members", "int", "Most members a bundle archive may have (more is refused before any work).",
        lambda: 10_000),
    Key("max_bundle_size", "int", "Most bytes a bundle may hold in all, e.g. 200G (more is refused before any work).",
        lambda: 256 << 30),
    Key("fallback", "fallback",
        "Fall back to other mirrors when the index fails: auto (only when the index is a catalog mirror), true, false.",
        lambda: "auto"),
    Key("deny_licenses", "list",
        "SPDX license ids or globs (GPL-*), or 'unknown', that make `offpkg bundle` refuse (exit 11).", lambda: []),
    Key("trust", "path", "OpenSSH allowed_signers file: verify/install refuse bundles not signed by one of its "
        "signers (docs/trust.md)."),
)}


@dataclass
class Config:
    """The effective configuration: values plus the layer each came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, key: str) -> Any:
        if key not in KEYS:
            raise KeyError(key)
        return self.values.get(key)

    def source(self, key: str) -> str:
        """``default``, a file path (``path [tool.offpkg]`` for pyproject), ``env OFFPKG_X`` or ``command line``."""
        if key not in KEYS:
            raise KeyError(key)
        return self.sources.get(key, "default")

    def as_dict(self) -> dict[str, Any]:
        return {k: self.values.get(k) for k in KEYS}

    def items_with_sources(self) -> list[tuple[str, Any, str]]:
        return [(k, self.values.get(k), self.source(k)) for k in KEYS]


def defaults() -> Config:
    return Config({k: spec.default() for k, spec in KEYS.items()}, {})


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$OFFPKG_CONFIG``, else the platform's user config dir + ``offpkg/config.toml``."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    if sys.platform.startswith(("win", "darwin")):  # pragma: no cover - other platforms
        import platformdirs

        return Path(platformdirs.user_config_dir("offpkg", appauthor=False)) / USER_FILE
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(env.get("HOME") or os.path.expanduser("~")) / ".config"
    return base / "offpkg" / USER_FILE


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise InputError(f"{path}: invalid TOML: {exc}", hint="fix the file, or move it out of the way") from None


def find_project_config(cwd: Path) -> tuple[Path, dict[str, Any], str] | None:
    """The nearest project config walking up from ``cwd``: (file, table, source label)."""
    for d in [cwd, *cwd.parents]:
        f = d / PROJECT_FILE
        if f.is_file():
            return f, _read_toml(f), str(f)
        py = d / "pyproject.toml"
        if py.is_file():
            table = _read_toml(py).get("tool", {}).get("offpkg")
            if isinstance(table, dict):
                return py, table, f"{py} [tool.offpkg]"
        if (d / ".git").exists():
            break
    return None


def _unknown(name: str, where: str) -> str:
    close = difflib.get_close_matches(name, list(KEYS), n=1)
    return f"{where}: unknown key {name!r} ignored" + (f" (did you mean {close[0]!r}?)" if close else "")


def _check(key: str, value: Any, where: str, base: Path | None) -> Any:
    """Validate and normalise one value; ``base`` resolves relative paths (None: the cwd)."""
    spec = KEYS[key]

    def bad(expected: str) -> InputError:
        return InputError(f"{where}: {key} must be {expected}, not {value!r}",
                          hint=f"{key}: {spec.help}")

    if spec.kind in ("str", "url"):
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        value = value.strip()
        if spec.kind == "url" and not re.match(r"(https?|file)://", value):
            raise bad("an http(s):// or file:// URL")
        return value
    if spec.kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("a list of URLs" if key.endswith("urls") else "a list of strings")
        return [v.strip() for v in value]
    if spec.kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise bad("a path")
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = (base or Path.cwd()) / p
        return str(p)
    if spec.kind == "choice":
        if not isinstance(value, str):
            raise bad("one of " + (", ".join(spec.choices) or spec.pattern))
        v = value.strip().lower()
        if (spec.choices and v not in spec.choices) or (spec.pattern and not re.fullmatch(spec.pattern, v)):
            raise bad("one of " + (", ".join(spec.choices) if spec.choices else "auto, cpu, cu118, cu126, ..."))
        return v
    if spec.kind == "int":
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", value.lower())
            if not m:
                raise bad("a positive integer (a size may end in K, M, G or T)")
            value = int(m.group(1)) << (10 * " kmgt".index(m.group(2) or " "))
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise bad("a positive integer")
        return value
    if spec.kind == "fallback":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("auto", "true", "false", "1", "0", "yes", "no"):
            v = value.strip().lower()
            return "auto" if v == "auto" else v in ("true", "1", "yes")
        raise bad("auto, true or false")
    if spec.kind == "table":
        if not isinstance(value, dict):
            raise bad("a table of name = URL")
        out: dict[str, Any] = {}
        for name, entry in value.items():
            if isinstance(entry, str):
                entry = {"url": entry}
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise InputError(f"{where}: mirrors.{name} must be a URL or {{url = ..., kind = ...}}")
            kind = entry.get("kind", "pypi")
            if kind not in ("pypi", "conda", "pytorch"):
                raise InputError(f"{where}: mirrors.{name}.kind must be pypi, conda or pytorch, not {kind!r}")
            if not re.match(r"(https?|file)://", entry["url"]):
                raise InputError(f"{where}: mirrors.{name}.url must be an http(s):// or file:// URL")
            item: dict[str, Any] = {"url": entry["url"], "kind": kind}
            # A conda mirror may spell out its channels; else the TUNA layout is assumed.
            if "default_channels" in entry:
                if not isinstance(entry["default_channels"], list) or \
                        not all(isinstance(v, str) for v in entry["default_channels"]):
                    raise InputError(f"{where}: mirrors.{name}.default_channels must be a list of URLs")
                item["default_channels"] = list(entry["default_channels"])
            if "custom_channels" in entry:
                if not isinstance(entry["custom_channels"], dict) or \
                        not all(isinstance(v, str) for v in entry["custom_channels"].values()):
                    raise InputError(f"{where}: mirrors.{name}.custom_channels must be a table of channel = URL")
                item["custom_channels"] = dict(entry["custom_channels"])
            unknown = set(entry) - {"url", "kind", "default_channels", "custom_channels"}
            if unknown:
                raise InputError(f"{where}: mirrors.{name} has unknown keys: {', '.join(sorted(unknown))}")
            out[str(name)] = item
        return out
    raise AssertionError(spec.kind)  # pragma: no cover


def _from_env(key: str, raw: str) -> Any:
    kind = KEYS[key].kind
    if kind == "list":
        return raw.split()
    if kind == "table":
        # OFFPKG_MIRRORS="corp=https://nexus/simple other=https://..."
        out: dict[str, str] = {}
        for item in raw.split():
            name, sep, url = item.partition("=")
            if not sep or not name:
                raise InputError(f"env {ENV_PREFIX}MIRRORS: {item!r} is not NAME=URL")
            out[name] = url
        return out
    return raw


def load(cwd: Path | None = None, env: Mapping[str, str] | None = None,
         cli: Mapping[str, Any] | None = None) -> Config:
    """Build the effective configuration (see the module docstring for the layers)."""
    env = os.environ if env is None else env
    cwd = Path(cwd or Path.cwd()).resolve()
    cfg = defaults()
    layers: list[tuple[str, dict[str, Any], Path | None]] = []

    user = user_config_path(env)
    if env.get(ENV_CONFIG) and not user.is_file():
        raise InputError(f"{ENV_CONFIG} points to {user}, which is not a file",
                         hint=f"create it, or unset {ENV_CONFIG}")
    if user.is_file():
        layers.append((str(user), _read_toml(user), user.parent))
    project = find_project_config(cwd)
    if project:
        layers.append((project[2], project[1], project[0].parent))

    def put(key: str, value: Any, where: str) -> None:
        if key == "mirrors" and cfg.values.get("mirrors"):
            merged = dict(cfg.values["mirrors"])
            merged.update(value)
            value = merged
            if key in cfg.sources:
                where = f"{cfg.sources[key]} + {where}"
        cfg.values[key] = value
        cfg.sources[key] = where

    for where, table, base in layers:
        cfg.files.append(where)
        for name, value in table.items():
            key = name.replace("-", "_")
            if key not in KEYS:
                cfg.problems.append(_unknown(name, where))
                continue
            put(key, _check(key, value, where, base), where)

    for key in KEYS:
        var = ENV_PREFIX + key.upper()
        raw = env.get(var)
        if not raw and key in ENV_ALIASES and env.get(ENV_ALIASES[key]):
            var = ENV_ALIASES[key]
            raw = env[var]
        if raw:  # an empty variable counts as unset
            put(key, _check(key, _from_env(key, raw), f"env {var}", cwd), f"env {var}")

    for key, value in (cli or {}).items():
        if key not in KEYS:
            raise KeyError(key)
        if value is None or value == () or value == []:
            continue
        put(key, _check(key, list(value) if isinstance(value, tuple) else value, "command line", cwd),
            "command line")
    return cfg
