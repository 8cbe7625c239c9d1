"""Conda environments: pack them with conda-pack, unpack and relocate them safely offline.

Packing goes through conda-pack's Python API (``CondaEnv.from_prefix(...).pack``);
what conda-pack refuses (editable installs, files that pip deleted or replaced,
a path that is no environment) becomes one :class:`CondaError` naming the
packages and files and saying what to do.

Unpacking (:func:`install_packed`) never trusts the archive: the platform is
checked first, members are checked by :func:`offpkg.archive.safe_extract` before
anything is written, the prefix records that ``conda-unpack`` will rewrite are
read with :func:`ast.literal_eval` and must all name regular files inside the
prefix, ``conda-unpack`` is run as ``[python, bin/conda-unpack]`` with an
interpreter that exists (its ``#!/usr/bin/env python`` shebang is never used),
and afterwards every recorded file is re-read to prove that no placeholder and
no old prefix is left. Any failure removes the new prefix.

Nothing here prints; progress goes to an :class:`offpkg.events.Events`.
"""

from __future__ import annotations

import ast
import json
import os
import platform as _platform
import posixpath
import re
import shutil
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (InputError, InstallError, OffpkgError, OutputExistsError, SubprocessError, TargetMismatchError,
                     UnsafeArchiveError, UsageError)
from ..events import Events

__all__ = [
    "FORMATS", "CondaError", "NotACondaEnvError", "EditablePackagesError", "ModifiedEnvironmentError",
    "PrefixNotRewrittenError", "PackResult", "InstallReport", "host_subdir", "env_platform", "env_python",
    "conda_records", "pip_packages", "conda_python_dists", "resolve_env_name", "pack_env", "install_packed",
    "write_offline_condarc", "OFFLINE_CONDARC",
]

# The formats offpkg offers (conda-pack knows more; these are the ones install_packed reads back).
FORMATS = ("tar.zst", "tar.gz", "zip", "no-archive")
_SUFFIXES = {".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".zip": "zip",
             ".no-archive": "no-archive"}

_ON_WIN = sys.platform == "win32"
_BIN = "Scripts" if _ON_WIN else "bin"


# ----------------------------------------------------------------------------- errors


class CondaError(InputError):
    """A conda environment or conda-pack archive offpkg cannot use as it is."""

    def __init__(self, message: str, *, problems: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        # Listed under the error by the CLI (one line each).
        self.problems = list(problems or [])


class NotACondaEnvError(CondaError):
    """The path does not exist or has no ``conda-meta/``."""


class EditablePackagesError(CondaError):
    """Editable (development) installs point outside the environment and cannot travel."""

    def __init__(self, packages: list[str], **kw: Any) -> None:
        self.packages = sorted(packages)
        super().__init__(
            f"the environment has editable installs, which point outside it: {', '.join(self.packages)}",
            problems=[f"{p} (editable)" for p in self.packages],
            hint="reinstall them normally (`pip install .` instead of `pip install -e .`) or uninstall them "
                 "(`pip uninstall NAME`), then pack again; --ignore-editable packs them anyway, broken",
            **kw)


class ModifiedEnvironmentError(CondaError):
    """Files that conda installed were deleted or overwritten (usually by pip)."""

    def __init__(self, packages: dict[str, list[str]], **kw: Any) -> None:
        self.packages = packages
        names = sorted(packages)
        problems = [f"{pkg}: {', '.join(files)}" for pkg, files in sorted(packages.items())]
        super().__init__(
            "files that conda installed were deleted or overwritten (usually by pip installing over conda "
            f"packages) in: {', '.join(names)}",
            problems=problems,
            hint="reinstall those packages with conda (`conda install --force-reinstall NAME`; first `pip "
                 "uninstall NAME` where pip replaced them), or pack the environment as it is with "
                 "--ignore-missing-files (the missing files stay missing, as they are now)",
            **kw)


class PrefixNotRewrittenError(InstallError):
    """conda-unpack ran but a placeholder or the old prefix is still in a file."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_env` wrote. ``sha256`` is None for ``no-archive`` (a directory)."""

    path: Path
    format: str
    size: int
    sha256: str | None
    platform: str
    python: str | None
    packages: int
    pip_packages: list[tuple[str, str]]
    source_prefix: str
    files: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size": self.size, "sha256": self.sha256,
                "platform": self.platform, "python": self.python, "packages": self.packages,
                "pip_packages": [{"name": n, "version": v} for n, v in self.pip_packages],
                "source_prefix": self.source_prefix, "files": self.files, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class InstallReport:
    """What :func:`install_packed` did."""

    prefix: Path
    platform: str
    python: str  # the interpreter that ran conda-unpack
    members: int  # files, links and directories written
    rewritten: int  # files conda-unpack was told to rewrite
    checked: int  # files re-read for leftover placeholders/old prefixes
    condarc: Path
    condarc_backup: Path | None
    original_prefix: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": str(self.prefix), "platform": self.platform, "python": self.python,
                "members": self.members, "rewritten": self.rewritten, "checked": self.checked,
                "condarc": str(self.condarc),
                "condarc_backup": str(self.condarc_backup) if self.condarc_backup else None,
                "original_prefix": self.original_prefix}


