"""The update scenario (issue 15): the stack at one version, then a newer package and one added package.

    python bench/run.py --stack gpu-ml --steps updates [--updates-old REQ] [--updates-add REQ]

1. ``offpkg bundle`` the stack with ``OLD`` pinned (v1), the stack with the newest versions plus
   ``ADD`` (v2), and v2 as a delta of v1 (``--base v1``); one warm cache, untimed.
2. The delta's size against the full v2 bundle (bytes of the files each carries).
3. ``offpkg install DELTA --venv V --upgrade`` (V holds v1) against ``offpkg install V2 --venv NEW``,
   both offline (the harness's ``unshare -n``), wall time of the command.
4. ``offpkg rollback --venv V`` (its --json also gives the swap and the cleanup apart).

Goals: delta <= 5 % of the full bundle when torch does not change; sync upgrade <= 0.3 x a
fresh install; rollback <= 2 s. The requirements are given explicitly (not ``--stack``), so
neither install runs the stack's smoke test: both do the same work apart from what the sync saves.
Defaults: gpu-ml moves transformers 5.8.1 -> newest and adds einops; cpu-small moves requests
2.31.0 -> newest and adds six. Environment: OFFPKG_BENCH_UPDATES_OLD / _ADD override them.
"""

from __future__ import annotations

import os

from harness import Bench, _cmd
from steps import register

DEFAULTS = {"gpu-ml": ("transformers==5.8.1", "einops"), "cpu-small": ("requests==2.31.0", "six")}
GOALS = [("delta_ratio", "delta bytes / full bundle bytes", 0.05),
         ("sync_ratio", "install --upgrade with the delta / fresh install of the full bundle", 0.3),
         ("rollback_s", "offpkg rollback (s)", 2.0)]


def _bytes(bundle) -> int:  # noqa: ANN001 - a Path
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())


def step_updates(b: Bench) -> None:
    res = b.step_results("updates")
    old = os.environ.get("OFFPKG_BENCH_UPDATES_OLD") or DEFAULTS[b.args.stack][0]
    add = os.environ.get("OFFPKG_BENCH_UPDATES_ADD") or DEFAULTS[b.args.stack][1]
    res.update({"old": old, "add": add})
    env = b.env("offpkg-updates", OFFPKG_CACHE_DIR=str(b.work / "offpkg-cache-updates"),
                UV_CACHE_DIR=str(b.work / "uv-cache-updates"))
    w = b.work / "updates"
    w.mkdir(exist_ok=True)
    common = [*b.requirements, *b.index, *b.cuda_args, "--json"]
    b.offpkg(["bundle", old, "-o", str(w / "v1"), *common], env, what="updates: bundle v1 (untimed)")
    b.offpkg(["bundle", add, "-o", str(w / "v2"), *common], env, what="updates: bundle v2 (untimed)")
    d = b.offpkg(["bundle", add, "-o", str(w / "delta"), "--base", str(w / "v1"), *common], env,
                 what="updates: bundle v2 as a delta of v1 (untimed)")
    res["full_bytes"], res["delta_bytes"] = _bytes(w / "v2"), _bytes(w / "delta")
    res["delta_ratio"] = res["delta_bytes"] / res["full_bytes"]
    res["delta"] = d.json_out().get("delta")
    diff = b.offpkg(["diff", str(w / "v1"), str(w / "v2"), "--json"], env, what="updates: diff v1 v2")
    res["diff_counts"] = diff.json_out().get("counts")
    res["changes"] = [f"{c['change']} {c['name']} {c['old_version'] or ''}->{c['new_version'] or ''}"
                      for c in diff.json_out().get("changes", [])]
    force = list(getattr(b, "install_force", []) or [])
    b.offpkg(["install", str(w / "v1"), "--venv", str(w / "venv"), "--json", *force], env,
             what="updates: install v1 (untimed)", prefix=b.netns)
    b.sync()
    b.load("updates")
    up = b.offpkg(["install", str(w / "delta"), "--venv", str(w / "venv"), "--upgrade", "--json", *force], env,
                  what="updates: install --upgrade with the delta", prefix=b.netns)
    b.sync()
    fresh = b.offpkg(["install", str(w / "v2"), "--venv", str(w / "fresh"), "--json", *force], env,
                     what="updates: fresh install of v2", prefix=b.netns)
    b.sync()
    rb = b.offpkg(["rollback", "--venv", str(w / "venv"), "--json"], env, what="updates: rollback",
                  prefix=b.netns)
    u, r = up.json_out().get("upgrade") or {}, rb.json_out()
    res.update({"sync_upgrade_s": up.seconds, "fresh_install_s": fresh.seconds,
                "sync_ratio": up.seconds / fresh.seconds, "rollback_s": rb.seconds,
                "rollback_swap_s": r.get("seconds_swap"), "rollback_cleanup_s": r.get("seconds_cleanup"),
                "upgrade": {k: u.get(k) for k in ("installed", "removed", "unchanged", "kept_bytes", "swap")},
                "commands": {"upgrade": "offpkg " + _cmd(up.argv[up.argv.index(str(w / "delta")) - 1:], b.work),
                             "rollback": "offpkg " + _cmd(rb.argv[rb.argv.index("rollback"):], b.work)}})
    res["goals"] = [{"key": k, "what": what, "goal": f"<= {t}", "value": round(res[k], 4), "met": res[k] <= t}
                    for k, what, t in GOALS]
    print(f"    delta {res['delta_bytes'] / 1e6:.1f} MB of {res['full_bytes'] / 1e6:.1f} MB "
          f"({100 * res['delta_ratio']:.2f} %); upgrade {up.seconds:.2f} s vs fresh {fresh.seconds:.2f} s "
          f"({res['sync_ratio']:.2f} x); rollback {rb.seconds:.2f} s (swap {res['rollback_swap_s']} s, "
          f"cleanup {res['rollback_cleanup_s']} s)", flush=True)
    for g in res["goals"]:
        print(f"    {'met ' if g['met'] else 'MISS'} {g['what']}: {g['value']} (goal {g['goal']})", flush=True)
    b.drop(w, b.work / "offpkg-cache-updates", b.work / "uv-cache-updates")


register("updates", step_updates, standalone=True)
