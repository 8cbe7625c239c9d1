#!/usr/bin/env python3
"""offpkg's benchmark: offpkg and its peers (pip, uv, tar, sha256sum) side by side, in one run.

    python bench/run.py [--stack gpu-ml|cpu-small] [--out FILE] [--steps download,verify,install,archive] [--keep]

Every step runs offpkg and the reference tool on the same requirements, the same
bundle and the same machine, one after the other, so the ratios hold even where
the machine is slow or noisy. It prints a table and writes the figures as JSON
(with the machine's facts and its load average). It is a benchmark, not a test:
nothing fails on time, CI never runs it. See bench/README.md and docs/performance.md.

Isolation: every pip, uv and offpkg process gets a fresh HOME, PIP_CONFIG_FILE=/dev/null
and none of the caller's PIP_*/UV_*/OFFPKG_* variables, so a machine's pip.conf
(find-links, extra indexes) cannot change what is resolved or downloaded. Both
sides use the same index (--index-url, PyPI by default).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmark this checkout's offpkg, not some other installed copy

STEPS = ("download", "verify", "install", "archive")
SCHEMA = 1
MB = 1 << 20

# Goals of issue 4: (key, description, comparison, threshold).
GOALS: list[tuple[str, str, str, float]] = [
    ("bundle_cold_ratio", "offpkg bundle, cold cache / pip download", "<=", 0.25),
    ("bundle_warm_ratio", "offpkg bundle, warm cache / pip download", "<=", 0.05),
    ("verify_gbps", "offpkg verify, warm page cache (GB/s)", ">=", 2.0),
    ("verify_vs_hashlib", "offpkg verify / raw hashlib rate", ">=", 0.55),
    ("install_ratio", "offpkg install / python -m venv + pip install --no-index", "<=", 0.35),
    ("archive_ratio", "offpkg.archive.write_tar / tar cf (best of --repeat)", "<=", 1.3),
    ("peak_rss_mb", "peak RSS of offpkg bundle, verify, install (own process, MB)", "<", 300.0),
]

# Runs the offpkg CLI inside a python process and writes that process's own peak RSS
# (RUSAGE_SELF) and its largest child's (RUSAGE_CHILDREN: uv, pip, venv) to a file at exit.
_OFFPKG_WRAPPER = r"""
import atexit, json, resource, sys
_out = sys.argv[1]
def _rss():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(_out, "w") as f:
        json.dump({"self_kb": own, "children_kb": kids}, f)