# ----------------------------------------------------------------------------- environment facts


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


def _pip_files(prefix: Path, records: list[dict[str, Any]]) -> set[str]:
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


def _editable_packages(prefix: Path) -> list[str]:
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


# ----------------------------------------------------------------------------- packing


class _CountingFiles(list):  # type: ignore[type-arg]
    """conda-pack's ``CondaEnv.files`` that reports each file as conda-pack archives it."""

    def __init__(self, files: list[Any], events: Events) -> None:
        super().__init__(files)
        self._events = events

    def __iter__(self) -> Iterator[Any]:
        for f in super().__iter__():
            yield f
            self._events.advance("pack", 1)


def _pick_format(output: Path, fmt: str) -> str:
    if fmt != "infer":
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = output.name.lower()
    for suffix, f in _SUFFIXES.items():
        if name.endswith(suffix):
            return f
    raise UsageError(f"cannot tell the archive format from the name {output.name!r}",
                     hint="end it in .tar.zst, .tar.gz or .zip, or pass --format")


_MISSING_HEADER = "Files managed by conda were found to have been deleted/overwritten"


def _translate(exc: Exception, prefix: Path) -> CondaError:
    """conda-pack's CondaPackException (one free-text message) -> an offpkg error."""
    msg = str(exc).strip()
    if _MISSING_HEADER in msg:
        packages: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in msg.splitlines():
            m = re.match(r"^- (\S+) (\S+):\s*$", line)
            if m:
                current = packages.setdefault(f"{m.group(1)} {m.group(2)}", [])
            elif current is not None and line.startswith("    ") and line.strip():
                current.append(line.strip())
            elif current is not None and not line.strip():
                current = None
        if packages:
            return ModifiedEnvironmentError(packages)
        return CondaError("files that conda installed were deleted or overwritten", details=msg,
                          hint="reinstall the affected packages with conda, or pack with --ignore-missing-files")
    if "editable packages" in msg:
        names = [ln.strip()[2:] for ln in msg.splitlines() if ln.strip().startswith("- ")]
        return EditablePackagesError(names or ["(unnamed)"])
    if "doesn't exist" in msg or "is not a conda environment" in msg:
        return NotACondaEnvError(f"{prefix} is not a conda environment",
                                 hint="give the path of a conda environment (`conda env list` shows them)")
    return CondaError(f"conda-pack refused to pack {prefix}", details=msg,
                      hint="fix the environment as conda-pack says above, then pack again")


