"""A conda environment inside an offpkg bundle (``offpkg bundle --conda-env NAME|PREFIX``).

:func:`add_conda_env` packs the environment with conda-pack (through
:func:`offpkg.conda.pack.pack_env`) into a temporary folder next to the bundle's
output, and hands the archive to :func:`offpkg.bundle.build_bundle` as one of
``opts.extra["extra_files"]`` (so its path, size and sha256 are in the manifest
and SHA256SUMS like every file) with a description in ``opts.extra["conda"]``
(recorded as ``manifest.conda``).

With ``pip_as_wheels`` the distributions pip installed on top of conda are left
out of the archive and pinned (``name==version``) in ``opts.requirements``
instead, so they are resolved, downloaded and hash-locked like any other bundle;
the Python distributions conda itself provides are pinned as constraints, so the
resolved set agrees with the environment. Unless the caller chose a target, the
bundle's target is the environment's own interpreter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import conda
from ..bundle import BundleOptions
from ..errors import UsageError
from ..events import Events

__all__ = ["add_conda_env", "bundle_format", "env_interpreter", "CONDA_DIR"]

# Folder of the bundle that holds the packed environment.
CONDA_DIR = "conda"
_DIST_DIR = re.compile(r"(?:^|/)site-packages/([^/]+?)-[^/-]+\.(?:dist-info|egg-info)(?:/|$)")


def bundle_format() -> str:
    """tar.zst when conda-pack can write it here (needs ``zstandard``), else tar.gz.

    The bundle archive itself is never recompressed, so the conda part is
    compressed once, here.
    """
    try:
        from conda_pack import formats

        if importlib.util.find_spec("zstandard") is not None and hasattr(formats, "ParallelZstdFileWriter"):
            return "tar.zst"
    except ImportError:  # pragma: no cover - conda-pack is a dependency
        pass
    return "tar.gz"


def env_interpreter(prefix: Path) -> Path | None:
    """The environment's own Python interpreter, if it has one."""
    exe = Path(prefix) / ("python.exe" if sys.platform == "win32" else "bin/python")
    return exe if exe.exists() else None


def _resolve_prefix(env: str) -> Path:
    """``env`` as an existing directory (a prefix), else a conda environment name."""
    p = Path(env).expanduser()
    if p.is_dir():
        return Path(os.path.abspath(p))
    if os.sep in env or "/" in env:
        raise conda.NotACondaEnvError(f"{env} does not exist",
                                      hint="give the path of a conda environment, or its name (`conda env list`)")
    return conda.resolve_env_name(env)


