"""The scale scenario: three targets of the stack in one bundle.

x86_64 CPython 3.11, x86_64 CPython 3.12 and aarch64 CPython 3.11, cold caches. The
question is whether cost grows with the work: time per unique byte fetched should stay
near the single-target bundle's, and peak memory should stay flat.
"""

from __future__ import annotations

import json

from harness import Bench, _cmd
from steps import register

TARGETS = [("3.11", "manylinux_2_28_x86_64"), ("3.12", "manylinux_2_28_x86_64"), ("3.11", "manylinux_2_28_aarch64")]


def step_scale(b: Bench) -> None:
    from offpkg.target import Target

    res = b.step_results("scale")
    args = ["bundle", "-r", str(b.reqs), *b.index, *b.cuda_args, "--json", "--no-tools"]
    for i, (py, plat) in enumerate(TARGETS):
        f = b.work / f"target-{i}.json"
        f.write_text(json.dumps(Target.from_options(py, [plat]).to_json()))
        args += ["--target", str(f)]
    out = b.work / "bundle-scale"
    env = b.env("offpkg-scale", OFFPKG_CACHE_DIR=str(b.work / "offpkg-cache-scale"),
                UV_CACHE_DIR=str(b.work / "uv-cache-scale"))
    b.sync()
    b.load("scale")
    r = b.offpkg([*args, "-o", str(out)], env, what="offpkg bundle, three targets (cold)")
    j = r.json_out()
    unique = j.get("downloaded_bytes") or 0
    res.update({"targets": [f"cp{py.replace('.', '')} {plat}" for py, plat in TARGETS],
                "seconds": r.seconds, "unique_bytes": unique, "packages": j.get("packages"),
                "s_per_gb": r.seconds / (unique / 1e9) if unique else None,
                "offpkg_cmd": "offpkg " + _cmd([*args, "-o", str(out)], b.work)})
    single = b.results["steps"].get("download", {})
    if single.get("offpkg_cold_s") and single.get("offpkg_downloaded_bytes"):
        one = single["offpkg_cold_s"] / (single["offpkg_downloaded_bytes"] / 1e9)
        res["single_target_s_per_gb"] = one
        res["s_per_gb_vs_single"] = res["s_per_gb"] / one if res["s_per_gb"] else None
    b.mem("bundle_scale", r)
    b.drop(out, b.work / "offpkg-cache-scale", b.work / "uv-cache-scale")


register("scale", step_scale, standalone=True)