def pack_env(
    *,
    name: str | None = None,
    prefix: Path | None = None,
    output: Path,
    format: str = "infer",
    threads: int = 1,
    progress: Events | None = None,
    ignore_editable: bool = False,
    ignore_missing_files: bool = False,
    exclude_pip: bool = False,
    force: bool = False,
    compress_level: int = 4,
) -> PackResult:
    """Pack the conda environment ``name`` or ``prefix`` into ``output`` with conda-pack.

    ``exclude_pip`` leaves out the files of distributions pip installed on top
    (for ``--pip-as-wheels``, which carries those as wheels). The archive is
    written to a temp sibling of ``output`` and renamed into place; an existing
    ``output`` is refused unless ``force``.
    """
    from conda_pack import CondaEnv, CondaPackException

    from ..fsutil import check_output, commit, staging
    from ..hashing import sha256_file

    events = progress or Events()
    if (name is None) == (prefix is None):
        raise UsageError("give either an environment name (-n) or a prefix (-p), not both or neither")
    if threads < 1 and threads != -1:
        raise UsageError("--threads must be 1 or more (or -1 for every core)")
    src = resolve_env_name(name) if name is not None else Path(prefix)  # type: ignore[arg-type]
    src = Path(os.path.abspath(src))
    output = Path(os.path.abspath(output))
    fmt = _pick_format(output, format)
    check_output(output, force)
    if not src.is_dir():
        raise NotACondaEnvError(f"{src} does not exist", hint="check the path (`conda env list` shows them)")
    if output == src or src in output.parents:
        raise UsageError(f"the output {output} is inside the environment being packed",
                         hint="write the archive somewhere outside the environment")

    records = conda_records(src)
    plat = env_platform(src)
    if not ignore_editable and (editable := _editable_packages(src)):
        raise EditablePackagesError(editable)
    pips = pip_packages(src)

    events.stage("scan", f"reading conda environment {src}")
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env = CondaEnv.from_prefix(str(src), ignore_editable_packages=ignore_editable,
                                       ignore_missing_files=ignore_missing_files)
    except CondaPackException as exc:
        raise _translate(exc, src) from None
    except (KeyError, TypeError, ValueError) as exc:
        # conda-pack indexes the records without checking them; a damaged record ends up here.
        raise CondaError(f"conda-pack cannot read the environment {src}: {type(exc).__name__}: {exc}",
                         hint="a conda-meta record is damaged or unusual; recreate the environment with conda"
                         ) from None
    finally:
        events.done("scan")
    notes = [_short_warning(str(w.message)) for w in caught]
    if ignore_missing_files:
        notes.append("packed with --ignore-missing-files: files conda recorded but that are gone stay missing")

    files = list(env.files)
    if exclude_pip:
        drop = _pip_files(src, records)
        files = [f for f in files if f.target.replace("\\", "/") not in drop]
        env = CondaEnv(env.prefix, files)
    env.files = _CountingFiles(files, events)

    events.stage("pack", f"packing {len(files)} files into {output.name}", total=len(files))
    with staging(output, directory=fmt == "no-archive") as tmp:
        try:
            # force=True: the target is our own fresh temp sibling (an empty dir for no-archive).
            env.pack(output=str(tmp), format=fmt, force=True, n_threads=threads, compress_level=compress_level)
        except (CondaPackException, ValueError) as exc:
            raise _translate(exc, src) from None
        finally:
            events.done("pack")
        if fmt == "no-archive":
            _remove_stray_tempfile(tmp, files)
            digest, size = None, _tree_size(tmp)
        else:
            # conda-pack creates the archive with mkstemp (0600); give it the usual mode.
            os.chmod(tmp, 0o666 & ~_umask())
            events.stage("hash", f"hashing {output.name}", total=tmp.stat().st_size, bytes_=True)
            try:
                digest, size = sha256_file(tmp, progress=lambda n: events.advance("hash", n))
            finally:
                events.done("hash")
        commit(tmp, output, force)
    return PackResult(path=output, format=fmt, size=size, sha256=digest, platform=plat,
                      python=env_python(src), packages=len(records), pip_packages=pips,
                      source_prefix=str(src), files=len(files), warnings=notes)


def _short_warning(msg: str) -> str:
    if "without entries in the package cache" in msg:
        pkgs = [ln.strip()[2:].split("=")[0] for ln in msg.splitlines() if ln.strip().startswith("- ")]
        return ("packages missing from the conda package cache (`conda clean -p`?): " + ", ".join(pkgs)
                + "; their files were packed as found, and binary files in them keep the old prefix")
    return " ".join(msg.split())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _remove_stray_tempfile(out: Path, files: list[Any]) -> None:
    """conda-pack 0.9 moves its (empty, unused) mkstemp file into a no-archive output; drop it."""
    expected = {f.target.replace("\\", "/").split("/", 1)[0] for f in files} | {_BIN}
    for entry in out.iterdir():
        if entry.name not in expected and entry.name.startswith("tmp") and entry.is_file() \
                and not entry.is_symlink() and entry.stat().st_size == 0:
            entry.unlink()


# ----------------------------------------------------------------------------- offline .condarc

OFFLINE_CONDARC = """\
# Written by offpkg when it unpacked this environment on a host without internet.
# conda reads $CONDA_PREFIX/.condarc while this environment is active.
# offline: conda uses only packages already in its package cache, never the network.
# channels/default_channels empty: no channel is configured, so nothing is ever fetched.
offline: true
channels: {channels}
default_channels: []
custom_channels: {{}}
custom_multichannels: {{}}
auto_update_conda: false
notify_outdated_conda: false
report_errors: false
"""


