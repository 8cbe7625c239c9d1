"""Prove a bundle installs offline and works: the smoke test of ``--verify`` / ``verify --smoke``.

Installs the bundle into a throwaway venv inside a network namespace with no
network (``unshare -n``, or ``unshare -rn`` for unprivileged users) where the
kernel allows it, runs ``pip check``, then the stack's smoke script (imports,
``torch.version.cuda`` against the chosen variant, a tiny BERT forward and
backward pass, a GPU matmul where a GPU exists) or, for bundles without a stack,
imports every top-level requirement. The result is recorded in the manifest.

``prove_targets`` (``bundle --verify``) does this for every target of the bundle with an
interpreter of this host that matches it (``pythons.matching_interpreter``: pyenv, ``uv
python find``, ``pythonX.Y``); a target with none is recorded as unverified, never as proven.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from . import __version__
from ._subprocess import isolated_env, run
from .errors import SubprocessError, VerificationError
from .manifest import Manifest


def network_isolation() -> list[str]:
    """argv prefix that runs a command with no network, or [] where the kernel refuses."""
    unshare = shutil.which("unshare")
    if not unshare:
        return []
    for flags in (["-n"], ["-rn"]):
        try:
            if subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10).returncode == 0:
                return [unshare, *flags]
        except (OSError, subprocess.SubprocessError):
            continue
    return []


def _import_names(wheel: Path) -> list[str]:
    """Top-level importable names of a wheel (top_level.txt, else RECORD)."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for n in names:
            if n.endswith(".dist-info/top_level.txt"):
                return sorted({line.strip() for line in z.read(n).decode().splitlines()
                               if line.strip() and not line.startswith("_")})
        tops = set()
        for n in names:
            first = n.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")) or first.startswith("_"):
                continue
            if "/" in n and n.split("/", 1)[0].isidentifier():
                tops.add(first)
            elif n.endswith(".py") and "/" not in n:
                tops.add(n[:-3])
        return sorted(tops)


