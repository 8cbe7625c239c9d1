"""The goals of issue 14, the table printed at the end, and the JSON written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# (key, description, comparison, threshold): every goal is a ratio against a reference measured in the same run.
GOALS: list[tuple[str, str, str, float]] = [
    ("bundle_cold_vs_fetch", "offpkg bundle, cold (resolve included) / raw parallel fetch of the same files", "<=", 1.3),
    ("bundle_warm_ratio", "offpkg bundle, warm (nothing changed) / pip download", "<=", 0.05),
    ("verify_vs_hashlib", "offpkg verify / hashlib, 2 threads, same files", ">=", 0.8),
    ("install_vs_uv", "offpkg install into a new venv / uv venv + uv pip install --offline (empty cache)", "<=", 1.0),
    ("resolve_cold_ratio", "offpkg lock for aarch64 cp312 / uv pip compile for it (cold)", "<=", 1.2),
    ("peak_rss_mb", "peak RSS of every offpkg command (own process, MB)", "<", 300.0),
]


def goal_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    s = results.get("steps", {})
    values = {
        "bundle_cold_vs_fetch": s.get("download", {}).get("bundle_cold_vs_fetch"),
        "bundle_warm_ratio": s.get("download", {}).get("bundle_warm_ratio"),
        "verify_vs_hashlib": s.get("verify", {}).get("verify_vs_hashlib"),
        "install_vs_uv": s.get("install", {}).get("install_vs_uv"),
        "resolve_cold_ratio": s.get("resolve", {}).get("resolve_cold_ratio"),
    }
    own = [v["offpkg"] for v in results.get("memory_mb", {}).values()]
    values["peak_rss_mb"] = max(own) if own else None
    rows = []
    for key, desc, op, thr in GOALS:
        v = values.get(key)
        met = None if v is None else (v <= thr if op == "<=" else v >= thr if op == ">=" else v < thr)
        rows.append({"goal": key, "description": desc, "value": None if v is None else round(v, 4),
                     "target": f"{op} {thr:g}", "met": met})
    return rows


def print_table(results: dict[str, Any]) -> None:
    s = results.get("steps", {})
    lines: list[tuple[str, str, str, str]] = []

    def sec(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f} s"

    d = s.get("download", {})
    if "bundle_cold_vs_fetch" in d:
        lines.append(("bundle, cold", sec(d["offpkg_cold_s"]),
                      f"raw fetch {sec(d['raw_fetch_s'])}; pip download {sec(d['pip_download_s'])}",
                      f"{d['bundle_cold_vs_fetch']:.3f} x fetch"))
    if "bundle_warm_ratio" in d:
        lines.append(("bundle, warm", sec(d["offpkg_warm_s"]), f"pip download {sec(d['pip_download_s'])}",
                      f"{d['bundle_warm_ratio']:.3f} x pip"))
    r = s.get("resolve", {})
    for phase in ("cold", "warm"):
        if f"resolve_{phase}_ratio" in r:
            lines.append((f"resolve aarch64 cp312, {phase}", sec(r[f"offpkg_lock_{phase}_s"]),
                          f"uv pip compile {sec(r[f'uv_compile_{phase}_s'])}", f"{r[f'resolve_{phase}_ratio']:.3f} x uv"))
    v = s.get("verify", {})
    if "verify_vs_hashlib" in v:
        lines.append((f"verify ({v['bytes'] / 1e9:.2f} GB)", f"{sec(v['offpkg_verify_s'])} = {v['verify_gbps']:.2f} GB/s",
                      f"hashlib x{v['hashlib_threads']} {v['hashlib_gbps']:.2f} GB/s", f"{v['verify_vs_hashlib']:.3f}"))
    i = s.get("install", {})
    if "install_vs_uv" in i:
        lines.append(("offline install, new venv", sec(i["offpkg_install_s"]),
                      f"uv {sec(i['uv_install_s'])}; cp -a {sec(i['cp_a_s'])}; venv+pip {sec(i['pip_install_s'])}",
                      f"{i['install_vs_uv']:.3f} x uv"))
    a = s.get("archive", {})
    if "archive_ratio" in a:
        lines.append(("archive (.tar, write_tar)", sec(a["write_tar_s"]),
                      f"tar cf {sec(a['tar_cf_s'])}; +sync {sec(a['tar_cf_sync_s'])}", f"{a['archive_ratio']:.3f}"))
    sc = s.get("scale", {})
    if sc.get("s_per_gb") is not None:
        lines.append(("three targets, cold", f"{sec(sc['seconds'])}, {sc['unique_bytes'] / 1e9:.2f} GB",
                      f"{sc['s_per_gb']:.2f} s/GB vs one target {sc.get('single_target_s_per_gb') or 0:.2f} s/GB",
                      f"{sc.get('s_per_gb_vs_single') or 0:.3f}"))
    for name, extra in results.get("extra_rows", {}).items():
        lines.extend(tuple(x) for x in extra)
    for k, m in results.get("memory_mb", {}).items():
        lines.append((f"peak RSS: {k}", f"{m['offpkg']:.0f} MB", f"with children {m['with_children']:.0f} MB", ""))
    m = results.get("machine", {})
    la = results.get("load_average", {})
    print(f"\n{results.get('stack')} on {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB; python "
          f"{m.get('python')}, {m.get('pip')}, {m.get('uv')}, offpkg {m.get('offpkg')} ({m.get('offpkg_commit')}); "
          f"load average {la.get('start', ['?'])[0]} at start, {la.get('end', ['?'])[0]} at the end")
    if results.get("stack") == "cpu-small":
        print("(cpu-small is for trying the harness: its seconds are start-up costs; the goals are for gpu-ml)")
    head = ("step", "offpkg", "reference", "ratio")
    widths = [max(len(r[c]) for r in [head, *lines]) for c in range(4)]
    print()
    for row in [head, tuple("-" * w for w in widths), *lines]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    print()
    for g in results.get("goals", []):
        mark = {True: "met", False: "MISSED", None: "not measured"}[g["met"]]
        val = "-" if g["value"] is None else f"{g['value']:.3f}"
        print(f"  {mark:<12} {g['description']}: {val} (goal {g['target']})")
    print()


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_rounded(results), indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _rounded(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x