def write_offline_condarc(prefix: Path, channels: list[str] | tuple[str, ...] = ()) -> tuple[Path, Path | None]:
    """Write ``prefix/.condarc`` for offline use; return (its path, backup of an existing one or None).

    ``channels`` (local ``file://`` channels, e.g. from ``offpkg mirror``) are the only
    ones conda may use; by default there are none.
    """
    from ..fsutil import write_text_atomic

    prefix = Path(prefix)
    rc = prefix / ".condarc"
    backup = None
    if rc.exists() or rc.is_symlink():
        backup = prefix / ".condarc.before-offpkg"
        os.replace(rc, backup)
    chan = "[" + ", ".join(json.dumps(c) for c in channels) + "]"  # JSON strings are valid YAML
    write_text_atomic(rc, OFFLINE_CONDARC.format(channels=chan), mode=0o644)
    return rc, backup


# ----------------------------------------------------------------------------- unpacking


def install_packed(
    archive: Path,
    prefix: Path,
    *,
    expected_platform: str,
    python: Path | None = None,
    original_prefix: str | None = None,
    channels: list[str] | tuple[str, ...] = (),
    progress: Events | None = None,
) -> InstallReport:
    """Unpack a conda-pack archive (or no-archive folder) into ``prefix`` and relocate it.

    Refuses another OS/architecture (``expected_platform`` against this host),
    an existing non-empty ``prefix``, unsafe members and unsafe prefix records.
    ``original_prefix`` (``PackResult.source_prefix``) is also searched for after
    relocation. On any failure the new prefix is removed.
    """
    events = progress or Events()
    archive = Path(archive)
    prefix = Path(os.path.abspath(prefix))
    host = host_subdir()
    if expected_platform not in (host, "noarch"):
        raise TargetMismatchError(
            f"the conda environment is for {expected_platform}, but this host is {host}",
            hint=f"a packed conda environment runs only on the OS and CPU it was built for; pack one on a "
                 f"{host} machine (or solve it for {host} with `conda create --platform {host}`)")
    if not archive.exists():
        raise InputError(f"{archive} does not exist")
    was_empty_dir = False
    if prefix.exists() or prefix.is_symlink():
        if prefix.is_dir() and not prefix.is_symlink() and not any(prefix.iterdir()):
            was_empty_dir = True
        else:
            raise OutputExistsError(f"{prefix} already exists and is not an empty folder",
                                    hint="choose a new path for the environment, or remove the old one first")

    events.stage("extract", f"unpacking {archive.name} into {prefix}", bytes_=True)
    if was_empty_dir:
        prefix.rmdir()  # safe_extract wants to create the prefix itself
    try:
        members = _unpack_into(archive, prefix, lambda n: events.advance("extract", n))
    except BaseException:
        if was_empty_dir and not prefix.exists():
            prefix.mkdir()
        raise
    finally:
        events.done("extract")
    try:
        return _relocate(prefix, members, expected_platform=expected_platform, host=host, python=python,
                         original_prefix=original_prefix, channels=channels, events=events)
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        if was_empty_dir:
            prefix.mkdir()
        raise


def _unpack_into(archive: Path, prefix: Path, progress: Any) -> int:
    if archive.is_dir():
        return _copy_tree_safely(archive, prefix)
    from ..archive import safe_extract  # lazily: archive.py is another module's concern

    # conda packages hold names that differ only in case (ncurses' terminfo); they are
    # safe only where the filesystem keeps them apart.
    names = safe_extract(archive, prefix, allow_symlinks=True, progress=progress,
                         allow_case_collisions=_case_sensitive(prefix.parent))
    return len(names)


def _case_sensitive(directory: Path) -> bool:
    """Whether ``directory``'s filesystem tells ``a`` from ``A`` (probed with a temp file)."""
    import tempfile

    while not directory.is_dir() and directory.parent != directory:
        directory = directory.parent  # the nearest existing folder: create nothing here
    fd, probe = tempfile.mkstemp(prefix=".offpkg-case-probe-", suffix="x", dir=directory)
    os.close(fd)
    try:
        return not os.path.exists(probe[:-1] + "X")
    finally:
        os.unlink(probe)


