"""Install a verified bundle into a new venv, with no network at all.

Order: verify (both ways) → pick the bundle target matching the chosen python →
check the GPU/driver against the bundle's CUDA variant → under the venv's lock
(offpkg.ownership), record the run and create the venv with this run's marker →
install offline with --require-hashes --only-binary → ``pip check`` → receipt and
pip.conf → remove the marker and the record. If anything fails, the venv this run
created is removed; a venv is removed later only when the marker inside names the
record of a run that was killed. An existing venv is never touched without
--upgrade, and an upgrade never marks it for deletion (see :func:`upgrade_venv`).
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

from . import __version__, ownership
from ._subprocess import isolated_env, parse_json_output, run
from .backends import Backend, get_backend
from .errors import (EnvironmentProblem, InputError, InstallError, OffpkgError, OutputExistsError, SubprocessError,
                     TargetMismatchError, VerificationError)
from .events import Events
from .fsutil import remove_tree, write_text_atomic
from .hashing import sha256_file
from .manifest import MANIFEST_NAME, Manifest
from .target import Target
from .verify import VerifyReport, verify_bundle

INCOMPLETE = ownership.MARKER  # the marker of a venv or prefix this run is creating
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
    sync: dict[str, Any] | None = None  # what an --upgrade changed (offpkg.updates.sync)

    def to_json(self) -> dict[str, Any]:
        return {"venv": str(self.venv), "python": str(self.python), "target": self.target_index,
                "packages": self.packages, "backend": self.backend, "warnings": self.warnings,
                "trust": self.verify.trust.to_json() if self.verify.trust else None,
                **({"upgrade": self.sync} if self.sync is not None else {})}


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
    data = parse_json_output(out, f"probing {python}", hint="give a working interpreter with --python "
                                                            "(one whose startup prints nothing on stdout)")
    return Target.from_probe(data, source=str(python))


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
def opened_bundle(bundle: Path, *, private: bool = False) -> Iterator[Path]:
    """A bundle directory: the directory itself, or an archive safely extracted to a temp dir.

    ``private``: a directory bundle is copied into a private temp dir first (see
    offpkg.trust.snapshot), so what is verified is what is installed, whatever
    happens to the original directory meanwhile.
    """
    if bundle.is_dir() and not private:
        yield bundle
        return
    from .archive import payload_offset, safe_extract
    from .trust.limits import bundle_limits, expectation, read_archive_manifest

    tmp = Path(tempfile.mkdtemp(prefix="offpkg-bundle-"))
    try:
        dest = tmp / "bundle"
        if bundle.is_dir():
            from .trust.snapshot import snapshot_dir

            snapshot_dir(bundle, dest)
        else:
            offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
            # Limits before work: the manifest first; only its files, at its sizes, are written.
            limits = bundle_limits()
            manifest, data = read_archive_manifest(bundle, offset, limits)
            safe_extract(bundle, dest, offset=offset,
                         expected=expectation(bundle, offset, manifest, len(data), limits),
                         max_members=limits.max_members, max_total_size=limits.max_size)
        yield dest
    finally:
        remove_tree(tmp)  # any depth: a hostile archive must not leave its tree in TMPDIR


def _pip_wheel(bundle: Path, manifest: Manifest) -> Path | None:
    for p in manifest.tool_packages:
        if p.name == "pip":
            return bundle / p.path
    return None


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


VENV_PIP_CONF = """\
# Written by offpkg {version} (never copied from a bundle): pip runs in this venv stay offline.
[global]
no-index = true
only-binary = :all:
disable-pip-version-check = true
"""


def venv_pip_conf(wheels: Path | None) -> str:
    """The venv's pip.conf, generated here: no index, and find-links to the bundle's wheels when they stay.

    The bundle's own pip.conf is never copied: whatever it says (``index-url``,
    ``trusted-host``, ``find_links``) would apply to every later pip run in the venv.
    An archive is extracted to a temporary directory that is gone after the install,
    so then only ``no-index`` is written.
    """
    text = VENV_PIP_CONF.format(version=__version__)
    if wheels is not None:
        where = str(wheels.resolve())
        # A path with a line break or control character would add lines to the config: leave it out.
        if where.isprintable():
            text += f"find-links = {where}\n"
    return text


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
    locked = [{"name": p.name, "version": p.version, "filename": p.filename, "path": p.path, "sha256": p.sha256,
               "size": p.size} for p in manifest.requirement_packages if target_index is None or target_index in p.targets]
    receipt = {
        "offpkg_version": __version__,
        "bundle": str(bundle.resolve()),
        "bundle_manifest_sha256": sha256_file(bdir / MANIFEST_NAME)[0],
        "bundle_created": manifest.created,
        "installed": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "target": target_index,
        "backend": backend,
        "packages": packages,
        # Each wheel's sha256 and size: a delta (`bundle --base RECEIPT`) and `offpkg diff` read them.
        "locked": sorted(locked, key=lambda e: e["path"]),
        "cuda": manifest.cuda,
        **extra,
    }
    write_text_atomic(where / RECEIPT, json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    return receipt


def install_bundle(bundle: Path, venv: Path, *, python: Path | None = None, upgrade: bool = False,
                   backend: str | None = None, force: bool = False, system_site_packages: bool = False,
                   keep: int | None = None, events: Events | None = None, trust: Path | None = None) -> InstallResult:
    events = events or Events()
    bundle = Path(bundle)
    venv = Path(venv).absolute()
    recovered: list[str] = []
    if upgrade:
        from .updates.sync import recover_if_needed

        recovered = recover_if_needed(venv)  # a killed upgrade may have left V mid-swap
    syncing = upgrade and (venv / "pyvenv.cfg").is_file() and not (venv / INCOMPLETE).exists()
    # An upgrade keeps the venv's own interpreter: its target is what the bundle must fit.
    python = Path(python) if python else (venv_python(venv) if syncing else Path(sys.executable))
    with opened_bundle(bundle, private=True) as bdir:
        report = verified(bdir, bundle, events, trust)
        manifest = report.manifest
        assert manifest is not None
        if manifest.delta is not None and not syncing:
            raise InputError(f"{bundle} is a delta bundle: it carries only what its base lacks and installs only "
                             "with --upgrade onto a venv installed from that base "
                             f"(base manifest sha256 {manifest.delta.base_manifest_sha256})",
                             hint="install the full bundle for a new venv, or pass --upgrade --venv with the venv "
                                  "installed from the base")
        host = probe_python(python)
        ti = choose_target(manifest, host)
        warnings = check_cuda(manifest, host.gpu, force)
        if syncing:
            return _sync(bundle, bdir, manifest, report, venv, ti, backend, keep, warnings, events, recovered)
        with ownership.locked(venv), tempfile.TemporaryDirectory(prefix="offpkg-install-") as wd:
            _clear_interrupted(venv, upgrade, events)
            installer = pick_installer(backend, bdir, manifest, Path(wd))
            job = _Job(bundle, bdir, manifest, ti, installer, Path(wd), events,
                       signed_by=report.trust.trusted_by if report.trust and report.trust.trusted else None)
            if (venv / "pyvenv.cfg").exists() and upgrade:
                upgrade_venv(venv, job)
            else:
                _refuse_existing(venv, upgrade)
                create_and_install(venv, python, job, system_site_packages)
        return InstallResult(venv, venv_python(venv), ti,
                             sum(1 for p in manifest.requirement_packages if ti in p.targets), installer.name,
                             report, warnings)


def _sync(bundle: Path, bdir: Path, manifest: Manifest, report: VerifyReport, venv: Path, ti: int,
          backend: str | None, keep: int | None, warnings: list[str], events: Events,
          recovered: list[str]) -> InstallResult:
    """``--upgrade`` of an existing venv: the atomic sync of offpkg.updates.sync."""
    from .updates.sync import sync_upgrade

    pkgs = sorted(f"{p.name}=={p.version}" for p in manifest.requirement_packages if ti in p.targets)
    with tempfile.TemporaryDirectory(prefix="offpkg-install-") as wd:
        installer = pick_installer(backend, bdir, manifest, Path(wd))
        # Generated, never the bundle's pip.conf; the bundle's own wheels/ (bdir is a private copy).
        conf = venv_pip_conf(bundle / "wheels" if bundle.is_dir() and manifest.delta is None else None)
        res = sync_upgrade(bundle=bundle, bdir=bdir, manifest=manifest, venv=venv, ti=ti, installer=installer,
                           workdir=Path(wd), keep=1 if keep is None else keep, pip_conf=conf, events=events,
                           recovered=recovered,
                           write_receipt=lambda where, **extra: write_receipt(
                               where, bundle, bdir, manifest, ti, installer.name, pkgs,
                               signed_by=report.trust.trusted_by if report.trust and report.trust.trusted else None,
                               **extra))
    return InstallResult(venv, venv_python(venv), ti, len(pkgs), installer.name, report, warnings, res.to_json())


@dataclass
class _Job:
    """One install's inputs: the opened bundle, the chosen target and backend, a private work folder."""

    bundle: Path
    bdir: Path
    manifest: Manifest
    target_index: int
    installer: Backend
    workdir: Path
    events: Events
    signed_by: Any = None  # the trust anchor that signed the bundle, for the receipt

    def run(self, venv: Path) -> None:
        """Install the target's wheels, check them, and leave pip.conf and the receipt in the venv."""
        m, ti = self.manifest, self.target_index
        self.events.stage("install", f"installing {len(m.requirement_packages)} packages with {self.installer.name}")
        self.installer.install(venv_python(venv), self.bdir / "wheels", self.bdir / requirements_for(m, ti),
                               self.workdir)
        self.events.done("install")
        self.installer.check(venv_python(venv), self.workdir)
        # The bundle's own wheels/ (bdir is a private copy that is removed): never the bundle's pip.conf.
        write_text_atomic(venv / "pip.conf", venv_pip_conf(self.bundle / "wheels" if self.bundle.is_dir() else None))
        write_receipt(venv, self.bundle, self.bdir, m, ti, self.installer.name,
                      sorted(f"{p.name}=={p.version}" for p in m.requirement_packages if ti in p.targets),
                      signed_by=self.signed_by)


