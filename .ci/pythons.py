#!/usr/bin/env python3
"""CI: the offpkg CLI round trip on every supported interpreter other than the default one.

For each interpreter (OFFPKG_CI_PYTHONS, a space- or os.pathsep-separated list of
executables; else every pyenv version that requires-python admits): a fresh venv, offpkg
installed from one wheel built once, then against a local PEP 503 index on 127.0.0.1
(tiny real packages from tests/pkgfactory.py, served by the stdlib's http.server):

    bundle (--verify: proven with this very interpreter) → verify → inspect → probe →
    install under `unshare -n` → install.sh under `unshare -n` → the import works offline.

Why a script and not nox: the round trip needs one wheel, one index server and `unshare -n`
shared by every interpreter; nox would add a dependency fetched in CI for what is here a
loop over interpreters, and its per-session venvs are one line each below. Two interpreters
run at a time (the CI machine has two cores; the work is mostly waiting on subprocesses).

Exits non-zero if any step fails on any interpreter, if an interpreter named in
OFFPKG_CI_PYTHONS does not run, or (under CI=true) if the offline half cannot be proven.
Prints the matrix with each step's time.
"""

from __future__ import annotations

import functools
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from pkgfactory import Dist, build_sdist, build_wheel, write_simple_index  # noqa: E402

STEPS = ["venv+install", "bundle --verify", "verify", "inspect", "probe", "install (unshare -n)",
         "install.sh (unshare -n)"]


def requires_python_floor() -> tuple[int, int]:
    text = (REPO / "pyproject.toml").read_text()
    m = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text)
    return (int(m.group(1)), int(m.group(2))) if m else (3, 9)


def version_of(py: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    a, b = out.stdout.strip().split(".")
    return int(a), int(b)


def interpreters() -> tuple[list[tuple[str, tuple[int, int]]], list[str]]:
    """(interpreters to test, problems). The default python3 is left out: the suite ran on it."""
    problems: list[str] = []
    default = version_of(shutil.which("python3") or sys.executable)
    named = os.environ.get("OFFPKG_CI_PYTHONS", "").replace(os.pathsep, " ").split()
    if named:
        cands = named
    else:
        root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
        cands = sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3")))
    floor = requires_python_floor()
    out: dict[tuple[int, int], str] = {}
    for py in cands:
        v = version_of(py)
        if v is None:
            if named:
                problems.append(f"{py}: does not run")
            continue
        if v < floor or v == default or v in out:
            continue
        out[v] = py
    return sorted(((p, v) for v, p in out.items()), key=lambda x: x[1]), problems


def offline_prefix() -> list[str] | None:
    exe = shutil.which("unshare")
    for flags in (["-n"], ["-rn"]):
        if exe and subprocess.run([exe, *flags, "true"], capture_output=True).returncode == 0:
            return [exe, *flags]
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def start_index(root: Path, pythons: list[str]) -> str:
    """Tiny packages (a dependency chain and an sdist-only one) plus each interpreter's own
    pip wheel for the bundles' tools/, on 127.0.0.1."""
    files = root / "files"
    build_wheel(Dist("rtapp", "1.0", ["rtlib>=1"]), files)
    build_wheel(Dist("rtlib", "1.1"), files)
    build_sdist(Dist("rtsdist", "0.3"), files)
    for py in pythons:
        out = subprocess.run([py, "-c", "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))"],
                             capture_output=True, text=True)
        for whl in Path(out.stdout.strip() or "/nonexistent", "_bundled").glob("pip-*.whl"):
            shutil.copy(whl, files / whl.name)
    write_simple_index(files, root)
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/simple"


def round_trip(py: str, version: tuple[int, int], wheel: Path, index: str, work: Path,
               offline: list[str] | None) -> dict:
    """Every step for one interpreter; stops at the first failure (the later steps need it)."""
    res: dict = {"python": py, "version": "%d.%d" % version, "steps": {}, "error": None}
    work.mkdir(parents=True)
    venv = work / "venv"
    home = work / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               OFFPKG_CACHE_DIR=str(work / "cache"), NO_COLOR="1", PYTHONUTF8="1")
    off_env = dict(env, PIP_CONFIG_FILE=os.devnull)  # offpkg's own steps: no user/site pip config
    offpkg = [str(venv / "bin" / "offpkg")]
    bundle = work / "b.tar"
    unpacked = work / "unpacked"

    def step(name: str, argv: list[str], *, environ: dict | None = None, check=None) -> bool:
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=environ or off_env, cwd=work, timeout=1200)
        ok = proc.returncode == 0
        detail = ""
        if ok and check is not None:
            try:
                detail = check(proc) or ""
            except Exception as exc:  # noqa: BLE001 - reported in the matrix
                ok, detail = False, f"check failed: {exc}"
        res["steps"][name] = {"ok": ok, "seconds": round(time.monotonic() - t0, 1)}
        if not ok:
            res["error"] = f"{name}: {' '.join(argv)}\n{detail}\n{proc.stderr[-2000:]}\n{proc.stdout[-1000:]}"
        return ok

    def bundle_ok(p: subprocess.CompletedProcess) -> str:
        d = json.loads(p.stdout)
        v = d["verification"]
        assert d["ok"] and v["verified"], v
        assert v["targets"][0]["python_version"].startswith(res["version"] + "."), v["targets"]
        return ""

    def probe_ok(p: subprocess.CompletedProcess) -> str:
        d = json.loads(p.stdout)["target"]
        assert d["python"]["version"] == res["version"], d["python"]
        return ""

    def inspect_ok(p: subprocess.CompletedProcess) -> str:
        d = json.loads(p.stdout)
        assert d["verification"]["verified"] and sorted(d["requirements"]) == ["rtapp", "rtsdist"], d
        return ""

    imports = "import rtapp, rtlib, rtsdist, sys; print(sys.version)"
    steps = [
        ("venv+install", ["sh", "-c", f'"$0" -m venv "$1" && "$1/bin/python" -m pip install -q "$2"',
                          py, str(venv), str(wheel)], env, None),
        ("bundle --verify", [*offpkg, "bundle", "rtapp", "rtsdist", "--index-url", index, "-o", str(bundle),
                             "--verify", "--json"], None, bundle_ok),
        ("verify", [*offpkg, "verify", str(bundle)], None, None),
        ("inspect", [*offpkg, "inspect", str(bundle), "--json"], None, inspect_ok),
        ("probe", [*offpkg, "probe", "--json"], None, probe_ok),
    ]
    for name, argv, environ, check in steps:
        if not step(name, argv, environ=environ, check=check):
            return res
    if offline is None:
        res["error"] = "unshare -n is not permitted here: the offline install is not proven"
        res["skipped_offline"] = True
        return res
    if not step("install (unshare -n)", ["sh", "-c", '"$@" && "$V/bin/python" -c "$I"', "sh",
                                         *offline, *offpkg, "install", str(bundle), "--venv", str(work / "v1")],
                environ=dict(off_env, V=str(work / "v1"), I=imports)):
        return res
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "-C", str(unpacked)], check=True)
    step("install.sh (unshare -n)", [*offline, "sh", "-c",
                                     'sh "$0/install.sh" --python "$1" "$2" && "$2/bin/python" -c "$3"',
                                     str(unpacked), py, str(work / "v2"), imports])
    return res