def _relocate(prefix: Path, members: int, *, expected_platform: str, host: str, python: Path | None,
              original_prefix: str | None, channels: list[str] | tuple[str, ...], events: Events) -> InstallReport:
    from .._subprocess import run

    actual = env_platform(prefix)  # also proves conda-meta/ is there
    if actual not in ("noarch", expected_platform):
        raise TargetMismatchError(f"the archive holds a {actual} environment, not {expected_platform} as expected",
                                  hint="the archive does not match its description; pack it again")
    script = prefix / _BIN / ("conda-unpack-script.py" if _ON_WIN else "conda-unpack")
    if not script.is_file() or script.is_symlink():
        raise CondaError(f"the archive has no {_BIN}/{script.name}, so its prefixes cannot be rewritten",
                         hint="pack the environment with `offpkg conda pack` (conda-pack without --dest-prefix)")
    records = _prefix_records(script, prefix)
    interp = _pick_interpreter(prefix, python)

    events.stage("unpack", f"rewriting prefixes in {len(records)} files (conda-unpack)")
    try:
        # [python, script] explicitly: the script's `#!/usr/bin/env python` may find no python here.
        # -B: no __pycache__ in bin/. -E -s: ignore PYTHONPATH/PYTHONHOME and the user site; not -I,
        # which drops the script's folder that conda-unpack imports its progress module from.
        run([interp, "-B", "-E", "-s", str(script)], what="conda-unpack", timeout=3600)
    except SubprocessError as exc:
        hint = "the archive may be damaged; pack the environment again"
        if exc.details and "negative padding" in exc.details:
            longest = max((len(p) for _, p, m in records if m == "binary"), default=0)
            hint = (f"the new prefix ({len(str(prefix))} characters) is longer than a binary placeholder "
                    f"({longest} characters); install into a shorter path")
        raise InstallError(f"conda-unpack failed in {prefix}", details=exc.details, hint=hint) from None
    finally:
        events.done("unpack")

    events.stage("check", "checking that no old prefix is left", total=len(records))
    needles = {p for _, p, _ in records}
    if original_prefix:
        needles.add(original_prefix)
    needles.discard(str(prefix))
    leftovers = []
    for path, _placeholder, _mode in records:
        found = _leftover(prefix / path, sorted(needles), str(prefix))
        if found:
            leftovers.append(f"{path}: still contains {found}")
        events.advance("check", 1)
    events.done("check")
    if leftovers:
        raise PrefixNotRewrittenError(f"conda-unpack left old prefixes in {len(leftovers)} files of {prefix}",
                                      details="\n".join(leftovers),
                                      hint="the environment would not work at this path; report this with the "
                                           "archive, or pack it again with conda-pack")
    rc, backup = write_offline_condarc(prefix, channels)
    return InstallReport(prefix=prefix, platform=actual if actual != "noarch" else host, python=str(interp),
                         members=members, rewritten=len(records), checked=len(records), condarc=rc,
                         condarc_backup=backup, original_prefix=original_prefix)


