"""conda environments as they are on disk: platform, python, packages, pip on top, editables.

Everything here reads an environment's ``conda-meta/*.json`` records and its
site-packages; nothing writes. :class:`CondaError` is the error of the conda package.
"""

from __future__ import annotations

import json
import os
import platform as _platform
import posixpath
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError, OffpkgError

_ON_WIN = sys.platform == "win32"
BIN = "Scripts" if _ON_WIN else "bin"


class CondaError(InputError):
    """A conda environment or conda-pack archive offpkg cannot use as it is."""

    def __init__(self, message: str, *, problems: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        # Listed under the error by the CLI (one line each).
        self.problems = list(problems or [])


class NotACondaEnvError(CondaError):
    """The path does not exist or has no ``conda-meta/``."""


def host_subdir() -> str:
    """This host's conda subdir: linux-64, linux-aarch64, osx-arm64, win-64, ..."""
    machine = _platform.machine().lower()
    if sys.platform.startswith("linux"):
        arch = {"x86_64": "64", "amd64": "64", "i386": "32", "i686": "32", "arm64": "aarch64"}.get(machine, machine)
        return f"linux-{arch}"
    if sys.platform == "darwin":
        return "osx-arm64" if machine in ("arm64", "aarch64") else "osx-64"
    if sys.platform == "win32":
        return {"arm64": "win-arm64", "x86": "win-32", "i386": "win-32", "i686": "win-32"}.get(machine, "win-64")
    if sys.platform.startswith("freebsd"):
        return "freebsd-64"
    return f"{sys.platform}-{machine}"


def conda_records(prefix: Path) -> list[dict[str, Any]]:
    """The ``conda-meta/*.json`` records of ``prefix`` (one per installed conda package)."""
    meta = Path(prefix) / "conda-meta"
    if not meta.is_dir():
        raise NotACondaEnvError(f"{prefix} is not a conda environment (it has no conda-meta/ folder)",
                                hint="give the path of a conda environment (`conda env list` shows them)")
    records = []
    for fn in sorted(meta.glob("*.json")):
        try:
            rec = json.loads(fn.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CondaError(f"cannot read conda record {fn}: {exc}",
                             hint="the environment is damaged; recreate it with conda") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise CondaError(f"conda record {fn} is malformed (no package name)",
                             hint="the environment is damaged; recreate it with conda")
        records.append(rec)
    return records


def _record_subdir(rec: dict[str, Any]) -> str | None:
    sd = rec.get("subdir")
    if isinstance(sd, str) and sd:
        return sd
    # Records from old conda versions have no subdir: the package URL ends in <subdir>/<file>.
    url = rec.get("url")
    if isinstance(url, str) and "/" in url:
        parts = url.rstrip("/").split("/")
        if len(parts) >= 2 and re.fullmatch(r"noarch|[a-z]+-[a-z0-9_]+", parts[-2]):
            return parts[-2]
    return None


def env_platform(prefix: Path) -> str:
    """The conda subdir the environment was built for, from its packages' records.

    ``noarch`` when every package is noarch (such an environment runs anywhere).
    """
    subdirs = Counter(sd for rec in conda_records(prefix)
                      if (sd := _record_subdir(rec)) and sd != "noarch")
    if not subdirs:
        return "noarch"
    if len(subdirs) > 1:
        found = ", ".join(f"{sd} ({n} packages)" for sd, n in subdirs.most_common())
        raise CondaError(f"the environment {prefix} mixes packages of several platforms: {found}",
                         hint="recreate it with packages of one platform only")
    return next(iter(subdirs))


def env_python(prefix: Path) -> str | None:
    """The version of the ``python`` conda package in the environment, if any."""
    for rec in conda_records(prefix):
        if rec.get("name") == "python":
            return str(rec.get("version"))
    return None


def _site_packages_dirs(prefix: Path) -> list[Path]:
    found = sorted((prefix / "lib").glob("python*/site-packages")) if (prefix / "lib").is_dir() else []
    if (prefix / "Lib" / "site-packages").is_dir():
        found.append(prefix / "Lib" / "site-packages")
    return [p for p in found if p.is_dir()]


def _owned_paths(records: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(files, their parent directories) that conda records own, as prefix-relative posix paths."""
    files: set[str] = set()
    for rec in records:
        for f in rec.get("files") or []:
            if isinstance(f, str):
                files.add(f.replace("\\", "/"))
    return files, {posixpath.dirname(f) for f in files}


def _dist_name_version(dist: Path) -> tuple[str, str]:
    meta = dist / "METADATA" if dist.suffix == ".dist-info" else (dist / "PKG-INFO" if dist.is_dir() else dist)
    name = version = ""
    try:
        with open(meta, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # headers end at the first blank line
                key, _, value = line.partition(":")
                if key.lower() == "name" and not name:
                    name = value.strip()
                elif key.lower() == "version" and not version:
                    version = value.strip()
    except OSError:
        pass
    if not name or not version:
        stem = dist.name.rsplit(".", 1)[0]
        n, _, v = stem.partition("-")
        name, version = name or n, version or v.split("-")[0]
    return name, version


def _pip_dists(prefix: Path, records: list[dict[str, Any]] | None = None) -> list[Path]:
    records = conda_records(prefix) if records is None else records
    owned_files, owned_dirs = _owned_paths(records)
    out = []
    for sp in _site_packages_dirs(prefix):
        for d in sorted(sp.iterdir()):
            if not d.name.endswith((".dist-info", ".egg-info")):
                continue
            rel = d.relative_to(prefix).as_posix()
            if rel in owned_dirs or rel in owned_files:
                continue  # conda installed it
            out.append(d)
    return out


def pip_packages(prefix: Path) -> list[tuple[str, str]]:
    """(name, version) of every Python distribution in the environment that no conda record owns.

    These were installed on top of conda (by pip, uv, ``setup.py``); ``offpkg bundle
    --pip-as-wheels`` carries them as wheels instead of inside the conda archive.
    """
    return sorted({_dist_name_version(d) for d in _pip_dists(Path(prefix))}, key=lambda nv: nv[0].lower())


def conda_python_dists(prefix: Path) -> list[tuple[str, str]]:
    """(name, version) of the Python distributions conda packages installed (their dist-info is owned).

    ``offpkg bundle --pip-as-wheels`` pins these as constraints, so the wheels it
    resolves for the pip part agree with what conda already provides.
    """
    prefix = Path(prefix)
    records = conda_records(prefix)
    owned_files, owned_dirs = _owned_paths(records)
    out = set()
    for sp in _site_packages_dirs(prefix):
        for d in sorted(sp.iterdir()):
            if d.name.endswith((".dist-info", ".egg-info")):
                rel = d.relative_to(prefix).as_posix()
                if rel in owned_dirs or rel in owned_files:
                    out.add(_dist_name_version(d))
    return sorted(out, key=lambda nv: nv[0].lower())


def pip_files(prefix: Path, records: list[dict[str, Any]]) -> set[str]:
    """Prefix-relative paths of the files the non-conda distributions installed (from their RECORD)."""
    owned, _ = _owned_paths(records)
    out: set[str] = set()
    root = os.path.normpath(prefix)
    for d in _pip_dists(prefix, records):
        listed = [d.relative_to(prefix).as_posix() + "/" + p.name for p in d.iterdir()] if d.is_dir() else []
        rec_file = d / "RECORD"
        if rec_file.is_file():
            for line in rec_file.read_text(encoding="utf-8", errors="replace").splitlines():
                path = line.split(",", 1)[0].strip()
                if not path:
                    continue
                full = os.path.normpath(os.path.join(d.parent, path))
                if full.startswith(root + os.sep):
                    listed.append(Path(os.path.relpath(full, root)).as_posix())
        out.update(p for p in listed if p not in owned)
    return out


def editable_packages(prefix: Path) -> list[str]:
    """Editable installs: a dist-info whose direct_url.json says editable, or a legacy .egg-link."""
    found: set[str] = set()
    for sp in _site_packages_dirs(prefix):
        for du in sp.glob("*.dist-info/direct_url.json"):
            try:
                data = json.loads(du.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("dir_info"), dict) \
                    and data["dir_info"].get("editable") is True:
                found.add(_dist_name_version(du.parent)[0])
        # `setup.py develop` and old `pip install -e`: conda-pack 0.9 does not look for these.
        for link in sp.glob("*.egg-link"):
            found.add(link.name[: -len(".egg-link")])
    return sorted(found)


def resolve_env_name(name: str) -> Path:
    """The prefix of the conda environment called ``name``.

    Asks ``conda info --json`` when conda is installed (argv, never a shell),
    else reads ``~/.conda/environments.txt``, which conda and mamba keep.
    """
    from .._subprocess import run

    candidates: list[str] = []
    exe = os.environ.get("CONDA_EXE") or shutil.which("conda")
    if exe:
        try:
            info = json.loads(run([exe, "info", "--json"], what="conda info", timeout=120).stdout)
            candidates = [str(e) for e in info.get("envs", [])]
            if name == "base" and info.get("root_prefix"):
                return Path(info["root_prefix"])
        except (OffpkgError, ValueError, AttributeError):
            candidates = []
    if not candidates:
        txt = Path.home() / ".conda" / "environments.txt"
        if txt.is_file():
            candidates = [ln.strip() for ln in txt.read_text(encoding="utf-8", errors="replace").splitlines()
                          if ln.strip()]
    for c in candidates:
        if os.path.basename(c.rstrip("/\\")) == name and (Path(c) / "conda-meta").is_dir():
            return Path(c)
    raise NotACondaEnvError(f"no conda environment named {name!r}",
                            hint="give its path with -p PREFIX (`conda env list` shows the paths)")
