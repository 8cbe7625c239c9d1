"""Install the conda environment of a bundle (``offpkg install BUNDLE --conda-prefix PATH``), offline.

Order: refuse an existing non-empty prefix → open the bundle (archives are
safely extracted to a temp folder) → verify it both ways, refusing on any
problem → require ``manifest.conda`` naming a verified file → check the platform
(and the CUDA build, if any) → :func:`offpkg.conda.unpack.install_packed` (safe
extraction, ``conda-unpack`` run with an interpreter that exists, no placeholder
or old prefix left, offline ``.condarc``) → install the bundle's wheels into the
prefix's python with ``--offline --no-index --require-hashes --only-binary`` →
``pip check`` when the environment has pip → receipt. Any failure removes the
new prefix (an empty folder given as prefix is left empty).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .._subprocess import isolated_env, run
from ..backends import PipBackend
from .env import host_subdir
from .unpack import install_packed
from .bundle import env_interpreter
from ..errors import (InputError, InstallError, OutputExistsError, SubprocessError, TargetMismatchError,
                     VerificationError)
from ..events import Events
from .. import ownership
from ..fsutil import remove_tree
from ..install import (check_cuda, verified, choose_target, opened_bundle, pick_installer, probe_python,
                      requirements_for, write_receipt)
from ..manifest import Manifest
from ..target import Target

__all__ = ["install_conda_bundle", "RECEIPT"]

# Written into the prefix root (never into conda-meta/, where conda expects package records only).
RECEIPT = "offpkg-receipt.json"


class NoCondaEnvError(InputError):
    """The bundle carries no conda environment."""


def install_conda_bundle(bundle: Path, prefix: Path, *, force: bool = False, python: Path | None = None,
                         events: Events | None = None, trust: Path | None = None) -> dict[str, Any]:
    """Verify ``bundle`` and install its conda environment (and its wheels) into the new ``prefix``.

    ``python`` runs ``conda-unpack`` if the environment's own interpreter cannot;
    ``force`` installs despite a failed GPU/driver check (CUDA bundles only).
    Returns what was done (the ``offpkg install --json`` payload).
    """
    events = events or Events()
    bundle = Path(bundle)
    prefix = Path(os.path.abspath(prefix))
    if not bundle.exists():
        raise InputError(f"{bundle} does not exist", hint="give the path of a bundle directory or archive")
    with ownership.locked(prefix):
        return _install_locked(bundle, prefix, force, python, events, trust)


def _install_locked(bundle: Path, prefix: Path, force: bool, python: Path | None, events: Events,
                    trust: Path | None) -> dict[str, Any]:
    _check_prefix(prefix, events)
    with opened_bundle(bundle) as bdir:
        report = verified(bdir, bundle, events, trust)
        manifest = report.manifest
        assert manifest is not None
        info = _conda_info(bundle, manifest)
        host = host_subdir()
        if info["platform"] not in (host, "noarch"):
            raise TargetMismatchError(
                f"the bundle's conda environment is for {info['platform']}, but this host is {host}; "
                "nothing was installed",
                hint=f"a packed conda environment runs only on the OS and CPU it was made on; bundle one made "
                     f"on a {host} machine")
        warnings = check_cuda(manifest, Target.host().gpu, force)
        wheels = manifest.requirement_packages
        if wheels:
            _check_python_matches(info, manifest)

        was_empty = prefix.is_dir()
        rec = ownership.begin(prefix, "create", bundle.absolute())
        try:
            rep = install_packed(bdir / info["path"], prefix, expected_platform=info["platform"], python=python,
                                 original_prefix=info.get("source_prefix"), progress=events)
        except BaseException:
            ownership.clear(prefix, rec)  # install_packed removes what it extracted
            raise
        try:
            ownership.mark(prefix, rec)
            installed, installer, ti = [], None, None
            env_py = env_interpreter(prefix)
            if wheels:
                if env_py is None:
                    raise InstallError(f"the conda environment in {prefix} has no python to install the bundle's "
                                       "wheels into")
                installed, installer, ti = _install_wheels(bdir, manifest, env_py, events)
            pip_check = _pip_check(env_py)
            write_receipt(prefix, bundle, bdir, manifest, ti, installer, installed, conda=info)
            ownership.end(prefix, rec)
        except BaseException as exc:
            remove_tree(prefix)  # this run unpacked it (install_packed refuses a non-empty prefix)
            if was_empty:
                prefix.mkdir(exist_ok=True)
            ownership.clear(prefix, rec)
            if isinstance(exc, SubprocessError):
                raise InstallError(f"installing the bundle's wheels into {prefix} failed: {exc.message}; "
                                   "the environment was removed", hint=exc.hint, details=exc.details) from None
            raise
    return {
        "prefix": str(prefix),
        "platform": rep.platform,
        "python": str(env_py) if env_py else None,
        "python_version": info.get("python"),
        "unpacked_with": rep.python,
        "members": rep.members,
        "rewritten": rep.rewritten,
        "wheels": installed,
        "backend": installer,
        "pip_check": pip_check,
        "condarc": str(rep.condarc),
        "condarc_backup": str(rep.condarc_backup) if rep.condarc_backup else None,
        "receipt": str(prefix / RECEIPT),
        "warnings": warnings,
    }


def _check_prefix(prefix: Path, events: Events) -> None:
    """Refuse an existing non-empty prefix before anything is extracted.

    A prefix is removed first only when it carries the marker of a run whose record
    says it was creating it and was killed (offpkg.ownership); never otherwise.
    """
    stale = ownership.read_record(prefix)
    if stale is not None:
        if prefix.is_dir() and not prefix.is_symlink() and ownership.made_by(prefix, stale):
            events.warn(f"removing {prefix}: an earlier offpkg run ({stale.describe()}) was creating it and "
                        "was interrupted")
            remove_tree(prefix)
        ownership.clear(prefix, stale)
    if not (prefix.exists() or prefix.is_symlink()):
        return
    if prefix.is_dir() and not prefix.is_symlink() and not any(prefix.iterdir()):
        return
    raise OutputExistsError(f"{prefix} already exists and is not an empty folder; nothing was installed",
                            hint="choose a new path for the environment, or remove the old one first")


def _conda_info(bundle: Path, manifest: Manifest) -> dict[str, Any]:
    """``manifest.conda``, checked: it must name a file the verification just hashed."""
    info = manifest.conda
    if not info:
        raise NoCondaEnvError(f"{bundle} carries no conda environment",
                              hint="install it into a venv with `offpkg install BUNDLE --venv PATH`, or make a "
                                   "conda bundle with `offpkg bundle --conda-env NAME|PREFIX`")
    path, platform = info.get("path"), info.get("platform")
    listed = {f.path for f in manifest.files}
    if not isinstance(path, str) or path not in listed:
        raise VerificationError(f"{bundle}: the manifest's conda.path {path!r} is not one of the bundle's listed "
                                "files; nothing was installed",
                                hint="the bundle is damaged or was edited; make it again")
    if not isinstance(platform, str) or not platform:
        raise VerificationError(f"{bundle}: the manifest's conda entry has no platform",
                                hint="the bundle is damaged or was edited; make it again")
    src = info.get("source_prefix")
    if src is not None and not isinstance(src, str):
        raise VerificationError(f"{bundle}: the manifest's conda.source_prefix is not a string")
    return dict(info)


def _check_python_matches(info: dict[str, Any], manifest: Manifest) -> None:
    """Before extracting: the bundle's wheels must be for the environment's Python version."""
    version = info.get("python")
    if not isinstance(version, str):
        return
    want = ".".join(version.split(".")[:2])
    have = [t.get("python", {}).get("version") for t in manifest.targets if isinstance(t, dict)]
    if have and want not in have:
        raise TargetMismatchError(f"the bundle's wheels are for Python {', '.join(map(str, have))}, but its conda "
                                  f"environment has Python {version}; nothing was installed",
                                  hint="bundle again without --target/--python-version, so offpkg probes the "
                                       "environment's python")


def _externally_managed(python: Path) -> bool:
    """Whether the environment's stdlib carries a PEP 668 EXTERNALLY-MANAGED marker."""
    root = python.parent.parent if sys.platform != "win32" else python.parent
    return any(root.glob("lib/python*/EXTERNALLY-MANAGED")) or (root / "Lib" / "EXTERNALLY-MANAGED").is_file()