def _archive_name(prefix: Path, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", prefix.name).strip("._") or "env"
    return f"{CONDA_DIR}/{stem}.{fmt}"


def _replaced_by_pip(err: conda.ModifiedEnvironmentError, pip_names: set[str]) -> bool:
    """Whether every conda package with missing files lost them to a pip-installed distribution.

    pip uninstalls the conda copy before installing its own: the conda package's
    dist-info (``site-packages/NAME-VER.dist-info/...``) is among the missing
    files, and NAME is one of the pip-installed distributions.
    """
    if not err.packages or not pip_names:
        return False
    for pkg, files in err.packages.items():
        names = {canonicalize_name(m.group(1)) for f in files if (m := _DIST_DIR.search(f))}
        names.add(canonicalize_name(pkg.split(" ", 1)[0]))
        if not names & pip_names:
            return False
    return True


def _constraints_file(prefix: Path, workdir: Path, pins: set[str]) -> Path | None:
    """A constraints file pinning the Python distributions conda installed at their versions."""
    lines = []
    for name, version in conda.conda_python_dists(prefix):
        cname = canonicalize_name(name)
        if not name or cname in pins:
            continue
        try:
            Version(version)
        except InvalidVersion:
            continue  # not a PEP 440 version: pip could not pin it either
        lines.append(f"{cname}=={version}")
    if not lines:
        return None
    path = workdir / "conda-provided-constraints.txt"
    path.write_text("# Python distributions the conda environment already provides\n" + "\n".join(lines) + "\n",
                    encoding="utf-8")
    return path


@contextlib.contextmanager
def add_conda_env(opts: BundleOptions, env: str, pip_as_wheels: bool, events: Events, *,
                  explicit_target: bool) -> Iterator[None]:
    """Pack ``env`` (a prefix path or an environment name) into the bundle ``opts`` describes.

    The packed archive lives in a temp folder beside ``opts.output`` until the
    context closes, so ``build_bundle`` must run inside it.
    """
    from ..fsutil import check_output

    check_output(Path(opts.output), opts.force)  # before packing, which takes a while
    prefix = _resolve_prefix(env)
    records = conda.conda_records(prefix)  # refuses a folder that is no conda environment, clearly
    platform = conda.env_platform(prefix)
    py_version = conda.env_python(prefix)
    pips = conda.pip_packages(prefix) if pip_as_wheels else []
    fmt = bundle_format()
    out_parent = Path(os.path.abspath(opts.output)).parent
    out_parent.mkdir(parents=True, exist_ok=True)
    # Beside the output: same filesystem as build_bundle's staging folder, so the
    # archive is hard-linked into the bundle instead of copied.
    with tempfile.TemporaryDirectory(prefix=f".{opts.output.name}.offpkg-conda-", dir=out_parent) as tmp:
        if pips:
            pinned = {canonicalize_name(n) for n, _ in pips}
            opts.requirements.extend(f"{n}=={v}" for n, v in pips)
            constraints = _constraints_file(prefix, Path(tmp), pinned)
            if constraints is not None:
                opts.constraints = [*opts.constraints, constraints]
        # Before packing (which takes a while): the wheels must fit the environment's python.
        _choose_target(opts, prefix, py_version, explicit_target)
        archive = Path(tmp) / f"env.{fmt}"
        replaced: list[str] = []
        try:
            res = conda.pack_env(prefix=prefix, output=archive, format=fmt, progress=events, exclude_pip=pip_as_wheels)
        except conda.EditablePackagesError as exc:
            # `offpkg bundle` has no --ignore-editable: an editable install cannot travel.
            exc.hint = ("reinstall them normally (`pip install .` instead of `pip install -e .`) or uninstall "
                        "them (`pip uninstall NAME`), then bundle again")
            raise
        except conda.ModifiedEnvironmentError as exc:
            pip_names = {canonicalize_name(n) for n, _ in (pips or conda.pip_packages(prefix))}
            if pip_as_wheels and _replaced_by_pip(exc, pip_names):
                # pip replaced these conda packages; its versions travel as wheels and are
                # installed over them again, exactly as in the source environment.
                replaced = sorted(exc.packages)
                res = conda.pack_env(prefix=prefix, output=archive, format=fmt, progress=events,
                                     exclude_pip=True, ignore_missing_files=True)
            else:
                # `offpkg bundle` has no --ignore-missing-files: say what works here.
                fix = ("reinstall those packages with conda (`conda install --force-reinstall NAME`, after "
                       "`pip uninstall NAME` where pip replaced them)")
                if pip_names and not pip_as_wheels:
                    exc.hint = ("bundle with --pip-as-wheels: pip's versions then travel as locked wheels and are "
                                f"installed over the conda packages again, as in this environment; or {fix}")
                else:
                    exc.hint = (f"{fix}; or pack the environment as it is with `offpkg conda pack "
                                "--ignore-missing-files` and carry that archive yourself")
                raise
        for w in res.warnings:
            if not (replaced and "--ignore-missing-files" in w):
                events.warn(f"conda environment {prefix}: {w}")
        if replaced:
            events.warn("pip replaced files of the conda packages " + ", ".join(replaced)
                        + "; their pip versions are carried as wheels and installed over them")

        rel = _archive_name(prefix, fmt)
        opts.extra.setdefault("extra_files", []).append((rel, archive))
        info: dict[str, Any] = {
            "path": rel,
            "format": fmt,
            "platform": platform,
            "source_prefix": res.source_prefix,
            "python": py_version,
            "packages": len(records),
            "files": res.files,
            "pip_as_wheels": pip_as_wheels,
            "pip_packages": [{"name": n, "version": v} for n, v in res.pip_packages],
        }
        if replaced:
            info["replaced_by_pip"] = replaced
        opts.extra["conda"] = info

        yield


def _choose_target(opts: BundleOptions, prefix: Path, py_version: str | None, explicit_target: bool) -> None:
    """Make the wheels fit the environment's interpreter (unless the caller chose the target)."""
    interp = env_interpreter(prefix)
    if interp is None or py_version is None:
        if opts.requirements:
            raise UsageError(f"the conda environment {prefix} has no Python, so the bundle's wheels could not be "
                             "installed into it",
                             hint="install python into the environment, or bundle the Python packages separately "
                                  "(`offpkg bundle` without --conda-env, `offpkg install --venv`)")
        return
    if explicit_target:
        if opts.requirements:
            want = ".".join(py_version.split(".")[:2])
            if not any(t.python_version == want for t in opts.targets):
                raise UsageError(f"the conda environment has Python {py_version}, but no --target/--python-version "
                                 f"is {want}: its wheels could not be installed into it",
                                 hint="leave the target out (offpkg then probes the environment's python), "
                                      f"or give --python-version {want}")
        return
    from ..install import probe_python

    opts.targets = [probe_python(interp)]