def _clear_interrupted(venv: Path, upgrade: bool, events: Events) -> None:
    """Deal with the record of a run that was killed (we hold the lock, so its run is over)."""
    stale = ownership.read_record(venv)
    if stale is None:
        if ownership.record_path(venv).exists():
            events.warn(f"{ownership.record_path(venv)} is not a run record offpkg can read; left as it is")
        return
    if stale.action == "create":
        if venv.is_dir() and not venv.is_symlink() and ownership.made_by(venv, stale):
            events.warn(f"removing {venv}: an earlier offpkg run ({stale.describe()}) was creating it and "
                        "was interrupted")
            remove_tree(venv)
        elif venv.is_dir() and not venv.is_symlink() and not any(venv.iterdir()):
            os.rmdir(venv)  # that run had made only the empty folder
        ownership.clear(venv, stale)
        return
    # An interrupted upgrade: the venv holds the user's packages, some replaced. Never delete it.
    repair = f"offpkg install {stale.bundle} --venv {venv} --upgrade"
    if not upgrade:
        raise OutputExistsError(
            f"an earlier `offpkg install --upgrade` of {venv} ({stale.describe()}) was interrupted; "
            "the venv may hold a mix of old and new packages",
            hint=f"finish it with `{repair}` (the packages before that upgrade are listed in "
                 f"{ownership.record_path(venv)})")
    events.warn(f"an earlier upgrade of {venv} ({stale.describe()}) was interrupted; this upgrade repairs it")
    ownership.clear(venv, stale)


