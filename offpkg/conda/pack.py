"""Packing a conda environment with conda-pack (its Python API).

:func:`pack_env` runs ``CondaEnv.from_prefix(...).pack`` into a temporary sibling of the
output and renames it into place. Before anything is written, the environment is checked
with :func:`offpkg.conda.checks.check_packable`: the very rules the install applies, so a
bundle the target would refuse is refused here, with the same message. What conda-pack
itself refuses (editable installs, files pip deleted or replaced, a path that is no
environment) becomes one :class:`~offpkg.conda.env.CondaError` naming packages and files.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..events import Events
from .checks import check_packable, drop_conda_pack_leftovers
from .env import (BIN, CondaError, NotACondaEnvError, conda_records, editable_packages, env_platform, env_python,
                  pip_files, pip_packages, resolve_env_name)

# The formats offpkg offers (conda-pack knows more; these are the ones install_packed reads back).
FORMATS = ("tar.zst", "tar.gz", "zip", "no-archive")
_SUFFIXES = {".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".zip": "zip",
             ".no-archive": "no-archive"}


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
    if not ignore_editable and (editable := editable_packages(src)):
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

    files, left_out = drop_conda_pack_leftovers(list(env.files))
    notes += left_out
    if exclude_pip:
        drop = pip_files(src, records)
        files = [f for f in files if f.target.replace("\\", "/") not in drop]
    if exclude_pip or left_out:
        env = CondaEnv(env.prefix, files)
    # What the target's `offpkg install` would refuse is refused here, in its words.
    notes += check_packable(src, files, output.name)
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
    expected = {f.target.replace("\\", "/").split("/", 1)[0] for f in files} | {BIN}
    for entry in out.iterdir():
        if entry.name not in expected and entry.name.startswith("tmp") and entry.is_file() \
                and not entry.is_symlink() and entry.stat().st_size == 0:
            entry.unlink()
