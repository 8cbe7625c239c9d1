"""Install a verified bundle into a new venv, with no network at all.

Order: verify (both ways) → pick the bundle target matching the chosen python →
check the GPU/driver against the bundle's CUDA variant → create the venv with an
"incomplete" marker → install offline with --require-hashes --only-binary →
``pip check`` → receipt and pip.conf → remove the marker. If anything fails the
venv offpkg created is removed; a venv still carrying the marker from an earlier
failed run is cleaned first. An existing venv is never touched without --upgrade.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from ._subprocess import isolated_env, run
from .backends import Backend, UvBackend, get_backend
from .errors import (EnvironmentProblem, InputError, InstallError, OffpkgError, OutputExistsError, SubprocessError,
                     TargetMismatchError, VerificationError)
from .events import Events
from .hashing import sha256_file
from .manifest import MANIFEST_NAME, Manifest
from .target import Target
from .verify import VerifyReport, verify_bundle

INCOMPLETE = ".offpkg-incomplete"
RECEIPT = "offpkg-receipt.json"


@dataclass
class InstallResult:
    venv: Path
    python: Path
    target_index: int
    packages: int
    backend: str
    verify: VerifyReport
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"venv": str(self.venv), "python": str(self.python), "target": self.target_index,
                "packages": self.packages, "backend": self.backend, "warnings": self.warnings,
                "trust": self.verify.trust.to_json() if self.verify.trust else None}


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def probe_python(python: Path) -> Target:
    """The target description of ``python`` (runs the stdlib probe with it)."""
    src = (resources.files("offpkg") / "_probe.py").read_text(encoding="utf-8")
    try:
        out = run([str(python), "-I", "-c", src], env=isolated_env(), what=f"probing {python}",
                  hint="check that --python names a working Python interpreter")
    except OffpkgError as exc:
        raise InputError(f"cannot run {python}: {exc.message}", hint="give a working interpreter with --python",
                         details=exc.details) from None
    return Target.from_probe(json.loads(out.stdout), source=str(python))


def choose_target(manifest: Manifest, host: Target) -> int:
    """The index of the bundle target this interpreter can install, or a clear error."""
    reasons = []
    ranks = host.tag_rank()
    # Pure-Python wheels fit every target: try the targets of this host's OS and arch first.
    order = sorted(range(len(manifest.targets)),
                   key=lambda i: (manifest.targets[i].get("os"), manifest.targets[i].get("arch")) != (host.os, host.arch))
    for i in order:
        tj = manifest.targets[i]
        t = Target.from_probe(tj, source=f"target {i}")
        if not host.same_interpreter_as(t):
            reasons.append(f"target {i} is {t.describe()}")
            continue
        misfit = [p.filename for p in manifest.requirement_packages
                  if i in p.targets and host.wheel_rank(p.filename, ranks) is None]
        if misfit:
            reasons.append(f"target {i} ({t.describe()}) has wheels this host cannot install: {', '.join(misfit[:3])}")
            continue
        return i
    raise TargetMismatchError(
        f"this bundle was not made for {host.describe()}: " + "; ".join(reasons),
        hint="use --python with an interpreter that matches the bundle's target, or rebuild the bundle "
             "with `offpkg bundle --target target.json` from `offpkg probe` run on this host")


@contextlib.contextmanager
def opened_bundle(bundle: Path) -> Iterator[Path]:
    """A bundle directory: the directory itself, or an archive safely extracted to a temp dir."""
    if bundle.is_dir():
        yield bundle
        return
    from .archive import payload_offset, safe_extract

    with tempfile.TemporaryDirectory(prefix="offpkg-bundle-") as tmp:
        dest = Path(tmp) / "bundle"
        offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
        safe_extract(bundle, dest, offset=offset)
        yield dest


def _pip_wheel(bundle: Path, manifest: Manifest) -> Path | None:
    for p in manifest.tool_packages:
        if p.name == "pip":
            return bundle / p.path
    return None


def create_venv(python: Path, venv: Path, bundle: Path, manifest: Manifest, system_site_packages: bool = False) -> None:
    """``python -m venv`` (pip from the interpreter's own ensurepip).

    Hosts without ensurepip need uv (create_venv_with_uv): pip from the bundle is
    installed as a package there, never run, since no code from the bundle runs.
    """
    extra = ["--system-site-packages"] if system_site_packages else []
    try:
        run([str(python), "-m", "venv", *extra, str(venv)], env=isolated_env(), what="creating the venv")
        return
    except SubprocessError as exc:
        # `python -m venv` hides ensurepip's own error: find the cause ourselves.
        if _disk_full(exc) or _low_space(venv.parent):
            shutil.rmtree(venv, ignore_errors=True)
            raise EnvironmentProblem(f"no space left on device while creating {venv}",
                                     hint="free some space, then run the command again") from None
        if _has_ensurepip(python):
            raise
    shutil.rmtree(venv, ignore_errors=True)
    raise InstallError(f"{python} has no ensurepip, so the pip backend cannot create a venv with it",
                       hint="install python3-venv on this host; or install with offpkg's own uv (--backend uv) "
                            "a bundle that carries tools/ (its pip wheel is installed, not run)")


def create_venv_with_uv(python: Path, venv: Path, pip_whl: Path, uv: UvBackend, workdir: Path,
                        system_site_packages: bool = False) -> None:
    """``python -m venv --without-pip``, then pip from the bundle's tools/ wheel, installed by offpkg's uv.

    ensurepip spends seconds (4.5 s for the gpu-ml benchmark) installing the pip it
    bundles; uv installs the bundle's pip wheel in a fraction of that, and needs no ensurepip.
    The wheel is only unpacked into the venv (like every wheel of the bundle), never run.
    """
    extra = ["--system-site-packages"] if system_site_packages else []
    try:
        run([str(python), "-m", "venv", "--without-pip", *extra, str(venv)], env=isolated_env(),
            what="creating the venv")
    except SubprocessError as exc:
        if _disk_full(exc) or _low_space(venv.parent):
            shutil.rmtree(venv, ignore_errors=True)
            raise EnvironmentProblem(f"no space left on device while creating {venv}",
                                     hint="free some space, then run the command again") from None
        raise
    # The wheel's path, not tools/ as a find-links folder: tools/ holds the uv wheel too.
    run([uv.uv, "pip", "install", "--offline", "--no-index", "--no-deps", "--python", str(venv_python(venv)),
         str(pip_whl)], env=uv._env(workdir), what="installing pip from the bundle with uv")


def _has_ensurepip(python: Path) -> bool:
    """Debian/Ubuntu pythons without python3-venv cannot import ensurepip."""
    try:
        run([str(python), "-c", "import ensurepip"], env=isolated_env(), what="checking ensurepip", timeout=60)
        return True
    except SubprocessError:
        return False


def _low_space(path: Path, floor: int = 32 << 20) -> bool:
    try:
        return shutil.disk_usage(path).free < floor
    except OSError:
        return False


def _disk_full(exc: SubprocessError) -> bool:
    return "No space left on device" in (exc.details or "") or "ENOSPC" in (exc.details or "")


def pick_installer(name: str | None, bundle: Path, manifest: Manifest, workdir: Path) -> Backend:
    """offpkg's own installer: the uv installed with offpkg (else pip), never the bundle's tools/.

    The bundle's tools/ are for install.sh on hosts without offpkg; running them here
    would run code from the bundle before (or without) any signature check.
    """
    return get_backend(name)


def requirements_for(manifest: Manifest, target_index: int) -> str:
    if len(manifest.targets) == 1:
        return "requirements.txt"
    return f"requirements/{Target.from_probe(manifest.targets[target_index]).id}.txt"


def venv_pip_conf(template: str, wheels: Path | None) -> str:
    """The bundle's pip.conf for the venv: find-links to the bundle's wheels, or none when they do not stay.

    An archive is extracted to a temporary directory that is gone after the install,
    so only ``no-index`` is kept: later pip runs in the venv stay offline.
    """
    if wheels is None:
        return "".join(line for line in template.splitlines(True) if not line.startswith("find-links"))
    return template.replace("find-links = wheels", f"find-links = {wheels.resolve()}")


def verified(bdir: Path, bundle: Path, events: Events, trust: Path | None = None) -> VerifyReport:
    """Verify an opened bundle both ways (and its signature against ``trust``); refuse, listing every
    problem, before any install step."""
    events.stage("verify", "verifying the bundle")
    try:
        report = verify_bundle(bdir, trust=trust)
    finally:
        events.done("verify")
    if not report.ok:
        raise VerificationError(f"{bundle} failed verification; nothing was installed", report.problems,
                                hint="copy the bundle again from its source; do not edit bundles by hand")
    return report


def check_cuda(manifest: Manifest, gpu: dict[str, Any] | None, force: bool) -> list[str]:
    """Refuse a host whose driver/GPU cannot run the bundle's CUDA build; with --force, warnings instead."""
    if not manifest.cuda:
        return []
    from .gpu.cuda import check_host

    problems = check_host(manifest.cuda, gpu)
    if problems and not force:
        raise TargetMismatchError("this host cannot run the bundle's CUDA build: " + "; ".join(problems),
                                  hint="rebuild with `offpkg bundle --cuda auto --target target.json` using this "
                                       "host's probe, or pass --force to install anyway")
    return [f"installing despite: {p} (--force)" for p in problems]


def write_receipt(where: Path, bundle: Path, bdir: Path, manifest: Manifest, target_index: int | None,
                  backend: str | None, packages: list[str], **extra: Any) -> dict[str, Any]:
    """Leave ``offpkg-receipt.json`` in the venv or prefix: which bundle, when, what."""
    receipt = {
        "offpkg_version": __version__,
        "bundle": str(bundle.resolve()),
        "bundle_manifest_sha256": sha256_file(bdir / MANIFEST_NAME)[0],
        "bundle_created": manifest.created,
        "installed": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "target": target_index,
        "backend": backend,
        "packages": packages,
        "cuda": manifest.cuda,
        **extra,
    }
    (where / RECEIPT).write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return receipt


def install_bundle(bundle: Path, venv: Path, *, python: Path | None = None, upgrade: bool = False,
                   backend: str | None = None, force: bool = False, system_site_packages: bool = False,
                   events: Events | None = None, trust: Path | None = None) -> InstallResult:
    events = events or Events()
    bundle = Path(bundle)
    venv = Path(venv).absolute()
    python = Path(python) if python else Path(sys.executable)
    with opened_bundle(bundle) as bdir:
        report = verified(bdir, bundle, events, trust)
        manifest = report.manifest
        assert manifest is not None
        host = probe_python(python)
        ti = choose_target(manifest, host)
        warnings = check_cuda(manifest, host.gpu, force)
        created = False
        if venv.exists():
            if (venv / INCOMPLETE).exists():
                events.warn(f"{venv} is left over from an interrupted install; removing it first")
                shutil.rmtree(venv)
            elif not upgrade and any(venv.iterdir()):
                raise OutputExistsError(f"{venv} already exists", hint="pass --upgrade to install into it, or choose a new path")
            elif upgrade and not (venv / "pyvenv.cfg").exists():
                raise InputError(f"{venv} is not a virtual environment (no pyvenv.cfg)")
        try:
            with tempfile.TemporaryDirectory(prefix="offpkg-install-") as wd:
                installer = pick_installer(backend, bdir, manifest, Path(wd))
                uv = installer if isinstance(installer, UvBackend) else None
                if not (venv / "pyvenv.cfg").exists():
                    events.stage("venv", f"creating {venv}")
                    created = True
                    pip_whl = _pip_wheel(bdir, manifest)
                    if uv is not None and pip_whl is not None and pip_whl.is_file():
                        create_venv_with_uv(python, venv, pip_whl, uv, Path(wd), system_site_packages)
                    else:
                        create_venv(python, venv, bdir, manifest, system_site_packages)
                    events.done("venv")
                (venv / INCOMPLETE).write_text(f"offpkg {__version__} install from {bundle} in progress\n")
                reqs = bdir / requirements_for(manifest, ti)
                events.stage("install", f"installing {len(manifest.requirement_packages)} packages with {installer.name}")
                installer.install(venv_python(venv), bdir / "wheels", reqs, Path(wd))
                events.done("install")
                # The same check as `pip check`; uv's takes 0.06 s where pip's takes 0.7 s.
                check = ([uv.uv, "pip", "check", "--python", str(venv_python(venv))] if uv is not None
                         else [str(venv_python(venv)), "-I", "-m", "pip", "check"])
                run(check, env=uv._env(Path(wd)) if uv is not None else isolated_env(home=wd),
                    what="pip check", hint="the bundle's requirements are inconsistent; rebuild it")
                (venv / "pip.conf").write_text(venv_pip_conf((bdir / "pip.conf").read_text(encoding="utf-8"),
                                                             bdir / "wheels" if bundle.is_dir() else None),
                                               encoding="utf-8")
                write_receipt(venv, bundle, bdir, manifest, ti, installer.name,
                              sorted(f"{p.name}=={p.version}" for p in manifest.requirement_packages if ti in p.targets),
                              signed_by=report.trust.trusted_by if report.trust and report.trust.trusted else None)
                (venv / INCOMPLETE).unlink()
        except BaseException as exc:
            if created:
                shutil.rmtree(venv, ignore_errors=True)
            if isinstance(exc, SubprocessError) and _disk_full(exc):
                raise EnvironmentProblem(f"no space left on device while installing into {venv}"
                                         + ("; the venv was removed" if created else ""),
                                         hint="free some space, then run the command again") from None
            if isinstance(exc, SubprocessError):
                raise InstallError(f"installing into {venv} failed: {exc.message}"
                                   + ("; the venv was removed" if created else ""), hint=exc.hint,
                                   details=exc.details) from None
            raise
        return InstallResult(venv, venv_python(venv), ti,
                             sum(1 for p in manifest.requirement_packages if ti in p.targets), installer.name,
                             report, warnings)
