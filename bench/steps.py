"""The steps: each runs offpkg and its references on the same files, one after the other.

``STEPS`` maps a step's name to its function; other scenarios (bench/scale.py,
bench/updates.py, bench/fleet.py) register themselves in it, one line each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import refs
from harness import _ARCHIVE_WRAPPER, REPO, Bench, BenchError, Run, _cmd, _tree_bytes


def step_download(b: Bench) -> None:
    """Cold and warm bundles against the raw parallel fetch of the same files, and against pip download."""
    py = sys.executable
    res = b.step_results("download")
    # pip download, cold: a fresh HOME means an empty pip cache.
    dl = b.work / "pip-download"
    argv = [py, "-m", "pip", "download", "-d", str(dl), "-r", str(b.reqs), *b.pip_constraints,
            "--progress-bar", "off", "--no-input", *b.index]
    b.sync()
    b.load("pip download")
    pip = b.run(argv, b.env("pip-download"), what="pip download (cold)")
    res["pip_download_s"], res["pip_download_cpu_s"] = pip.seconds, pip.cpu_s
    res["pip_download_cmd"] = _cmd(argv, b.work)
    res["pip_download_files"] = sum(1 for _ in dl.iterdir())
    res["pip_download_bytes"] = _tree_bytes(dl)
    pip_files = {p.name for p in dl.iterdir()}
    b.drop(dl)

    # offpkg bundle, cold: empty offpkg cache and empty uv cache, resolution included.
    args = ["bundle", "-r", str(b.reqs), "-o", str(b.bundle), *b.index, *b.cuda_args, "--json"]
    env = b.env("offpkg-bundle", **b.cache)
    b.sync()
    b.load("offpkg bundle cold")
    cold = b.offpkg(args, env, what="offpkg bundle (cold)")
    j = cold.json_out()
    res["offpkg_cold_s"], res["offpkg_cold_cpu_s"] = cold.seconds, cold.cpu_s
    res["offpkg_cold_timings"] = j.get("timings")
    res["offpkg_cmd"] = "offpkg " + _cmd(args, b.work)
    res["offpkg_downloaded_bytes"] = j.get("downloaded_bytes")
    res["bundle_packages"] = j.get("packages")
    res["bundle_bytes"] = j.get("total_size")
    res["backend"] = j.get("backend")
    ours = {p.name for p in (b.bundle / "wheels").iterdir()}
    res["same_files_as_pip"] = ours == pip_files
    if ours != pip_files:
        res["only_pip"], res["only_offpkg"] = sorted(pip_files - ours), sorted(ours - pip_files)
    b.mem("bundle_cold", cold)

    # The physical reference: the same files, raw, 8 streams. Measured right after the cold
    # bundle and once more after the warm one; the faster is kept (the network's speed wanders).
    raws: list[Run] = []
    for i in (1, 2):
        if i == 2:
            _warm(b, res, pip, env)
        raw_dir = b.work / f"raw-fetch-{i}"
        b.sync()
        r, nbytes = refs.raw_fetch(b, b.bundle, raw_dir, what=f"raw parallel fetch #{i}")
        raws.append(r)
        res["raw_fetch_bytes"] = nbytes
        b.drop(raw_dir)
    res["raw_fetch_runs_s"] = [r.seconds for r in raws]
    res["raw_fetch_s"] = min(r.seconds for r in raws)
    res["raw_fetch_cmd"] = "curl --parallel --parallel-max 8 (every URL in offpkg.json)"
    res["bundle_cold_vs_fetch"] = cold.seconds / res["raw_fetch_s"]
    res["bundle_cold_ratio"] = cold.seconds / pip.seconds


def _warm(b: Bench, res: dict, pip: Run, env: dict[str, str]) -> None:
    """The same bundle again into a new output, caches full and nothing changed."""
    warm_out = b.work / "bundle-warm"
    args_w = ["bundle", "-r", str(b.reqs), "-o", str(warm_out), *b.index, *b.cuda_args, "--json"]
    b.sync()
    b.load("offpkg bundle warm")
    warm = b.offpkg(args_w, env, what="offpkg bundle (warm)")
    jw = warm.json_out()
    res["offpkg_warm_s"], res["offpkg_warm_cpu_s"] = warm.seconds, warm.cpu_s
    res["offpkg_warm_timings"] = jw.get("timings")
    res["offpkg_warm_cached_files"] = jw.get("cached_files")
    res["offpkg_warm_reused_locks"] = jw.get("reused_locks")
    res["offpkg_warm_downloaded_bytes"] = jw.get("downloaded_bytes")
    b.mem("bundle_warm", warm)
    b.drop(warm_out)
    res["bundle_warm_ratio"] = warm.seconds / pip.seconds


def step_resolve(b: Bench) -> None:
    """Cross-target resolution (aarch64, CPython 3.12): `offpkg lock` against `uv pip compile`, cold then warm."""
    res = b.step_results("resolve")
    py, plat, uv_plat = "3.12", "manylinux_2_28_aarch64", "aarch64-manylinux_2_28"
    uvc = [b.uv, "pip", "compile", str(b.reqs), "--quiet", "--no-header", "--python-version", py,
           "--python-platform", uv_plat, *b.index]
    lk = ["lock", "-r", str(b.reqs), "--python-version", py, "--platform", plat, *b.index, "--json"]
    uv_env = b.env("uv-compile", UV_CACHE_DIR=str(b.work / "uv-cache-compile"))
    off_env = b.env("offpkg-lock", OFFPKG_CACHE_DIR=str(b.work / "offpkg-cache-lock"),
                    UV_CACHE_DIR=str(b.work / "uv-cache-lock"))
    b.load("resolve")
    for phase in ("cold", "warm"):
        b.sync()
        u = b.run(uvc, uv_env, what=f"uv pip compile ({phase})")
        o = b.offpkg(lk, off_env, what=f"offpkg lock ({phase})")
        res[f"uv_compile_{phase}_s"], res[f"offpkg_lock_{phase}_s"] = u.seconds, o.seconds
        res[f"resolve_{phase}_ratio"] = o.seconds / u.seconds
        b.mem(f"lock_{phase}", o)
    res["uv_cmd"], res["offpkg_cmd"] = _cmd(uvc, b.work), "offpkg " + _cmd(lk, b.work)
    b.drop(b.work / "uv-cache-compile", b.work / "uv-cache-lock", b.work / "offpkg-cache-lock")


def step_verify(b: Bench) -> None:
    files = sorted((p for p in b.bundle.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    total = sum(p.stat().st_size for p in files)
    n = b.args.repeat
    env = b.env("offpkg-verify")
    args = ["verify", str(b.bundle), "--json"]
    b.offpkg(args, env, what="offpkg verify (warm-up)")  # fills the page cache
    b.load("verify")
    # Interleaved, best of --repeat: the machine's load moves between runs.
    runs: list[Run] = []
    hl: list[tuple[float, float]] = []
    for i in range(n):
        runs.append(b.offpkg(args, env, what=f"offpkg verify #{i + 1}"))
        hl.append(refs.hashlib_rate(files, b.args.hash_threads, cpu=True))
    for r in runs:
        if not r.json_out().get("ok"):
            raise BenchError(f"offpkg verify found problems in {b.bundle}: see {r.log}")
    internal = [r.json_out().get("seconds") for r in runs]
    best = min(runs, key=lambda r: r.seconds)
    b.mem("verify", best)
    verify_s, hashlib_s = min(r.seconds for r in runs), min(w for w, _ in hl)
    res = b.step_results("verify")
    res.update({
        "files": len(files), "bytes": total, "repeat": n,
        "offpkg_verify_s": verify_s, "offpkg_verify_runs_s": [r.seconds for r in runs],
        "offpkg_verify_internal_s": min(x for x in internal if x is not None) if all(internal) else None,
        "offpkg_verify_cpu_s": min(r.cpu_s for r in runs),
        "hashlib_threads": b.args.hash_threads, "hashlib_s": hashlib_s, "hashlib_runs_s": [w for w, _ in hl],
        "hashlib_cpu_s": min(c for _, c in hl), "offpkg_cmd": "offpkg " + _cmd(args, b.work),
    })
    res["verify_gbps"] = total / verify_s / 1e9
    res["hashlib_gbps"] = total / hashlib_s / 1e9
    res["verify_vs_hashlib"] = res["verify_gbps"] / res["hashlib_gbps"]
    if res["offpkg_verify_internal_s"]:
        res["verify_internal_gbps"] = total / res["offpkg_verify_internal_s"] / 1e9


def step_install(b: Bench) -> None:
    """offpkg install against uv alone (empty cache), pip, and `cp -a` of the finished venv (the floor)."""
    py = sys.executable
    res = b.step_results("install")
    res["network_isolation"] = " ".join(b.netns) or "none (unshare -n not permitted)"
    reqs, wheels = b.bundle / "requirements.txt", b.bundle / "wheels"
    # uv alone: uv venv + uv pip install --offline --no-index --find-links --require-hashes, empty uv cache.
    v3 = b.work / "venv-uv"
    uenv = b.env("uv-install", UV_CACHE_DIR=str(b.work / "uv-cache-install-uv"))
    b.sync()
    b.load("uv install")
    c = b.run([*b.netns, b.uv, "venv", "--quiet", "--python", py, str(v3)], uenv, what="uv venv")
    uv_argv = [*b.netns, b.uv, "pip", "install", "--offline", "--no-index", "--find-links", str(wheels),
               "--require-hashes", "-r", str(reqs), "--python", str(v3 / "bin" / "python"), "--quiet"]
    d = b.run(uv_argv, uenv, what="uv pip install --offline")
    res["uv_venv_s"], res["uv_install_only_s"] = c.seconds, d.seconds
    res["uv_install_s"], res["uv_install_cpu_s"] = c.seconds + d.seconds, c.cpu_s + d.cpu_s
    res["uv_cmd"] = "uv venv V3 && " + _cmd(uv_argv, b.work)
    cp = refs.cp_a(b, v3, what="cp -a (install floor)")
    res["cp_a_s"], res["venv_bytes"] = cp.seconds, _tree_bytes(v3)
    b.drop(v3, b.work / "uv-cache-install-uv")

    # offpkg install: verifies the bundle, creates the venv, installs, checks.
    v1 = b.work / "venv-offpkg"
    env = b.env("offpkg-install", UV_CACHE_DIR=str(b.work / "uv-cache-install-offpkg"))
    args = ["install", str(b.bundle), "--venv", str(v1), *b.install_force, "--json"]
    b.sync()
    b.load("offpkg install")
    off = b.offpkg(args, env, what="offpkg install", prefix=b.netns)
    j = off.json_out()
    res["offpkg_install_s"], res["offpkg_install_cpu_s"] = off.seconds, off.cpu_s
    res["offpkg_backend"] = j.get("backend")
    res["offpkg_cmd"] = _cmd(b.netns, b.work) + " offpkg " + _cmd(args, b.work)
    b.mem("install", off)
    b.drop(v1, b.work / "uv-cache-install-offpkg")

    # pip: a fresh venv, then pip install --no-index --find-links from the same bundle.
    v2 = b.work / "venv-pip"
    penv = b.env("pip-install")
    b.sync()
    b.load("pip install")
    a = b.run([*b.netns, py, "-m", "venv", str(v2)], penv, what="python -m venv (pip)")
    pip_argv = [*b.netns, str(v2 / "bin" / "python"), "-m", "pip", "install", "--no-index", "--find-links",
                str(wheels), "-r", str(reqs), "--progress-bar", "off", "--no-input"]
    p = b.run(pip_argv, penv, what="pip install --no-index")
    res["pip_install_s"], res["pip_install_cpu_s"] = a.seconds + p.seconds, a.cpu_s + p.cpu_s
    res["pip_cmd"] = "python -m venv V2 && " + _cmd(pip_argv, b.work)
    b.drop(v2)

    res["install_vs_uv"] = res["offpkg_install_s"] / res["uv_install_s"]
    res["install_ratio"] = res["offpkg_install_s"] / res["pip_install_s"]
    res["install_vs_cp_a"] = res["offpkg_install_s"] / res["cp_a_s"]


def step_archive(b: Bench) -> None:
    """offpkg.archive.write_tar against `tar cf` of the same tree (best of --repeat, alternating)."""
    res = b.step_results("archive")
    plain = b.work / "plain.tar"
    refs.hashlib_rate(sorted(p for p in b.bundle.rglob("*") if p.is_file()), b.args.hash_threads)  # page cache
    b.load("archive")
    tar_argv = ["tar", "cf", str(plain), "-C", str(b.bundle), "."]
    out = b.work / "write_tar.tar"
    wt_argv = [sys.executable, "-c", _ARCHIVE_WRAPPER, str(REPO), str(b.bundle), str(out)]
    tar_s, tar_sync_s, wt_s = [], [], []
    for i in range(b.args.repeat):
        b.sync()
        t = b.run(tar_argv, b.env("tar"), what=f"tar cf #{i + 1}")
        t0 = time.perf_counter()
        os.sync()  # what the same archive costs once it is on disk, like write_tar's fsync
        tar_s.append(t.seconds)
        tar_sync_s.append(t.seconds + time.perf_counter() - t0)
        plain.unlink()
        b.sync()
        w = b.run(wt_argv, b.env("write-tar"), what=f"offpkg.archive.write_tar #{i + 1}")
        wt_s.append(w.json_out()["seconds"])
        res["write_tar_rss_mb"] = w.json_out()["self_kb"] / 1024
        out.unlink()
    res["tar_cmd"] = _cmd(tar_argv, b.work)
    res["tar_cf_s"], res["tar_cf_sync_s"], res["write_tar_s"] = min(tar_s), min(tar_sync_s), min(wt_s)
    res["archive_ratio"] = res["write_tar_s"] / res["tar_cf_s"]
    res["archive_ratio_vs_tar_sync"] = res["write_tar_s"] / res["tar_cf_sync_s"]


STEPS: dict[str, Callable[[Bench], None]] = {
    "download": step_download,
    "resolve": step_resolve,
    "verify": step_verify,
    "install": step_install,
    "archive": step_archive,
}
# Steps that need no bundle built first.
STANDALONE = {"download", "resolve"}


def register(name: str, fn: Callable[[Bench], None], *, standalone: bool = False) -> None:
    """Add a scenario (bench/scale.py, bench/updates.py, bench/fleet.py)."""
    STEPS[name] = fn
    if standalone:
        STANDALONE.add(name)