def _prefix_records(script: Path, prefix: Path) -> list[tuple[str, str, str]]:
    """The (path, placeholder, mode) list conda-pack wrote into conda-unpack, checked.

    Read with ast.literal_eval, never executed; every path must be a regular file
    inside the prefix, because conda-unpack will rewrite it in place.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError, ValueError) as exc:
        raise CondaError(f"cannot read {script}: {exc}", hint="the archive is damaged; pack it again") from None
    value: Any = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_prefix_records"
                                                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            break
    if not isinstance(value, list):
        raise CondaError(f"{script} has no readable prefix records; it was not written by conda-pack",
                         hint="pack the environment with `offpkg conda pack`")
    root = os.path.realpath(prefix)
    out = []
    for rec in value:
        if not (isinstance(rec, tuple) and len(rec) == 3 and all(isinstance(x, str) for x in rec)) \
                or rec[2] not in ("text", "binary") or not rec[1]:
            raise UnsafeArchiveError(f"{script.name}: malformed prefix record {rec!r}")
        path = rec[0]
        parts = path.replace("\\", "/").split("/")
        if os.path.isabs(path) or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) \
                or ".." in parts or "\x00" in path:
            raise UnsafeArchiveError(f"{script.name}: prefix record {path!r} points outside the environment")
        full = prefix / path
        real = os.path.realpath(full)
        if not (real.startswith(root + os.sep)) or full.is_symlink() or not full.is_file():
            raise UnsafeArchiveError(f"{script.name}: prefix record {path!r} is not a regular file inside "
                                     "the environment")
        out.append((path, rec[1], rec[2]))
    return out


def _runs(interp: Path) -> bool:
    from .._subprocess import run

    if not (interp.is_file() and os.access(interp, os.X_OK)):
        return False
    try:
        return run([interp, "-E", "-s", "-c", "import sys"], check=False, timeout=60).returncode == 0
    except OffpkgError:
        return False


def _pick_interpreter(prefix: Path, python: Path | None) -> Path:
    """The environment's own python when it runs here, else ``python``, else offpkg's own."""
    own = prefix / ("python.exe" if _ON_WIN else "bin/python")
    for cand in (own, python, Path(sys.executable)):
        if cand is not None and _runs(Path(cand)):
            return Path(cand)
    raise InstallError("no Python interpreter runs here to finish unpacking the environment",
                       hint="pass one with --python")


_CHUNK = 1 << 20


def _leftover(path: Path, needles: list[str], new_prefix: str) -> str | None:
    """The first of ``needles`` found in ``path`` outside occurrences of ``new_prefix`` (streamed)."""
    mask = new_prefix.encode()
    bneedles = [n.encode() for n in needles if len(n) > 1]
    if not bneedles:
        return None
    keep = max(len(mask), *(len(n) for n in bneedles))
    with open(path, "rb") as f:
        buf = b""
        base = 0  # absolute offset of buf[0]
        judged = 0  # absolute offset up to which needle starts have been judged
        while True:
            chunk = f.read(_CHUNK)
            buf += chunk
            # Only judge starts that leave `keep` bytes after them (unless at EOF), so a
            # needle and any new-prefix occurrence covering it are both fully in buf.
            limit = len(buf) if not chunk else len(buf) - keep
            for n in bneedles:
                i = buf.find(n, judged - base)
                while 0 <= i < limit:
                    if not _masked(buf, i, len(n), mask):
                        return n.decode(errors="replace")
                    i = buf.find(n, i + 1)
            judged = max(judged, base + limit)
            if not chunk:
                return None
            drop = max(0, judged - base - keep)
            buf, base = buf[drop:], base + drop


def _masked(buf: bytes, i: int, n: int, mask: bytes) -> bool:
    """Whether buf[i:i+n] lies inside an occurrence of ``mask`` (the new prefix)."""
    if len(mask) < n:
        return False
    lo = max(0, i + n - len(mask))
    j = buf.find(mask, lo, i + len(mask))
    while j != -1 and j <= i:
        if j + len(mask) >= i + n:
            return True
        j = buf.find(mask, j + 1, i + len(mask))
    return False


def _copy_tree_safely(src: Path, dest: Path) -> int:
    """Copy a no-archive folder with the extraction rules: every entry checked first, copies only.

    Copies, never hard links: conda-pack's no-archive output shares inodes with the
    packed environment and its package cache, and conda-unpack rewrites in place.
    """
    from ..fsutil import commit, staging

    root = os.path.realpath(src)
    entries: list[tuple[str, str]] = []  # (relative path, kind)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        for nm in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, nm)
            rel = os.path.relpath(full, src)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                lexical = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                real = os.path.realpath(full)
                if os.path.isabs(target) or lexical == ".." or lexical.startswith(".." + os.sep) \
                        or not (real == root or real.startswith(root + os.sep)):
                    raise UnsafeArchiveError(f"{rel}: symbolic link to {target!r} leaves the environment")
                entries.append((rel, "link"))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((rel, "dir"))
            elif stat.S_ISREG(st.st_mode):
                entries.append((rel, "file"))
            else:
                raise UnsafeArchiveError(f"{rel}: not a regular file, folder or link (device, FIFO or socket)")
    with staging(dest, directory=True) as tmp:
        for rel, kind in entries:
            s, d = os.path.join(src, rel), os.path.join(tmp, rel)
            if kind == "dir":
                os.mkdir(d)
            elif kind == "link":
                os.symlink(os.readlink(s), d)
            else:
                shutil.copyfile(s, d)
                shutil.copymode(s, d)
        os.chmod(tmp, 0o777 & ~_umask())
        commit(tmp, dest, False)
    return len(entries)