def smoke_test(bundle_dir: Path, manifest: Manifest, *, stack: str | None = None,
               python: Path | None = None, system_site_packages: bool = False) -> dict[str, Any]:
    """Install ``bundle_dir`` into a throwaway venv offline and run the checks; raises on failure."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    iso = network_isolation()
    checks: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "verified": False, "offpkg_version": __version__,
        "when": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "where": {"host": platform.node(), "python": platform.python_version(), "machine": platform.machine()},
        "network_isolation": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(iso)) or "none (offline flags only)",
        "stack": stack, "checks": checks,
    }
    with tempfile.TemporaryDirectory(prefix="offpkg-smoke-") as tmp:
        venv = Path(tmp) / "venv"
        argv = [*iso, sys.executable, "-m", "offpkg", "install", str(bundle_dir), "--venv", str(venv), "--json"]
        if manifest.conda is not None:
            # The whole thing: unpack + relocate the conda env, then the wheels, all with no network.
            argv = [*iso, sys.executable, "-m", "offpkg", "install", str(bundle_dir), "--conda-prefix", str(venv),
                    "--json"]
        if python:
            argv += ["--python", str(python)]
        if system_site_packages:
            argv.append("--system-site-packages")
        try:
            # The caller verified this bundle (and its signature, where a trust anchor is set) or
            # has just built it, unsigned until the smoke test's record is in the manifest.
            out = run(argv, env=isolated_env({"OFFPKG_TRUST": ""}, home=tmp),
                      what="installing the bundle offline into a throwaway venv", timeout=SMOKE_TIMEOUT)
            info = json.loads(out.stdout)
            checks.append({"name": "offline install + pip check", "ok": True,
                           "backend": info.get("backend") if isinstance(info, dict) else None})
        except ValueError:
            checks.append({"name": "offline install + pip check", "ok": False,
                           "output": "offpkg install --json printed no JSON document"})
            result["error"] = "the offline install gave no result"
            return _finish(result)
        except SubprocessError as exc:
            checks.append({"name": "offline install + pip check", "ok": False, "output": (exc.details or "")[-2000:]})
            result["error"] = "the bundle did not install offline"
            return _finish(result)
        py = venv / "bin" / "python"
        if stack:
            from .stacks import get_stack

            st = get_stack(stack)
            script = st.write_smoke(Path(tmp))
            expect = (manifest.cuda or {}).get("cuda") or "none"
            rc, report = _run_check([*iso, *st.smoke_argv(py, script, str(expect))], tmp, SMOKE_TIMEOUT)
            checks.append({"name": f"{st.name} smoke test", "ok": rc == 0, "report": report})
        else:
            wanted = {canonicalize_name(Requirement(r).name) for r in manifest.requirements}
            names: list[str] = []
            for p in manifest.requirement_packages:
                if p.name in wanted and 0 in p.targets:
                    names += _import_names(bundle_dir / p.path)
            code = ("import importlib, json, sys\nres={}\nfor n in sys.argv[1:]:\n"
                    "    try:\n        importlib.import_module(n); res[n]='ok'\n"
                    "    except Exception as e:\n        res[n]=type(e).__name__+': '+str(e)[:200]\n"
                    "print(json.dumps(res))\nsys.exit(0 if all(v=='ok' for v in res.values()) else 1)\n")
            rc, imports = _run_check([*iso, str(py), "-c", code, *names], tmp, IMPORT_TIMEOUT)
            checks.append({"name": "imports", "ok": rc == 0, "imports": imports})
    result["verified"] = all(c["ok"] for c in checks)
    return _finish(result)


# Seconds a smoke script (a model forward pass on a CPU) and the import check may take.
SMOKE_TIMEOUT = 1800.0
IMPORT_TIMEOUT = 600.0


def _run_check(argv: list[str], home: str, timeout: float) -> tuple[int | None, dict[str, Any]]:
    """Run one check script; its exit code (None on a timeout) and its report (its last stdout line, JSON).

    A check that hangs or prints something that is not JSON is a failed check with
    its output kept, never a crash of offpkg.
    """
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=isolated_env(home=home), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        return None, {"error": f"did not finish within {timeout:.0f} s", "output": text[-2000:]}
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        if not isinstance(report, dict):
            raise ValueError("not an object")
    except (ValueError, IndexError):
        report = {"output": (proc.stdout + proc.stderr)[-2000:]}
    return proc.returncode, report


def prove_targets(bundle_dir: Path, manifest: Manifest, *, stack: str | None = None) -> dict[str, Any]:
    """The verification record of ``bundle --verify``: each target proven with its own python.

    The record keeps the single-target shape (``verified``, ``checks``, ...) and adds
    ``targets``: one entry per bundle target with ``status`` verified, failed or
    unverified (no matching interpreter here: nothing was run, nothing is claimed).
    ``verified`` is true only when every target was proven.
    """
    if manifest.conda is not None:  # the conda env brings its own python
        return smoke_test(bundle_dir, manifest, stack=stack)
    from .pythons import matching_interpreter
    from .target import Target

    per: list[dict[str, Any]] = []
    record: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = []
    many = len(manifest.targets) > 1
    for i, tj in enumerate(manifest.targets):
        target = Target.from_probe(tj, source=f"target {i}")
        exe, host, why = matching_interpreter(manifest, i)
        entry: dict[str, Any] = {"target": i, "id": target.id, "describe": target.describe()}
        if exe is None or host is None:
            per.append({**entry, "status": "unverified", "verified": False, "python": None,
                        "reason": why + "; nothing was installed or run for this target"})
            continue
        res = smoke_test(bundle_dir, manifest, stack=stack, python=exe)
        record = record or res
        checks += [dict(c, name=f"target {i}: {c['name']}") if many else c for c in res["checks"]]
        per.append({**entry, "status": "verified" if res["verified"] else "failed", "verified": res["verified"],
                    "python": str(exe), "python_version": host.full_version or host.python_version,
                    **({"error": res["error"]} if "error" in res else {})})
    if record is None:  # no target could be tried on this host
        record = {"verified": False, "offpkg_version": __version__,
                  "when": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "where": {"host": platform.node(), "python": platform.python_version(), "machine": platform.machine()},
                  "network_isolation": "none (nothing was run)", "stack": stack}
    record = {k: v for k, v in record.items() if k not in ("error", "checks", "verified")}
    record["checks"] = checks
    record["targets"] = per
    failed = [t for t in per if t["status"] == "failed"]
    if failed:
        record["error"] = "; ".join(f"target {t['target']}: {t.get('error') or 'a check failed'}" for t in failed)
    record["verified"] = bool(per) and all(t["verified"] for t in per)
    return record


def _targets(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-target entries of a record (read from a bundle: anything else is ignored)."""
    targets = (record or {}).get("targets")
    return [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []


def unverified_targets(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The targets a verification record marks unverified (no interpreter to prove them with)."""
    return [t for t in _targets(record) if t.get("status") == "unverified"]


def verified_label(record: dict[str, Any] | None) -> str:
    """yes / partly / no (nothing could be run here) / NO (a check failed) for a verification record."""
    if not record:
        return "not smoke-tested"
    if record.get("verified") is True:
        return "yes"
    checks = record.get("checks")
    if record.get("error") or not isinstance(checks, list) or not unverified_targets(record) \
            or any(not (isinstance(c, dict) and c.get("ok")) for c in checks):
        return "NO"
    if any(t.get("status") == "verified" for t in _targets(record)):
        return "partly: some targets have no matching interpreter on the build host"
    return "no: no interpreter on the build host matches the target (nothing was run)"


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    result["verified"] = bool(result["checks"]) and all(c["ok"] for c in result["checks"]) and "error" not in result
    return result


def require_verified(result: dict[str, Any]) -> dict[str, Any]:
    """The one meaning of ``bundle --verify``: a failed check raises, so the bundle is not written.

    Targets with no matching interpreter on this host are reported unverified (a
    warning), not failed: nothing was run for them.
    """
    failed = [c for c in result.get("checks", []) if not (isinstance(c, dict) and c.get("ok"))]
    if failed or result.get("error") or (not result.get("verified") and not unverified_targets(result)):
        failed = [c["name"] for c in result["checks"] if not c["ok"]] or [result.get("error", "unknown")]
        raise VerificationError("the smoke test failed: " + ", ".join(failed),
                                [json.dumps(c, default=str)[:1500] for c in result["checks"] if not c["ok"]],
                                hint="the bundle was not written (nothing at the output path); fix the requirements, "
                                     "or bundle without --verify and run `offpkg verify --smoke` to investigate")
    return result