def _refuse_existing(venv: Path, upgrade: bool) -> None:
    """A venv path that exists is installed into only with --upgrade, and only if it is a venv."""
    if not (venv.exists() or venv.is_symlink()):
        return
    if upgrade:
        raise InputError(f"{venv} is not a virtual environment (no pyvenv.cfg)",
                         hint="give the path of a venv to --upgrade, or a new path to create one")
    if venv.is_dir() and not venv.is_symlink() and not any(venv.iterdir()):
        return  # an empty folder: offpkg fills it (and empties it again on failure)
    leftover = (venv / ownership.MARKER).exists()
    raise OutputExistsError(
        f"{venv} already exists", hint="pass --upgrade to install into it, or choose a new path"
        + (f"; it holds {ownership.MARKER} but offpkg has no record of making it, so offpkg will not remove it: "
           "remove it yourself if it is a leftover" if leftover else ""))


def create_and_install(venv: Path, python: Path, job: _Job, system_site_packages: bool) -> None:
    """Create ``venv`` (new, or an empty folder) and install into it; on any failure remove what this run made."""
    rec = ownership.begin(venv, "create", job.bundle.absolute())
    was_empty_folder = venv.is_dir()
    try:
        ownership.make_dir(venv, rec)
        job.events.stage("venv", f"creating {venv}")
        try:
            job.installer.create_venv(python, venv, job.workdir, pip_wheel=_pip_wheel(job.bdir, job.manifest),
                                      system_site_packages=system_site_packages)
        except SubprocessError as exc:
            if _disk_full(exc) or _low_space(venv.parent):
                raise EnvironmentProblem(f"no space left on device while creating {venv}",
                                         hint="free some space, then run the command again") from None
            raise
        job.events.done("venv")
        job.run(venv)
        ownership.end(venv, rec)
    except BaseException as exc:
        if ownership.made_by(venv, rec):
            remove_tree(venv)
            if was_empty_folder:
                venv.mkdir()  # the empty folder was the user's: give it back empty
        ownership.clear(venv, rec)
        if isinstance(exc, SubprocessError):
            raise _install_failure(exc, venv, "; the venv was removed") from None
        raise