atexit.register(_rss)
sys.path.insert(0, sys.argv[2])
from offpkg.cli import main
main(sys.argv[3:])
"""

# write_tar alone, timed inside the process (imports and start-up excluded).
_ARCHIVE_WRAPPER = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from offpkg.archive import write_tar
t = time.perf_counter()
write_tar(sys.argv[2], sys.argv[3])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


class BenchError(Exception):
    """A step could not run; the message says which and what to do."""


@dataclass
class Run:
    """One timed command."""

    argv: list[str]
    seconds: float
    rc: int
    tree_rss_kb: int  # max RSS of the process or any descendant it waited for (wait4)
    cpu_s: float = 0.0  # user + system CPU seconds of the process and its descendants
    self_rss_kb: int | None = None  # offpkg's own process (RUSAGE_SELF), when run through the wrapper
    children_rss_kb: int | None = None
    stdout: str = ""
    log: Path | None = None

    def json_out(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{' '.join(self.argv[:4])}... printed no JSON ({exc}); see {self.log}") from None


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    results: dict[str, Any] = field(default_factory=dict)
    uv: str = "uv"
    requirements: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    _n: int = 0

    # ------------------------------------------------------------------ running commands

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """A clean environment with a fresh HOME: no PIP_*/UV_*/OFFPKG_* of the caller."""
        home = self.work / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        drop = ("PIP_", "UV_", "OFFPKG_", "CONDA_", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
                   PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
                   UV_NO_CONFIG="1", UV_NO_PROGRESS="1", PYTHONUTF8="1", NO_COLOR="1")
        # The machine's CA bundle is TLS setup, not index configuration: keep it.
        cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
        if cert:
            env["SSL_CERT_FILE"] = cert
        env.update(extra)
        return env

    def run(self, argv: list[str], env: dict[str, str], *, what: str, cwd: Path | None = None,
            rss_file: Path | None = None, check: bool = True) -> Run:
        """Run argv, timing it and measuring its peak memory with wait4()."""
        self._n += 1
        log = self.work / "logs" / f"{self._n:02d}-{what.replace(' ', '-').replace('/', '-')[:60]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.with_suffix(".out")
        with open(out, "wb") as so, open(log, "wb") as se:
            t = time.perf_counter()
            try:
                proc = subprocess.Popen(argv, env=env, cwd=cwd or self.work, stdin=subprocess.DEVNULL,
                                        stdout=so, stderr=se)
            except OSError as exc:
                raise BenchError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from None
            _, status, ru = os.wait4(proc.pid, 0)
            dt = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
        r = Run(list(argv), dt, proc.returncode, ru.ru_maxrss, ru.ru_utime + ru.ru_stime,
                stdout=out.read_text(errors="replace"), log=log)
        if rss_file is not None and rss_file.exists():
            data = json.loads(rss_file.read_text())
            r.self_rss_kb, r.children_rss_kb = data["self_kb"], data["children_kb"]
        if check and r.rc != 0:
            tail = log.read_text(errors="replace")[-3000:].strip()
            raise BenchError(f"{what} failed (exit code {r.rc}): {' '.join(map(str, argv))}\n{tail}\n(full log: {log})")
        return r

    def offpkg(self, args: list[str], env: dict[str, str], *, what: str, prefix: list[str] | None = None) -> Run:
        rss = self.work / "logs" / f"rss-{self._n + 1:02d}.json"
        argv = [*(prefix or []), sys.executable, "-c", _OFFPKG_WRAPPER, str(rss), str(REPO), *args]
        return self.run(argv, env, what=what, rss_file=rss)

    def drop(self, *paths: Path) -> None:
        """Remove big intermediate outputs as soon as they are measured (unless --keep)."""
        if self.args.keep:
            return
        for p in paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    def sync(self) -> None:
        """Flush dirty pages so one step's writeback does not land in the next step's time."""
        os.sync()

    # ------------------------------------------------------------------ steps

    def prepare(self) -> None:
        reqs = self.work / "requirements.in"
        reqs.write_text("\n".join(self.requirements) + "\n")
        self.reqs = reqs
        self.index = ["--index-url", self.args.index_url]
        self.bundle = self.work / "bundle-cold"
        self.cuda_args, self.install_force = _cuda_args(self.args)
        self.pip_constraints: list[str] = []
        if "--torch" in self.cuda_args:
            # offpkg bundles the torch release it was asked for (--torch); PyPI may have a newer
            # one, which pip would take: hold pip to the same release so both fetch the same files.
            c = self.work / "constraints-pip.txt"
            c.write_text(f"torch=={self.cuda_args[self.cuda_args.index('--torch') + 1]}.*\n")
            self.pip_constraints = ["-c", str(c)]
        self.cache = {"OFFPKG_CACHE_DIR": str(self.work / "offpkg-cache"),
                      "UV_CACHE_DIR": str(self.work / "uv-cache-bundle")}

    def step_download(self) -> None:
        py = sys.executable
        res = self.step_results("download")
        # uv's resolution alone, for reference (cold cache, then warm).
        plat = _uv_platform()
        uvc = [self.uv, "pip", "compile", str(self.reqs), "--quiet", "--no-header",
               "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}", *self.index]
        if plat:
            uvc += ["--python-platform", plat]
        uv_env = self.env("uv-compile", UV_CACHE_DIR=str(self.work / "uv-cache-compile"))
        self.sync()
        cold = self.run(uvc, uv_env, what="uv pip compile (cold)")
        warm = self.run(uvc, uv_env, what="uv pip compile (warm)")
        res["uv_compile_cold_s"], res["uv_compile_warm_s"] = cold.seconds, warm.seconds
        res["uv_compile_cmd"] = _cmd(uvc, self.work)
        self.drop(self.work / "uv-cache-compile")

        # pip download, cold: a fresh HOME means an empty pip cache.
        dl = self.work / "pip-download"
        argv = [py, "-m", "pip", "download", "-d", str(dl), "-r", str(self.reqs), *self.pip_constraints,
                "--progress-bar", "off", "--no-input", *self.index]
        self.sync()
        self.load("pip download")
        pip = self.run(argv, self.env("pip-download"), what="pip download (cold)")
        res["pip_download_s"], res["pip_download_cpu_s"] = pip.seconds, pip.cpu_s
        res["pip_download_cmd"] = _cmd(argv, self.work)
        res["pip_download_files"] = sum(1 for _ in dl.iterdir())
        res["pip_download_bytes"] = _tree_bytes(dl)
        res["pip_download_rss_mb"] = pip.tree_rss_kb / 1024
        pip_files = {p.name for p in dl.iterdir()}
        self.drop(dl)

        # offpkg bundle, cold: empty offpkg cache and empty uv cache.
        args = ["bundle", "-r", str(self.reqs), "-o", str(self.bundle), *self.index, *self.cuda_args, "--json"]
        env = self.env("offpkg-bundle", **self.cache)
        self.sync()
        self.load("offpkg bundle cold")
        cold = self.offpkg(args, env, what="offpkg bundle (cold)")
        j = cold.json_out()
        res["offpkg_cold_s"], res["offpkg_cold_cpu_s"] = cold.seconds, cold.cpu_s
        res["offpkg_cold_timings"] = j.get("timings")
        res["offpkg_cmd"] = "offpkg " + _cmd(args, self.work)
        res["offpkg_downloaded_bytes"] = j.get("downloaded_bytes")
        res["bundle_packages"] = j.get("packages")
        res["bundle_bytes"] = j.get("total_size")
        res["backend"] = j.get("backend")
        # The same files on both sides, or the comparison is not fair: say so in the results.
        ours = {p.name for p in (self.bundle / "wheels").iterdir()}
        res["same_files_as_pip"] = ours == pip_files
        if ours != pip_files:
            res["only_pip"], res["only_offpkg"] = sorted(pip_files - ours), sorted(ours - pip_files)
        self.mem("bundle_cold", cold)

        # Warm: everything is in offpkg's cache (and uv's); a new output.
        warm_out = self.work / "bundle-warm"
        args_w = ["bundle", "-r", str(self.reqs), "-o", str(warm_out), *self.index, *self.cuda_args, "--json"]
        self.sync()
        self.load("offpkg bundle warm")
        warm = self.offpkg(args_w, env, what="offpkg bundle (warm)")
        jw = warm.json_out()
        res["offpkg_warm_s"], res["offpkg_warm_cpu_s"] = warm.seconds, warm.cpu_s
        res["offpkg_warm_timings"] = jw.get("timings")
        res["offpkg_warm_cached_files"] = jw.get("cached_files")
        res["offpkg_warm_downloaded_bytes"] = jw.get("downloaded_bytes")
        self.mem("bundle_warm", warm)
        self.drop(warm_out)

        res["bundle_cold_ratio"] = cold.seconds / pip.seconds
        res["bundle_warm_ratio"] = warm.seconds / pip.seconds

    def ensure_bundle(self) -> None:
        """Steps other than download need a bundle: build one (untimed) when download was skipped."""
        if (self.bundle / "offpkg.json").exists():
            return
        args = ["bundle", "-r", str(self.reqs), "-o", str(self.bundle), *self.index, *self.cuda_args, "--json"]
        self.offpkg(args, self.env("offpkg-bundle", **self.cache), what="offpkg bundle (setup, untimed)")

    def step_verify(self) -> None:
        files = sorted((p for p in self.bundle.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
        total = sum(p.stat().st_size for p in files)
        n = self.args.repeat
        env = self.env("offpkg-verify")
        args = ["verify", str(self.bundle), "--json"]
        self.offpkg(args, env, what="offpkg verify (warm-up)")  # fills the page cache
        self.load("verify")
        # Interleaved, best of --repeat: the machine's load moves between runs.
        runs: list[Run] = []
        hl: list[tuple[float, float]] = []
        sums: list[Run] = []
        for i in range(n):
            runs.append(self.offpkg(args, env, what=f"offpkg verify #{i + 1}"))
            hl.append(_hashlib_rate(files, self.args.hash_threads, cpu=True))
            if shutil.which("sha256sum"):
                sums.append(self.run(["sha256sum", *map(str, files)], self.env("sha256sum"), what=f"sha256sum #{i + 1}"))
        for r in runs:
            if not r.json_out().get("ok"):
                raise BenchError(f"offpkg verify found problems in {self.bundle}: see {r.log}")
        internal = [r.json_out().get("seconds") for r in runs]
        best = min(runs, key=lambda r: r.seconds)
        self.mem("verify", best)
        verify_s, hashlib_s = min(r.seconds for r in runs), min(w for w, _ in hl)
        res = self.step_results("verify")
        res.update({
            "files": len(files), "bytes": total, "repeat": n,
            "offpkg_verify_s": verify_s, "offpkg_verify_runs_s": [r.seconds for r in runs],
            "offpkg_verify_internal_s": min(x for x in internal if x is not None) if all(internal) else None,
            "offpkg_verify_cpu_s": min(r.cpu_s for r in runs),
            "hashlib_threads": self.args.hash_threads, "hashlib_s": hashlib_s, "hashlib_runs_s": [w for w, _ in hl],
            "hashlib_cpu_s": min(c for _, c in hl),
            "offpkg_cmd": "offpkg " + _cmd(args, self.work),
        })
        res["verify_gbps"] = total / verify_s / 1e9
        res["hashlib_gbps"] = total / hashlib_s / 1e9
        res["verify_vs_hashlib"] = res["verify_gbps"] / res["hashlib_gbps"]
        if res["offpkg_verify_internal_s"]:
            res["verify_internal_gbps"] = total / res["offpkg_verify_internal_s"] / 1e9
        if sums:
            res["sha256sum_s"] = min(r.seconds for r in sums)
            res["sha256sum_gbps"] = total / res["sha256sum_s"] / 1e9
            res["sha256sum_cpu_s"] = min(r.cpu_s for r in sums)

    def step_install(self) -> None:
        py = sys.executable
        res = self.step_results("install")
        res["network_isolation"] = " ".join(self.netns) or "none (unshare -n not permitted)"
        reqs = self.bundle / "requirements.txt"
        wheels = self.bundle / "wheels"
        # offpkg install: verifies the bundle, creates the venv, installs (uv from the bundle's tools/).
        v1 = self.work / "venv-offpkg"
        env = self.env("offpkg-install", UV_CACHE_DIR=str(self.work / "uv-cache-install-offpkg"))
        args = ["install", str(self.bundle), "--venv", str(v1), *self.install_force, "--json"]
        self.sync()
        self.load("offpkg install")
        off = self.offpkg(args, env, what="offpkg install", prefix=self.netns)
        j = off.json_out()
        res["offpkg_install_s"], res["offpkg_install_cpu_s"] = off.seconds, off.cpu_s
        res["offpkg_backend"] = j.get("backend")
        res["offpkg_cmd"] = _cmd(self.netns, self.work) + " offpkg " + _cmd(args, self.work)
        self.mem("install", off)
        self.drop(v1, self.work / "uv-cache-install-offpkg")

        # pip: a fresh venv, then pip install --no-index --find-links from the same bundle.
        v2 = self.work / "venv-pip"
        penv = self.env("pip-install")
        self.sync()
        self.load("pip install")
        a = self.run([*self.netns, py, "-m", "venv", str(v2)], penv, what="python -m venv (pip)")
        pip_argv = [*self.netns, str(v2 / "bin" / "python"), "-m", "pip", "install", "--no-index", "--find-links",
                    str(wheels), "-r", str(reqs), "--progress-bar", "off", "--no-input"]
        b = self.run(pip_argv, penv, what="pip install --no-index")
        res["pip_venv_s"], res["pip_install_only_s"] = a.seconds, b.seconds
        res["pip_install_s"], res["pip_install_cpu_s"] = a.seconds + b.seconds, a.cpu_s + b.cpu_s
        res["pip_cmd"] = "python -m venv V2 && " + _cmd(pip_argv, self.work)
        res["pip_install_rss_mb"] = max(a.tree_rss_kb, b.tree_rss_kb) / 1024
        self.drop(v2)

        # uv, for reference: uv venv + uv pip install --offline, empty uv cache.
        v3 = self.work / "venv-uv"
        uenv = self.env("uv-install", UV_CACHE_DIR=str(self.work / "uv-cache-install-uv"))
        self.sync()
        c = self.run([*self.netns, self.uv, "venv", "--quiet", "--python", py, str(v3)], uenv, what="uv venv")
        uv_argv = [*self.netns, self.uv, "pip", "install", "--offline", "--no-index", "--find-links", str(wheels),
                   "-r", str(reqs), "--python", str(v3 / "bin" / "python"), "--quiet"]
        d = self.run(uv_argv, uenv, what="uv pip install --offline")
        res["uv_venv_s"], res["uv_install_only_s"] = c.seconds, d.seconds
        res["uv_install_s"], res["uv_install_cpu_s"] = c.seconds + d.seconds, c.cpu_s + d.cpu_s
        res["uv_cmd"] = "uv venv V3 && " + _cmd(uv_argv, self.work)
        self.drop(v3, self.work / "uv-cache-install-uv")

        res["install_ratio"] = res["offpkg_install_s"] / res["pip_install_s"]
        res["install_vs_uv"] = res["offpkg_install_s"] / res["uv_install_s"]

    def step_archive(self) -> None:
        res = self.step_results("archive")
        plain = self.work / "plain.tar"
        # Warm the page cache for the bundle's files (verify may have been skipped).
        _hashlib_rate(sorted(p for p in self.bundle.rglob("*") if p.is_file()), self.args.hash_threads)
        self.sync()
        self.load("archive")
        tar_argv = ["tar", "cf", str(plain), "-C", str(self.bundle), "."]
        out = self.work / "write_tar.tar"
        wt_argv = [sys.executable, "-c", _ARCHIVE_WRAPPER, str(REPO), str(self.bundle), str(out)]
        tar_s, tar_sync_s, wt_s = [], [], []
        # Alternate the two, best of --repeat: the disk's speed wanders on a shared machine.
        for i in range(self.args.repeat):
            self.sync()
            t = self.run(tar_argv, self.env("tar"), what=f"tar cf #{i + 1}")
            t0 = time.perf_counter()
            os.sync()  # what the same archive costs once it is on disk, like write_tar's fsync
            tar_s.append(t.seconds)
            tar_sync_s.append(t.seconds + time.perf_counter() - t0)
            res["tar_bytes"] = plain.stat().st_size
            plain.unlink()
            self.sync()
            w = self.run(wt_argv, self.env("write-tar"), what=f"offpkg.archive.write_tar #{i + 1}")
            wj = w.json_out()
            wt_s.append(wj["seconds"])
            res["write_tar_bytes"] = out.stat().st_size
            res["write_tar_rss_mb"] = wj["self_kb"] / 1024
            out.unlink()
        res["tar_cmd"] = _cmd(tar_argv, self.work)
        res["tar_cf_s"], res["tar_cf_sync_s"], res["write_tar_s"] = min(tar_s), min(tar_sync_s), min(wt_s)
        res["tar_cf_runs_s"], res["tar_cf_sync_runs_s"], res["write_tar_runs_s"] = tar_s, tar_sync_s, wt_s
        res["archive_ratio"] = res["write_tar_s"] / res["tar_cf_s"]
        res["archive_ratio_vs_tar_sync"] = res["write_tar_s"] / res["tar_cf_sync_s"]

        # The product path: offpkg bundle -o X.tar with a warm cache; timings.write is the archive step.
        tar_out = self.work / "bundle.tar"
        args = ["bundle", "-r", str(self.reqs), "-o", str(tar_out), *self.index, *self.cuda_args, "--json"]
        self.sync()
        b = self.offpkg(args, self.env("offpkg-bundle", **self.cache), what="offpkg bundle -o X.tar (warm)")
        timings = b.json_out().get("timings") or {}
        res["bundle_tar_total_s"] = b.seconds
        res["bundle_tar_write_s"] = timings.get("write")
        res["bundle_tar_cmd"] = "offpkg " + _cmd(args, self.work)
        self.mem("bundle_tar", b)
        self.drop(tar_out)

    # ------------------------------------------------------------------ bookkeeping

    def step_results(self, step: str) -> dict[str, Any]:
        """The step's figures, filled in as they are measured (kept when a later part fails)."""
        return self.results["steps"].setdefault(step, {})

    def mem(self, name: str, r: Run) -> None:
        m = self.results.setdefault("memory_mb", {})
        m[name] = {"offpkg": round((r.self_rss_kb or r.tree_rss_kb) / 1024, 1),
                   "with_children": round(max(r.tree_rss_kb, r.children_rss_kb or 0) / 1024, 1)}

    def load(self, when: str) -> None:
        self.results.setdefault("load_average", {})[when] = [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------- helpers

def _cmd(argv: list[str], work: Path) -> str:
    """A command line for the record, with the temp directory shortened to $WORK."""
    s = " ".join(str(a) for a in argv)
    return s.replace(str(work), "$WORK").replace(sys.executable, "python")


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _hash_one(path: Path) -> int:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    n_total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            n_total += n
    h.hexdigest()
    return n_total


def _hashlib_rate(files: list[Path], threads: int, cpu: bool = False) -> Any:
    """Seconds for a bare hashlib.sha256 of every file, ``threads`` at a time, largest first
    (and the CPU seconds it took, with ``cpu``)."""
    files = sorted(files, key=lambda p: -p.stat().st_size)
    c0, t = os.times(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(_hash_one, files))
    dt, c1 = time.perf_counter() - t, os.times()
    return (dt, (c1.user - c0.user) + (c1.system - c0.system)) if cpu else dt


def _cuda_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Bundle options that give offpkg the same torch as `pip download` gets from PyPI.

    A requirement on torch makes offpkg plan its build from the target (auto: the cpu
    build on a host without a GPU, from download.pytorch.org). pip knows nothing of
    that and takes PyPI's default build (CUDA 13.0 for torch 2.13 on Linux x86_64),
    so offpkg is asked for exactly that build: PyPI's default variant of the newest
    torch offpkg knows. ``offpkg install`` then gets --force, since this machine may
    have no GPU to run it (the driver check still runs, it only warns).
    """
    if args.cuda == "none":
        return [], []
    from offpkg.gpu import cuda

    series = args.torch or cuda.torch_releases()[-1]
    variant = args.cuda if args.cuda != "pypi" else cuda._pypi_default(series)  # noqa: SLF001 - bench only
    if not variant:
        raise BenchError(f"offpkg knows no PyPI default CUDA build for torch {series}; pass --cuda cuXYZ")
    return ["--cuda", variant, "--torch", series], ["--force"]


def _uv_platform() -> str | None:
    """uv's --python-platform for this host (the target offpkg bundles for by default)."""
    try:
        from offpkg.target import Target

        return Target.host().uv_python_platform()
    except Exception:  # an older/newer Target API: resolve for the host without it
        return None


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def machine_facts(uv: str) -> dict[str, Any]:
    cpu = platform.processor() or None
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    try:
        import offpkg

        offpkg_version = offpkg.__version__
    except Exception:
        offpkg_version = None
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() if commit else ""
    return {
        "cpu": cpu, "cores": os.cpu_count(), "sha_ni": " sha_ni" in flags if flags else None,
        "memory_gb": mem, "os": platform.platform(), "python": platform.python_version(),
        "pip": (_version([sys.executable, "-m", "pip", "--version"]) or "").split(" from ")[0] or None,
        "uv": _version([uv, "--version"]), "tar": _version(["tar", "--version"]),
        "offpkg": offpkg_version, "offpkg_commit": (commit + ("+dirty" if dirty else "")) if commit else None,
        "openssl": __import__("ssl").OPENSSL_VERSION,
    }


def _netns_prefix() -> list[str]:
    """`unshare -n` (or `unshare -rn` as a normal user) when this machine allows it."""
    if not shutil.which("unshare"):
        return []
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            pass
    return []


def _check_index(url: str) -> None:
    probe = url.rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(urllib.request.Request(probe, method="HEAD"), timeout=20):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means the benchmark cannot run
        raise BenchError(f"cannot reach the index {url} ({exc}); the download step needs it. "
                         f"Check the network, or pass --index-url for a reachable mirror") from None


NEED_GB = {"gpu-ml": 30, "cpu-small": 1}


# ---------------------------------------------------------------------- report

def goal_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    s = results.get("steps", {})
    values = {
        "bundle_cold_ratio": s.get("download", {}).get("bundle_cold_ratio"),
        "bundle_warm_ratio": s.get("download", {}).get("bundle_warm_ratio"),
        "verify_gbps": s.get("verify", {}).get("verify_gbps"),
        "verify_vs_hashlib": s.get("verify", {}).get("verify_vs_hashlib"),
        "install_ratio": s.get("install", {}).get("install_ratio"),
        "archive_ratio": s.get("archive", {}).get("archive_ratio"),
    }
    mem = results.get("memory_mb", {})
    own = [v["offpkg"] for k, v in mem.items() if k in ("bundle_cold", "bundle_warm", "verify", "install")]
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

    d = s.get("download")
    if d and "bundle_warm_ratio" in d:
        lines += [
            ("resolve only", "(part of bundle)", f"uv pip compile {sec(d['uv_compile_cold_s'])} cold, "
                                                 f"{sec(d['uv_compile_warm_s'])} warm", ""),
            ("resolve+download, cold", sec(d["offpkg_cold_s"]), f"pip download {sec(d['pip_download_s'])}",
             f"{d['bundle_cold_ratio']:.3f}"),
            ("resolve+download, warm", sec(d["offpkg_warm_s"]), f"pip download {sec(d['pip_download_s'])}",
             f"{d['bundle_warm_ratio']:.3f}"),
        ]
    v = s.get("verify")
    if v and "verify_vs_hashlib" in v:
        ref = f"hashlib x{v['hashlib_threads']} {v['hashlib_gbps']:.2f} GB/s"
        if "sha256sum_gbps" in v:
            ref += f"; sha256sum {v['sha256sum_gbps']:.2f} GB/s"
        lines.append((f"verify ({v['bytes'] / 1e9:.2f} GB)", f"{sec(v['offpkg_verify_s'])} = {v['verify_gbps']:.2f} GB/s",
                      ref, f"{v['verify_vs_hashlib']:.3f}"))
    i = s.get("install")
    if i and "install_vs_uv" in i:
        lines.append(("offline install, new venv", sec(i["offpkg_install_s"]),
                      f"venv+pip {sec(i['pip_install_s'])}; uv {sec(i['uv_install_s'])}", f"{i['install_ratio']:.3f}"))
    a = s.get("archive")
    if a and "archive_ratio" in a:
        lines.append(("archive (.tar, write_tar)", sec(a["write_tar_s"]),
                      f"tar cf {sec(a['tar_cf_s'])}; +sync {sec(a['tar_cf_sync_s'])}", f"{a['archive_ratio']:.3f}"))
        if a.get("bundle_tar_write_s") is not None:
            lines.append(("archive in bundle -o X.tar", sec(a["bundle_tar_write_s"]), "(timings.write, one run)",
                          f"{a['bundle_tar_write_s'] / a['tar_cf_s']:.3f}"))
    for k, m in results.get("memory_mb", {}).items():
        lines.append((f"peak RSS: {k}", f"{m['offpkg']:.0f} MB", f"with children {m['with_children']:.0f} MB", ""))
    m = results.get("machine", {})
    la = results.get("load_average", {})
    print(f"\n{results.get('stack')} on {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB; python "
          f"{m.get('python')}, {m.get('pip')}, {m.get('uv')}, offpkg {m.get('offpkg')} ({m.get('offpkg_commit')}); "
          f"load average {la.get('start', ['?'])[0]} at start, {la.get('end', ['?'])[0]} at the end")
    if results.get("stack") == "cpu-small":
        print("(cpu-small is for trying the harness: its seconds are start-up costs; the goals are for gpu-ml)")
    head = ("step", "offpkg", "peer / reference", "ratio")
    widths = [max(len(r[c]) for r in [head, *lines]) for c in range(4)]
    print()
    for r in [head, tuple("-" * w for w in widths), *lines]:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
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


# ---------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", default="gpu-ml", choices=("gpu-ml", "cpu-small"),
                   help="built-in stack to benchmark (default: gpu-ml, ~3 GB; cpu-small takes a minute)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON results file (default: bench/results/latest-<stack>.json)")
    p.add_argument("--steps", default=",".join(STEPS),
                   help=f"comma-separated steps to run, from {','.join(STEPS)} (default: all)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (bundles, venvs, caches, logs)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep only the work directory's logs/ (every command's output), not the gigabytes")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where to create the temporary work directory (default: the system temp dir); "
                        "needs ~30 GB free for gpu-ml")
    p.add_argument("--index-url", default="https://pypi.org/simple",
                   help="the index both pip and offpkg use (default: PyPI)")
    p.add_argument("--cuda", default=None, metavar="pypi|cuXYZ|none",
                   help="torch build offpkg bundles (gpu-ml default: pypi, PyPI's default CUDA build, "
                        "what pip download gets; cpu-small: none)")
    p.add_argument("--torch", default=None, metavar="X.Y",
                   help="torch release for --cuda (default: the newest offpkg knows)")
    p.add_argument("--repeat", type=int, default=3, help="runs of verify and of the hash references; best is kept")
    p.add_argument("--hash-threads", type=int, default=2, help="threads for the raw hashlib reference (default 2)")
    a = p.parse_args(argv)
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps:
        p.error(f"unknown step(s) {', '.join(bad) or '(none)'}; choose from {','.join(STEPS)}")
    if a.repeat < 1 or a.hash_threads < 1:
        p.error("--repeat and --hash-threads must be at least 1")
    a.steps = [s for s in STEPS if s in steps]
    a.cuda = a.cuda or ("pypi" if a.stack == "gpu-ml" else "none")
    a.out = a.out or REPO / "bench" / "results" / f"latest-{a.stack}.json"
    return a


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["updates"]:  # the update scenario: bench/updates.py
        return __import__("updates").main((sys.argv[1:] if argv is None else argv)[1:])
    args = parse_args(argv)
    try:
        from offpkg.backends import uv_binary
        from offpkg.stacks import get_stack
    except ImportError as exc:
        print(f"error: cannot import offpkg from {REPO}: {exc}\nhint: run `pip install -e {REPO}` first",
              file=sys.stderr)
        return 2
    uv = uv_binary()
    for tool, found in (("uv", uv), ("tar", shutil.which("tar"))):
        if not found:
            print(f"error: {tool} is not available; the benchmark compares against it", file=sys.stderr)
            return 2
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(parent).free / 1e9
    if free_gb < NEED_GB[args.stack]:
        print(f"error: {parent} has {free_gb:.0f} GB free; the {args.stack} benchmark needs about "
              f"{NEED_GB[args.stack]} GB\nhint: pass --workdir on a bigger disk", file=sys.stderr)
        return 2
    try:
        _check_index(args.index_url)  # every step needs a bundle, and a bundle needs the index
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix=f"offpkg-bench-{args.stack}-", dir=parent))
    bench = Bench(args, work, uv=uv, requirements=list(get_stack(args.stack).requirements), netns=_netns_prefix())
    r = bench.results
    r.update({
        "schema": SCHEMA, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stack": args.stack, "requirements": bench.requirements, "index_url": args.index_url,
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_facts(uv), "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "steps": {},
    })
    print(f"offpkg benchmark: stack {args.stack}, steps {','.join(args.steps)}, work dir {work}", flush=True)
    rc = 0
    t_all = time.perf_counter()
    try:
        bench.prepare()
        for step in args.steps:
            if step != "download":
                bench.ensure_bundle()
            print(f"  {step} ...", flush=True)
            t = time.perf_counter()
            getattr(bench, f"step_{step}")()
            print(f"  {step} done in {time.perf_counter() - t:.0f} s", flush=True)
    except BenchError as exc:
        r["error"] = str(exc)
        print(f"error: {exc}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        r["error"] = "interrupted"
        print("error: interrupted", file=sys.stderr)
        rc = 130
    finally:
        r["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
        r["total_s"] = time.perf_counter() - t_all
        r["goals"] = goal_rows(r)
        write_json(args.out, r)
        if args.keep:
            print(f"work directory kept: {work}")
        elif (rc or args.keep_logs) and (work / "logs").is_dir():
            # Keep the logs to read, not the gigabytes of bundles, venvs and caches.
            for p in work.iterdir():
                if p.name != "logs":
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            print(f"logs kept: {work}/logs")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(r)
    print(f"results: {args.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
