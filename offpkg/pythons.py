"""The pythons a bundle serves: the target floor, what pip and uv support there, and an
interpreter on the build host that matches a target (the proof behind ``bundle --verify``).

The floor is ours (``TARGET_PYTHON_FLOOR``: the stdlib probe and the bundle's bootstrap.py run
on it). What pip and uv support is read from the index (each wheel's Requires-Python), never
kept in a table here.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ._probe import TARGET_PYTHON_FLOOR
from .errors import InputError
from .target import Target, wheel_tags

if TYPE_CHECKING:  # pragma: no cover
    from .manifest import Manifest
    from .net.index import DistFile, IndexClient

FLOOR = ".".join(map(str, TARGET_PYTHON_FLOOR))


def check_target_python(target: Target) -> None:
    """Refuse, before resolving, a target python older than the floor (with what to do instead)."""
    try:
        major, minor = target.py_major_minor
    except (TypeError, ValueError):
        return  # the target file's own validation names a malformed version
    if (major, minor) < TARGET_PYTHON_FLOOR:
        raise InputError(
            f"the target's python {target.python_version} is older than Python {FLOOR}, the oldest target offpkg "
            "bundles for (the bundle's install.sh/bootstrap.py and probe.py need it, and uv resolves for nothing older)",
            hint=f"install Python {FLOOR} or newer on the target (e.g. a distribution's python3.x package), "
                 "probe it there, and bundle for that python with --target")


def tool_notes(tools: list[tuple[Target, DistFile | None, DistFile | None]], client: IndexClient) -> list[str]:
    """Notes for targets whose python is below what the newest pip wheel supports (the bundle
    then carries the last pip for that python). Said at bundle time, not in the server room."""
    notes: list[str] = []
    for target, pip, _uv in tools:
        newest = _newest_requires_python("pip", target, client)
        nv = pip.name_version() if pip is not None else None
        if newest is not None and nv is not None:
            notes.append(f"pip {newest[0]} needs Python {newest[1]}; the bundle carries pip {nv[1]}, "
                         f"the last release for {target.describe()}")
    return notes


def uv_missing_reason(target: Target, client: IndexClient) -> str:
    """Why no uv wheel fits the target, read from the index ("" when it is not its python)."""
    newest = _newest_requires_python("uv", target, client)
    return f" (uv {newest[0]} needs Python {newest[1]}; no uv release supports Python {target.python_version})" \
        if newest else ""


def wheel_requires_python(wheel: Path) -> str | None:
    """The Requires-Python of a wheel file's METADATA (None when it has none)."""
    from email.parser import HeaderParser

    with zipfile.ZipFile(wheel) as z:
        meta = next((n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            return None
        return HeaderParser().parsestr(z.read(meta).decode("utf-8", "replace")).get("Requires-Python")


def _newest_requires_python(name: str, target: Target, client: IndexClient) -> tuple[Version, str] | None:
    """(version, Requires-Python) of the newest wheel of ``name`` for the target's platform
    whose Requires-Python excludes the target's python; None when the newest fits."""
    try:
        files = client.files(name)
    except Exception:  # noqa: BLE001 - the tools lookup already reported an unreachable index
        return None
    try:
        pyver = Version(target.markers.get("python_full_version") or target.python_version + ".0")
    except InvalidVersion:
        return None
    best: tuple[Version, str | None] | None = None
    for f in files:
        nv = f.name_version()
        if not f.is_wheel or f.yanked or not nv or nv[1].is_prerelease:
            continue
        if not any(tag.platform == "any" or tag.platform in target.platforms for tag in wheel_tags(f.filename) or ()):
            continue
        if best is None or nv[1] > best[0]:
            best = (nv[1], f.requires_python)
    if best is None or not best[1]:
        return None
    try:
        return (best[0], best[1]) if pyver not in SpecifierSet(best[1]) else None
    except InvalidSpecifier:
        return None


# ------------------------------------------------------------ interpreters on the build host


def candidate_interpreters(version: str) -> list[Path]:
    """Interpreters on this host that may be Python ``version`` (X.Y), best first, deduplicated.

    Looked for in: ``OFFPKG_PYTHONS`` (os.pathsep-separated paths, tried first), this
    interpreter, pyenv's versions (``PYENV_ROOT``, ``pyenv root`` or ~/.pyenv), ``uv python
    find`` (never downloads), and ``pythonX.Y`` on PATH. Each is probed before use.
    """
    found: list[Path] = []
    found += [Path(p) for p in os.environ.get("OFFPKG_PYTHONS", "").split(os.pathsep) if p]
    found.append(Path(sys.executable))
    for root in _pyenv_roots():
        found += [Path(p) for p in sorted(glob.glob(os.path.join(root, "versions", f"{version}*", "bin", "python3")),
                                          reverse=True)]
    uv = _uv_find(version)
    if uv:
        found.append(uv)
    exe = shutil.which(f"python{version}")
    if exe and os.sep + "shims" + os.sep not in exe:  # pyenv's shims: its versions are listed above
        found.append(Path(exe))
    out: list[Path] = []
    seen: set[str] = set()
    for p in found:
        key = os.path.realpath(p)
        if key not in seen and os.access(p, os.X_OK) and Path(p).is_file():
            seen.add(key)
            out.append(p)
    return out


def _pyenv_roots() -> list[str]:
    roots = [os.environ.get("PYENV_ROOT", "")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            roots.append(subprocess.run([pyenv, "root"], check=False, capture_output=True, text=True, timeout=30).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    roots.append(os.path.expanduser("~/.pyenv"))
    return list(dict.fromkeys(r for r in roots if r and os.path.isdir(r)))


def _uv_find(version: str) -> Path | None:
    from .backends import uv_binary

    uv = uv_binary()
    if not uv:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    try:
        proc = subprocess.run([uv, "python", "find", "--no-project", version], check=False, capture_output=True, text=True,
                              timeout=60, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    path = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
    return Path(path) if path else None


def matching_interpreter(manifest: Manifest, index: int) -> tuple[Path | None, Target | None, str]:
    """An interpreter on this host that installs target ``index`` of the bundle, its probe, and
    why it matches (or why none does).

    It matches when it has the target's implementation, version, ABI, OS and architecture, and
    every wheel of that target fits its tags (e.g. its glibc is not older than the wheels need).
    """
    from .install import probe_python

    target = Target.from_probe(manifest.targets[index], source=f"target {index}")
    tried: list[str] = []
    for exe in candidate_interpreters(target.python_version):
        try:
            host = probe_python(exe)
        except Exception:  # noqa: BLE001 - a broken interpreter is just not a candidate
            tried.append(f"{exe} (does not run)")
            continue
        if not host.same_interpreter_as(target) or (host.os, host.arch) != (target.os, target.arch):
            tried.append(f"{exe} ({host.implementation} {host.python_version} on {host.os} {host.arch})")
            continue
        ranks = host.tag_rank()
        misfit = [p.filename for p in manifest.requirement_packages
                  if index in p.targets and host.wheel_rank(p.filename, ranks) is None]
        if misfit:
            tried.append(f"{exe} ({host.describe()}: cannot install {misfit[0]})")
            continue
        return exe, host, f"{exe} is {host.describe()}"
    return None, None, (f"no interpreter on this host matches {target.describe()}"
                  + (f"; tried: {', '.join(tried[:6])}" if tried else ""))

