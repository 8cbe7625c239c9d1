"""Pinned, sorted requirements of an existing environment (any python: venv, conda env).

Runs a small stdlib script with the environment's own interpreter, so it works
for a conda env's python or a venv without pip. Editable, local-path and VCS
installs (PEP 610 direct_url.json) cannot be carried as they are: each is
reported and written as a comment, never silently kept.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ._subprocess import isolated_env, parse_json_output, run
from .errors import InputError, OffpkgError

_SCRIPT = r"""
import json, sys
try:
    from importlib import metadata
except ImportError:
    import importlib_metadata as metadata
out = []
for d in metadata.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    direct = d.read_text("direct_url.json")
    out.append({"name": name, "version": d.version, "direct_url": json.loads(direct) if direct else None})
json.dump(out, sys.stdout)
"""

# pip freeze leaves these out unless --all: they are the installer, not the application.
_TOOLING = {"pip", "setuptools", "wheel", "distribute"}


@dataclass(frozen=True)
class Frozen:
    pins: list[str]
    skipped: list[tuple[str, str]]  # (name, why)

    def text(self) -> str:
        lines = [f"# {name}: {why}" for name, why in self.skipped] + self.pins
        return "\n".join(lines) + "\n"


def freeze(python: str | None = None, include_all: bool = False) -> Frozen:
    exe = python or sys.executable
    if python and not Path(python).exists():
        raise InputError(f"--python {python} does not exist", hint="give the path of the environment's python")
    try:
        out = run([exe, "-I", "-c", _SCRIPT], env=isolated_env(), what=f"reading the packages of {exe}")
    except OffpkgError as exc:
        raise InputError(f"cannot read the packages of {exe}: {exc.message}", details=exc.details,
                         hint="check that --python names a working interpreter") from None
    dists = parse_json_output(out, f"reading the packages of {exe}", kind=list,
                              hint="check that --python names a working interpreter (its startup prints nothing)")
    pins: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    for d in dists:
        if not (isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("version"), str)):
            continue  # a distribution with broken metadata (no Name/Version): nothing to pin
        name = canonicalize_name(d["name"])
        if name in pins or (not include_all and name in _TOOLING):
            continue
        du = d.get("direct_url") or None
        if isinstance(du, dict):
            url = str(du.get("url") or "")
            dir_info, vcs_info = du.get("dir_info"), du.get("vcs_info")
            if isinstance(dir_info, dict) and dir_info.get("editable"):
                skipped.append((name, f"editable install from {url}; left out: build a wheel of it to carry it"))
                continue
            if "vcs_info" in du:
                vcs = str(vcs_info.get("vcs", "vcs")) if isinstance(vcs_info, dict) else "vcs"
                skipped.append((name, f"installed from version control ({vcs}); "
                                      "left out: build a wheel of it to carry it"))
                continue
            if url.startswith("file:"):
                skipped.append((name, f"installed from a local path ({url}); left out: put its wheel in a "
                                      "--find-links folder and pin it by version"))
                continue
        pins[name] = f"{name}=={d['version']}"
    return Frozen([pins[k] for k in sorted(pins)], skipped)
