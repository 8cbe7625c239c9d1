"""The physical references: what the same work costs with nothing of offpkg's in the way.

- raw parallel fetch: the bundle's exact files, by URL, 8 streams, no hashing, no resolution
  (curl --parallel where curl exists, else an equivalent stdlib fetcher);
- hashlib with N threads over the same files, largest first;
- ``cp -a`` of a finished venv: the floor of any install (no resolution, no unpacking).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from harness import Bench, BenchError, Run

STREAMS = 8


def hash_one(path: Path) -> int:
    h = hashlib.sha256()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    n_total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            n_total += n
    h.hexdigest()
    return n_total


def hashlib_rate(files: list[Path], threads: int, cpu: bool = False) -> Any:
    """Seconds for a bare hashlib.sha256 of every file, ``threads`` at a time, largest first
    (and the CPU seconds it took, with ``cpu``)."""
    files = sorted(files, key=lambda p: -p.stat().st_size)
    c0, t = os.times(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(hash_one, files))
    dt, c1 = time.perf_counter() - t, os.times()
    return (dt, (c1.user - c0.user) + (c1.system - c0.system)) if cpu else dt


def bundle_urls(bundle: Path) -> list[tuple[str, str, int]]:
    """(url, filename, size) of every file of the bundle that came from an index."""
    m = json.loads((bundle / "offpkg.json").read_text())
    out = []
    for p in m["packages"]:
        if p.get("url"):
            out.append((p["url"], p["filename"], p["size"]))
    if not out:
        raise BenchError(f"{bundle}/offpkg.json records no download URLs: nothing to fetch raw")
    return out


def raw_fetch(b: Bench, bundle: Path, dest: Path, what: str) -> tuple[Run, int]:
    """Fetch exactly the bundle's files, 8 at a time, into ``dest``; (the run, bytes)."""
    files = bundle_urls(bundle)
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("curl"):
        cfg = b.work / f"curl-{what}.cfg"
        lines = []
        for url, name, _ in files:
            lines += [f'url = "{url}"', f'output = "{dest / name}"']
        cfg.write_text("\n".join(lines) + "\n")
        argv = ["curl", "--parallel", "--parallel-max", str(STREAMS), "--fail", "--silent", "--show-error",
                "--location", "--config", str(cfg)]
    else:
        argv = [os.environ.get("PYTHON", "python3"), "-c", _STDLIB_FETCH, str(dest), json.dumps(files)]
    r = b.run(argv, b.env("raw-fetch"), what=what)
    got = sum(p.stat().st_size for p in dest.iterdir())
    want = sum(s for _, _, s in files)
    if got != want:
        raise BenchError(f"{what}: fetched {got} bytes, the bundle lists {want}; see {r.log}")
    return r, got


# The fallback without curl: 8 threads of urllib, 1 MiB reads, no hashing.
_STDLIB_FETCH = r"""
import json, sys, urllib.request, concurrent.futures, os
dest, files = sys.argv[1], json.loads(sys.argv[2])
def get(item):
    url, name, _ = item
    with urllib.request.urlopen(url, timeout=60) as r, open(os.path.join(dest, name), "wb") as f:
        while chunk := r.read(1 << 20):
            f.write(chunk)
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(get, files))
"""


def cp_a(b: Bench, venv: Path, what: str) -> Run:
    """``cp -a`` of a finished venv to a sibling: the floor of installing the same files."""
    copy = venv.with_name(venv.name + "-cp")
    r = b.run(["cp", "-a", str(venv), str(copy)], b.env("cp-a"), what=what)
    b.drop(copy)
    return r