def upgrade_venv(venv: Path, job: _Job) -> None:
    """Install the bundle into the user's existing ``venv`` (``--upgrade``), in place.

    The venv is never marked for deletion. The run record beside it lists the
    packages before the upgrade; a run killed midway leaves that record, and the
    next run says how to finish or repair (see :func:`_clear_interrupted`).
    A failed upgrade leaves the venv (pip and uv roll back the package they were
    installing) and says so. Issue D replaces this function with an atomic upgrade.
    """
    rec = ownership.begin(venv, "upgrade", job.bundle.absolute(), before=installed_distributions(venv))
    try:
        job.run(venv)
    except BaseException as exc:
        ownership.clear(venv, rec)
        if isinstance(exc, SubprocessError):
            raise _install_failure(exc, venv, "; the venv was left in place and may hold some of the bundle's "
                                              "packages: fix the cause and run the same command again") from None
        raise
    ownership.end(venv, rec)


def _install_failure(exc: SubprocessError, venv: Path, what_now: str) -> OffpkgError:
    if _disk_full(exc):
        return EnvironmentProblem(f"no space left on device while installing into {venv}{what_now}",
                                  hint="free some space, then run the command again")
    return InstallError(f"installing into {venv} failed: {exc.message}{what_now}", hint=exc.hint,
                        details=exc.details)


def installed_distributions(venv: Path) -> list[str]:
    """``name==version`` of every distribution in the venv's site-packages (read from its .dist-info folders)."""
    found = []
    for info in sorted(venv.glob("lib*/python*/site-packages/*.dist-info")) + sorted(
            venv.glob("Lib/site-packages/*.dist-info")):
        stem = info.name[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        if name and version:
            found.append(f"{name}=={version}")
    return found