def _install_wheels(bdir: Path, manifest: Manifest, env_py: Path, events: Events
                    ) -> tuple[list[str], str, int]:
    """Install the bundle's locked wheels into the prefix's interpreter, offline and hash-checked."""
    host = probe_python(env_py)
    ti = choose_target(manifest, host)
    pkgs = [p for p in manifest.requirement_packages if ti in p.targets]
    reqs = bdir / requirements_for(manifest, ti)
    with tempfile.TemporaryDirectory(prefix="offpkg-conda-install-") as wd:
        installer = pick_installer(None, bdir, manifest, Path(wd))
        if isinstance(installer, PipBackend) and not _has_pip(env_py):
            raise InstallError(f"neither uv nor pip can install into {env_py}: the environment has no pip and "
                               "no uv runs here",
                               hint="bundle with tools (the default) so the bundle carries uv, or add pip to the "
                                    "conda environment before packing it")
        events.stage("install", f"installing {len(pkgs)} wheels into the conda environment with {installer.name}")
        try:
            if _externally_managed(env_py):
                # The prefix is the one offpkg just unpacked, and these very packages were pip-installed
                # into its source: PEP 668's guard is for system pythons, not for this.
                installer.install(env_py, bdir / "wheels", reqs, Path(wd), break_system_packages=True)
            else:
                # uv installs into a non-venv interpreter named with --python without --system.
                installer.install(env_py, bdir / "wheels", reqs, Path(wd))
        finally:
            events.done("install")
    return sorted(f"{p.name}=={p.version}" for p in pkgs), installer.name, ti


def _has_pip(python: Path | None) -> bool:
    if python is None:
        return False
    return run([str(python), "-I", "-c", "import pip"], env=isolated_env(), check=False, timeout=120).returncode == 0


def _pip_check(python: Path | None) -> str:
    """``pip check`` with the environment's own pip: "ok", or why it was skipped."""
    if python is None:
        return "skipped: the environment has no python"
    if not _has_pip(python):
        return "skipped: the environment has no pip"
    with tempfile.TemporaryDirectory(prefix="offpkg-pip-check-") as home:
        run([str(python), "-Im", "pip", "check"], env=isolated_env(home=home), what="pip check",
            hint="the environment's packages are inconsistent; fix the source environment and bundle again")
    return "ok"
