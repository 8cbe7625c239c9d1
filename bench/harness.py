"""The bench's machinery: clean environments, timed commands with their peak memory, the work directory.

Every pip, uv and offpkg process gets a fresh HOME, PIP_CONFIG_FILE=/dev/null and none
of the caller's PIP_*/UV_*/OFFPKG_* variables, so a machine's pip.conf (find-links,
extra indexes) cannot change what is resolved or downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = 2
MB = 1 << 20
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


    def ensure_bundle(self) -> None:
        """Steps other than download need a bundle: build one (untimed) when download was skipped."""
        if (self.bundle / "offpkg.json").exists():
            return
        args = ["bundle", "-r", str(self.reqs), "-o", str(self.bundle), *self.index, *self.cuda_args, "--json"]
        self.offpkg(args, self.env("offpkg-bundle", **self.cache), what="offpkg bundle (setup, untimed)")

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
    if args.cuda == "pypi" and not args.torch:
        # offpkg's own default: with only PyPI reachable it takes PyPI's default build, as pip does.
        return [], ["--force"]
    series = args.torch
    variant = args.cuda
    if variant == "pypi":
        try:
            from offpkg.gpu import cuda

            variant = cuda._pypi_default(series)  # noqa: SLF001 - bench only
        except (ImportError, AttributeError):
            variant = None
    if not variant:
        raise BenchError(f"cannot tell PyPI's default CUDA build for torch {series}; pass --cuda cuXYZ")
    return ["--cuda", variant, *(["--torch", series] if series else [])], ["--force"]


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