def main() -> int:
    t0 = time.monotonic()
    pythons, problems = interpreters()
    if not pythons:
        pyenv = os.path.isdir(os.path.join(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"), "versions"))
        print("pythons: no other supported interpreter found (set OFFPKG_CI_PYTHONS); nothing was proven",
              file=sys.stderr)
        # CI with pyenv is expected to have them (3.9, 3.10, 3.12, 3.13): their absence is a failure there.
        return 1 if problems or (os.environ.get("CI") == "true" and pyenv) else 0
    print("pythons: round trip on " + ", ".join(f"{'%d.%d' % v} ({p})" for p, v in pythons), flush=True)
    offline = offline_prefix()
    with tempfile.TemporaryDirectory(prefix="offpkg-ci-pythons-") as tmp:
        root = Path(tmp)
        dist = root / "dist"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                       check=True)
        wheel = next(dist.glob("offpkg-*.whl"))
        index = start_index(root / "index", [p for p, _ in pythons])
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda pv: round_trip(pv[0], pv[1], wheel, index, root / f"py{pv[1][0]}{pv[1][1]}",
                                                          offline), pythons))
    width = max(len(s) for s in STEPS)
    print("\n%-8s " % "python" + " ".join("%-*s" % (width, s) for s in STEPS))
    for r in results:
        cells = []
        for s in STEPS:
            st = r["steps"].get(s)
            cells.append("%-*s" % (width, "-" if st is None else f"{'ok' if st['ok'] else 'FAIL'} {st['seconds']} s"))
        print("%-8s " % r["version"] + " ".join(cells))
    failed = [r for r in results if r["error"]]
    for r in failed:
        print(f"\nFAILED on {r['version']} ({r['python']}): {r['error']}", file=sys.stderr)
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    print(f"\npythons: {len(results) - len(failed)}/{len(results)} interpreters passed in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
