"""``install --upgrade`` as an atomic sync: build the new state beside the venv, then swap.

1. Under the venv's lock, finish or undo whatever a crashed run left (:func:`recover`).
2. Clone the venv with hard links into a staging sibling (cheap: no file is copied).
3. In the clone: uninstall what the lock no longer lists and what changes; give every
   file a wheel is about to write a private copy (so nothing the old state shares by
   hard link is ever written in place); install the new and changed wheels with
   ``--no-deps --require-hashes`` from the bundle, offline.
4. ``pip check``, and the stack's smoke test where the bundle has one.
5. Console scripts just written name the clone's path: rewrite them (and their RECORD
   lines) to the venv's own path, which the clone is about to take.
6. Swap atomically (``renameat2(RENAME_EXCHANGE)``); the old state becomes generation N,
   older generations beyond ``keep`` are dropped.

Until step 6 the venv is not touched at all, so any failure, or a kill -9, leaves it
exactly as it was. Paths stay valid because the clone is only ever used at the venv's
own path: the old state's scripts also name that path, which is why a rollback is a
rename back (see :mod:`offpkg.updates.rollback`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .._subprocess import isolated_env, run
from ..errors import InputError, InstallError, OffpkgError, SubprocessError, TargetMismatchError
from ..events import Events
from ..manifest import Manifest, Package
from . import state
from .state import Layout, crash_point
from .venvfiles import privatize, repoint_scripts, uninstall, wheel_destinations

RECEIPT = "offpkg-receipt.json"
# Installed by `python -m venv` itself, not by a bundle: a sync keeps them unless an old lock listed them.
SEEDS = frozenset({"pip", "setuptools", "wheel"})


class BaseMismatchError(TargetMismatchError):
    """A delta bundle offered to a venv that was not installed from its base."""


@dataclass
class SyncPlan:
    install: list[Package]
    remove: list[str]
    unchanged: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"installed": sorted(f"{p.name}=={p.version}" for p in self.install), "removed": sorted(self.remove),
                "unchanged": len(self.unchanged)}


@dataclass
class SyncResult:
    plan: SyncPlan
    generation: Path | None
    generations: list[Path] = field(default_factory=list)
    kept_bytes: int = 0
    swap: str = "exchange"
    recovered: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "generation": str(self.generation) if self.generation else None,
                "generations_kept": [str(g) for g in self.generations], "kept_bytes": self.kept_bytes,
                "swap": self.swap, "recovered": self.recovered}


# ------------------------------------------------------------------ reading a venv

def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages")) or sorted(venv.glob("Lib/site-packages"))
    if not found:
        raise InputError(f"{venv} has no site-packages directory: it is not a usable virtual environment")
    return found[0]


def installed(venv: Path) -> dict[str, str]:
    """{canonical name: version} of the distributions installed in the venv (from their .dist-info)."""
    return {name: version for name, (version, _) in installed_dirs(venv).items()}


def installed_dirs(venv: Path) -> dict[str, tuple[str, Path]]:
    """{canonical name: (version, its .dist-info folder)} of the venv's distributions."""
    out: dict[str, tuple[str, Path]] = {}
    for di in site_packages(venv).glob("*.dist-info"):
        name = version = None
        try:
            with open(di / "METADATA", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break
                    if line.startswith("Name:"):
                        name = line[5:].strip()
                    elif line.startswith("Version:"):
                        version = line[8:].strip()
        except OSError:
            continue
        if name and version:
            out[canonicalize_name(name)] = (version, di)
    return out


def read_receipt(venv: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((venv / RECEIPT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def state_id(venv: Path) -> str | None:
    """The identity of a venv state: the sha256 of its receipt (every install or upgrade writes a new one)."""
    try:
        return hashlib.sha256((venv / RECEIPT).read_bytes()).hexdigest()
    except OSError:
        return None


def check_base(manifest: Manifest, venv: Path, receipt: dict[str, Any] | None) -> None:
    """A delta applies only to a venv whose receipt names its base; refuse clearly otherwise."""
    if manifest.delta is None:
        return
    need = manifest.delta.base_manifest_sha256
    have = (receipt or {}).get("bundle_manifest_sha256")
    if have != need:
        actual = f"a venv installed from the bundle whose manifest sha256 is {have}" if have else \
            "no offpkg receipt (it was not installed by offpkg)"
        raise BaseMismatchError(
            f"this delta bundle applies only to a venv installed from its base (manifest sha256 {need}, created "
            f"{manifest.delta.base_created or 'unknown'}); {venv} has {actual}; nothing was changed",
            hint="upgrade with the full bundle instead, or with a delta built with --base from this venv's receipt "
                 f"({venv / RECEIPT})")


def _same_version(a: str | None, b: str) -> bool:
    """PEP 440 equality (METADATA may spell a version differently from the wheel's file name)."""
    if a is None:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def plan_sync(manifest: Manifest, ti: int, venv: Path, receipt: dict[str, Any] | None) -> SyncPlan:
    have = installed(venv)
    old_locked = {canonicalize_name(str(e.get("name"))): e for e in (receipt or {}).get("locked") or []
                  if isinstance(e, dict)}
    provided = set(manifest.delta.provided) if manifest.delta else set()
    want = {p.name: p for p in manifest.requirement_packages if ti in p.targets}
    install, unchanged, missing = [], [], []
    for name, p in sorted(want.items()):
        old = old_locked.get(name)
        same = _same_version(have.get(name), p.version) and (
            old is None or not _same_version(str(old.get("version")), p.version) or old.get("sha256") == p.sha256)
        if same:
            unchanged.append(name)
        elif p.path in provided:
            missing.append(f"{name}=={p.version}" + (f" (it has {have[name]})" if name in have else ""))
        else:
            install.append(p)
    if missing:
        raise BaseMismatchError(
            f"{venv} does not hold what this delta's base provided: {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + "; nothing was changed",
            hint="the venv was changed after it was installed; upgrade it with the full bundle instead")
    seeds = SEEDS - set(old_locked)
    remove = sorted(n for n in have if n not in want and n not in seeds)
    return SyncPlan(install, remove, unchanged)


def _installer_argv(installer: Any, python: Path, wheels: Path, reqs: Path, workdir: Path) -> tuple[list[str], dict]:
    from ..backends import UvBackend

    if isinstance(installer, UvBackend):
        return ([installer.uv, "pip", "install", "--offline", "--no-index", "--find-links", str(wheels),
                 "--require-hashes", "--only-binary", ":all:", "--no-deps", "--python", str(python), "-r", str(reqs)],
                installer._env(workdir))
    return ([str(python), "-Im", "pip", "install", "--no-index", "--find-links", str(wheels), "--require-hashes",
             "--only-binary", ":all:", "--no-deps", "--no-cache-dir", "--no-input", "-r", str(reqs)],
            isolated_env(home=str(workdir)))


def _uninstall(installer: Any, python: Path, names: list[str], workdir: Path) -> None:
    from ..backends import UvBackend

    if not names:
        return
    if isinstance(installer, UvBackend):
        run([installer.uv, "pip", "uninstall", "--python", str(python), *names], env=installer._env(workdir),
            what="removing packages the new lock drops or changes (uv)")
    else:
        run([str(python), "-Im", "pip", "uninstall", "-y", "--no-input", *names], env=isolated_env(home=str(workdir)),
            what="removing packages the new lock drops or changes (pip)")


def pip_check(installer: Any, python: Path, workdir: Path) -> None:
    from ..backends import UvBackend

    argv = ([installer.uv, "pip", "check", "--python", str(python)] if isinstance(installer, UvBackend)
            else [str(python), "-m", "pip", "check"])
    env = installer._env(workdir) if isinstance(installer, UvBackend) else isolated_env(home=str(workdir))
    run(argv, env=env, what="pip check of the upgraded state",
        hint="the new lock leaves a requirement unmet in this venv (see above); the venv was not changed")


def smoke(manifest: Manifest, python: Path, workdir: Path) -> None:
    """The stack's smoke script with the staged interpreter, where the bundle names a stack."""
    stack = manifest.extra.get("stack")
    if not stack:
        return
    import subprocess

    from ..stacks import get_stack

    st = get_stack(str(stack))
    script = st.write_smoke(workdir)
    expect = (manifest.cuda or {}).get("cuda") or "none"
    proc = subprocess.run(st.smoke_argv(python, script, str(expect)), capture_output=True, text=True,
                          env=isolated_env(home=str(workdir)), timeout=1800)
    if proc.returncode != 0:
        raise InstallError(f"the {st.name} smoke test failed on the upgraded state; the venv was not changed",
                           details=(proc.stdout + proc.stderr)[-3000:])


# ------------------------------------------------------------------ recovery

def recover(layout: Layout) -> list[str]:
    """Finish or undo what a killed upgrade or rollback left (the caller holds the lock). Returns what it did."""
    done: list[str] = []
    j = state.read_journal(layout)
    if j is not None:
        stage = layout.parent / str(j.get("stage", "")) if j.get("stage") else None
        if j.get("op") == "upgrade" and stage is not None:
            gen = layout.parent / str(j.get("gen"))
            vid = state_id(layout.venv) if layout.venv.exists() else None
            if not layout.venv.exists() and stage.exists() and j.get("phase") == "swap":
                os.rename(stage, layout.venv)  # the two-rename swap stopped half-way: complete it
                done.append("completed an interrupted upgrade")
            elif vid is not None and vid == j.get("new_id"):
                if stage.exists():
                    os.rename(stage, gen)  # swapped; the old state still sits under the stage's name
                done.append("finished an interrupted upgrade (kept the earlier state)")
            elif stage.exists():
                state.remove_tree(stage, layout)
                done.append("discarded an unfinished upgrade (the venv was not changed)")
        elif j.get("op") == "rollback":
            gen = layout.parent / str(j.get("gen"))
            if not layout.venv.exists() and gen.exists():
                os.rename(gen, layout.venv)  # the two-rename rollback stopped half-way: complete it
                done.append("completed an interrupted rollback")
            elif layout.venv.exists() and state_id(layout.venv) != j.get("undone_id") and gen.exists():
                state.remove_tree(gen, layout)  # swapped: the gen's name holds the state rolled back from
                done.append("finished an interrupted rollback")
        state.clear_journal(layout)
    for p in layout.leftovers("stage"):
        state.remove_tree(p, layout)
        done.append(f"removed {p.name}, left by a killed run")
    for p in layout.leftovers("trash"):
        shutil.rmtree(p, ignore_errors=True)
    return done


def recover_if_needed(venv: Path) -> list[str]:
    """Before deciding what to do with ``venv``: finish or undo a killed upgrade or rollback of it, if any."""
    layout = Layout.of(venv)
    if not layout.parent.is_dir():
        return []
    if state.read_journal(layout) is None and not layout.leftovers("stage") and not layout.leftovers("trash"):
        return []
    with state.VenvLock(layout):
        return recover(layout)


def swap_in(layout: Layout, stage: Path, gen: Path) -> str:
    """Make ``stage`` the venv and the venv ``gen``; atomic where renameat2 exists."""
    crash_point("before-swap")
    if state.exchange(stage, layout.venv):
        crash_point("swapped")
        os.rename(stage, gen)
        how = "exchange"
    else:
        os.rename(layout.venv, gen)
        crash_point("half-swapped")
        os.rename(stage, layout.venv)
        how = "rename"
    state.fsync_dir(layout.parent)
    return how


def prune(layout: Layout, keep: int) -> list[Path]:
    gens = layout.generations()
    for _, p in gens[:max(0, len(gens) - keep)]:
        state.discard(p, layout)
    return [p for _, p in layout.generations()]


# ------------------------------------------------------------------ the upgrade

def sync_upgrade(*, bundle: Path, bdir: Path, manifest: Manifest, venv: Path, ti: int, installer: Any,
                 workdir: Path, keep: int, write_receipt: Any, pip_conf: str, events: Events,
                 recovered: list[str] | None = None) -> SyncResult:
    """Upgrade ``venv`` to exactly the bundle's lock for target ``ti``, atomically (see the module docstring)."""
    layout = Layout.of(venv)
    if layout.venv.is_symlink():
        raise InputError(f"{venv} is a symbolic link; upgrade it by its real path ({venv.resolve()})")
    if os.name == "nt":
        raise InputError("atomic upgrades are not supported on Windows yet; install the bundle into a new venv")
    with state.VenvLock(layout):
        recovered = (recovered or []) + recover(layout)
        receipt = read_receipt(layout.venv)
        this = hashlib.sha256((bdir / "offpkg.json").read_bytes()).hexdigest()
        if receipt and receipt.get("bundle_manifest_sha256") == this and receipt.get("target") == ti:
            # Already this bundle's state (a rerun after a crash that finished the swap): nothing to do.
            plan = SyncPlan([], [], sorted(installed(layout.venv)))
            kept = [p for _, p in layout.generations()]
            gen = kept[-1] if kept else None
            return SyncResult(plan, gen, kept, sum(state.unique_bytes(p) for p in kept), "none", recovered)
        check_base(manifest, layout.venv, receipt)
        plan = plan_sync(manifest, ti, layout.venv, receipt)
        old_id = state_id(layout.venv)
        stage = layout.stage()
        gens = layout.generations()
        gen = layout.generation((gens[-1][0] + 1) if gens else 1)
        state.write_journal(layout, op="upgrade", phase="build", stage=stage.name, gen=gen.name, old_id=old_id)
        try:
            events.stage("clone", f"staging the upgrade beside {layout.venv} (hard links)")
            state.clone_tree(layout.venv, stage)
            events.done("clone")
            crash_point("cloned")
            py = stage / "bin" / "python"
            site = site_packages(stage)
            have = installed_dirs(stage)
            gone = sorted((set(plan.remove) | {p.name for p in plan.install}) & set(have))
            kept_bytes, no_record = uninstall(stage, site, [have[n][1] for n in gone])
            # A distribution without a RECORD: its installer knows what it wrote.
            _uninstall(installer, py, [n for n in gone if have[n][1] in no_record], workdir)
            crash_point("uninstalled")
            if plan.install:
                dests: set[Path] = set()
                for p in plan.install:
                    dests |= wheel_destinations(bdir / p.path, stage, site)
                kept_bytes += privatize(dests)
                reqs = workdir / "sync-requirements.txt"
                reqs.write_text("".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in plan.install),
                                encoding="utf-8")
                events.stage("install", f"installing {len(plan.install)} new or changed packages with {installer.name}")
                argv, env = _installer_argv(installer, py, bdir / "wheels", reqs, workdir)
                run(argv, env=env, what=f"installing with {installer.name}")
                events.done("install")
            crash_point("installed")
            events.stage("check", "pip check" + (" and smoke test" if manifest.extra.get("stack") else ""))
            pip_check(installer, py, workdir)
            smoke(manifest, py, workdir)
            events.done("check")
            crash_point("checked")
            repoint_scripts(stage, layout.venv, site, [p.name for p in plan.install])
            for name in (RECEIPT, "pip.conf"):
                (stage / name).unlink(missing_ok=True)  # never write through a link the old state shares
            (stage / "pip.conf").write_text(pip_conf, encoding="utf-8")
            write_receipt(stage, upgraded_from=receipt.get("bundle_manifest_sha256") if receipt else None,
                          state_uuid=str(uuid.uuid4()))
            new_id = state_id(stage)
            state.write_journal(layout, op="upgrade", phase="swap", stage=stage.name, gen=gen.name, old_id=old_id,
                                new_id=new_id)
            how = swap_in(layout, stage, gen)
        except BaseException as exc:
            if stage.exists() and state_id(layout.venv) == old_id:
                state.remove_tree(stage, layout)
            state.clear_journal(layout) if layout.venv.exists() else None
            if isinstance(exc, SubprocessError):
                raise InstallError(f"upgrading {layout.venv} failed: {exc.message}; the venv was not changed",
                                   hint=exc.hint, details=exc.details) from None
            if isinstance(exc, OffpkgError):
                raise
            if isinstance(exc, OSError):
                raise InstallError(f"upgrading {layout.venv} failed: {exc}; the venv was not changed") from None
            raise
        crash_point("generation-kept")
        kept = prune(layout, keep)
        state.clear_journal(layout)
        # The new generation's own bytes are known (what was unlinked or privatized); older ones are measured.
        older = sum(state.unique_bytes(p) for p in kept if p != gen)
        return SyncResult(plan, gen if keep > 0 else None, kept, older + (kept_bytes if gen in kept else 0), how,
                          recovered)

