#!/usr/bin/env python3
"""The update scenario: a stack at one version, then a newer package and one added package.

    python bench/updates.py [--stack gpu-ml|cpu-small] [--old REQ] [--add REQ] [--out FILE] [--keep]
    python bench/run.py updates [same options]

1. ``offpkg bundle`` the stack with ``--old`` pinned (v1), then the stack with the newest
   versions plus ``--add`` (v2), then v2 as a delta of v1 (``--base v1``); all untimed.
2. The delta's size against the full v2 bundle (bytes of the files each carries).
3. ``offpkg install DELTA --venv V --upgrade`` (V holds v1) against ``offpkg install V2 --venv NEW``,
   both offline (``unshare -n`` where the kernel allows it), wall time of the command.
4. ``offpkg rollback --venv V``.

Goals (issue 15): delta <= 5 % of the full bundle when torch does not change; sync upgrade
<= 0.3 x a fresh install; rollback <= 2 s. The stack's requirements are given explicitly
(not ``--stack``), so neither side runs the stack's smoke test and the two installs do the
same work apart from what the sync saves. A benchmark, not a test: nothing fails on time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULTS = {"gpu-ml": ("transformers==5.8.1", "einops"), "cpu-small": ("requests==2.31.0", "six")}
GOALS = [("delta_ratio", "delta bytes / full bundle bytes", "<=", 0.05),
         ("sync_ratio", "install --upgrade with the delta / fresh install of the full bundle", "<=", 0.3),
         ("rollback_s", "offpkg rollback (s)", "<=", 2.0)]


def _env(work: Path, cache: Path) -> dict[str, str]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    env.update(HOME=str(home), PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", OFFPKG_CACHE_DIR=str(cache),
               UV_CACHE_DIR=str(work / "uv-cache"), NO_COLOR="1", PYTHONPATH=str(REPO))
    return env


def _netns() -> list[str]:
    exe = shutil.which("unshare")
    for flags in (["-n"], ["-rn"]):
        if exe and subprocess.run([exe, *flags, "true"], capture_output=True).returncode == 0:
            return [exe, *flags]
    return []


LAST: dict = {}


def _offpkg(args: list[str], env: dict[str, str], prefix: list[str] = ()) -> float:  # type: ignore[assignment]
    """Wall time of one offpkg command (its --json document is kept in LAST)."""
    t0 = time.monotonic()
    proc = subprocess.run([*prefix, sys.executable, "-m", "offpkg", *args, "--json"], env=env, capture_output=True,
                          text=True)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: offpkg {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    LAST.clear()
    LAST.update(json.loads(proc.stdout))
    return took


def _bytes(bundle: Path) -> int:
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    from offpkg.stacks import get_stack

    ap = argparse.ArgumentParser(prog="python bench/updates.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", default="cpu-small", choices=sorted(DEFAULTS))
    ap.add_argument("--old", default=None, help="the pin of v1 (default: per stack)")
    ap.add_argument("--add", default=None, help="the package v2 adds (default: per stack)")
    ap.add_argument("--index-url", default="https://pypi.org/simple")
    ap.add_argument("--cache-dir", type=Path, default=None, help="offpkg download cache (default: in the workdir)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    old, add = a.old or DEFAULTS[a.stack][0], a.add or DEFAULTS[a.stack][1]
    reqs = list(get_stack(a.stack).requirements)
    work = Path(tempfile.mkdtemp(prefix=f"offpkg-bench-updates-{a.stack}-", dir=a.workdir))
    env = _env(work, a.cache_dir or work / "cache")
    net = _netns()
    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "stack": a.stack,
                 "requirements": reqs, "old": old, "add": add, "offline": " ".join(net) or "none",
                 "command": "python bench/updates.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                             "load_average_start": list(os.getloadavg())}}
    try:
        common = ["-i", a.index_url]
        print(f"bundling v1 ({old}), v2 (newest + {add}) and the delta ...", file=sys.stderr)
        res["bundle_v1_s"] = _offpkg(["bundle", *reqs, old, "-o", str(work / "v1"), *common], env)
        res["bundle_v2_s"] = _offpkg(["bundle", *reqs, add, "-o", str(work / "v2"), *common], env)
        res["bundle_delta_s"] = _offpkg(["bundle", *reqs, add, "-o", str(work / "delta"), "--base",
                                         str(work / "v1"), *common], env)
        res["full_bytes"], res["delta_bytes"] = _bytes(work / "v2"), _bytes(work / "delta")
        res["delta_ratio"] = res["delta_bytes"] / res["full_bytes"]
        diff = subprocess.run([sys.executable, "-m", "offpkg", "diff", str(work / "v1"), str(work / "v2"), "--json"],
                              env=env, capture_output=True, text=True)
        res["diff_counts"] = json.loads(diff.stdout)["counts"] if diff.returncode == 0 else None
        print("installing v1, then timing the sync upgrade, a fresh install and the rollback ...", file=sys.stderr)
        _offpkg(["install", str(work / "v1"), "--venv", str(work / "venv")], env, net)
        res["sync_upgrade_s"] = _offpkg(["install", str(work / "delta"), "--venv", str(work / "venv"), "--upgrade"],
                                        env, net)
        res["fresh_install_s"] = _offpkg(["install", str(work / "v2"), "--venv", str(work / "fresh")], env, net)
        res["sync_ratio"] = res["sync_upgrade_s"] / res["fresh_install_s"]
        res["sync_upgrade_changes"] = {k: LAST["upgrade"][k] for k in ("installed", "removed", "unchanged",
                                                                         "kept_bytes")}
        res["rollback_s"] = _offpkg(["rollback", "--venv", str(work / "venv")], env, net)
        res["rollback_swap_s"], res["rollback_cleanup_s"] = LAST["seconds_swap"], LAST["seconds_cleanup"]
        res["offpkg_startup_s"] = min(_offpkg(["config", "show"], env) for _ in range(3))
        res["machine"]["load_average_end"] = list(os.getloadavg())
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["goals"] = [{"key": k, "what": w, "goal": f"{op} {t}", "value": round(res[k], 4),
                     "met": res[k] <= t} for k, w, op, t in GOALS]
    out = a.out or REPO / "bench" / "results" / f"updates-{a.stack}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"delta {res['delta_bytes'] / 1e6:.1f} MB of {res['full_bytes'] / 1e6:.1f} MB "
          f"({100 * res['delta_ratio']:.2f} %); sync upgrade {res['sync_upgrade_s']:.2f} s vs fresh install "
          f"{res['fresh_install_s']:.2f} s ({res['sync_ratio']:.2f} x); rollback {res['rollback_s']:.2f} s "
          f"(swap {res['rollback_swap_s']:.3f} s, cleanup {res['rollback_cleanup_s']:.2f} s; "
          f"offpkg's own start-up {res['offpkg_startup_s']:.2f} s)")
    for g in res["goals"]:
        print(f"  {'met ' if g['met'] else 'MISS'} {g['what']}: {g['value']} (goal {g['goal']})")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
