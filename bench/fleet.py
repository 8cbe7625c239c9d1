"""The fleet scenario: push the stack's bundle to a local registry, pull it to 4 clients at once.

References in the same run: a raw upload of the same blobs (curl: POST + PUT, one after the
other, as offpkg does), and 4 clients each GETting the same blobs raw (curl, no checks). Also
the bytes a second push uploads when one package is added. The registry is Debian's
docker-registry on 127.0.0.1 with filesystem storage in the work directory.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import _OFFPKG_WRAPPER, REPO, Bench, BenchError, _cmd
from steps import register

CLIENTS = 4


def _start_registry(root: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("docker-registry")
    if not exe:
        raise BenchError("docker-registry is not installed (apt-get install docker-registry); the fleet step needs it")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise BenchError("docker-registry did not start")


def _blobs(bundle: Path) -> list[tuple[Path, str]]:
    import hashlib

    out = []
    for p in sorted(bundle.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
            out.append((p, "sha256:" + h.hexdigest()))
    return out


def _raw_upload(b: Bench, host: str, blobs: list[tuple[Path, str]]) -> float:
    """POST + PUT of every blob with curl, one after the other, into a fresh repository."""
    t = time.perf_counter()
    for i, (path, digest) in enumerate(blobs):
        post = subprocess.run(["curl", "-sS", "-X", "POST", "-D", "-", "-o", "/dev/null",
                               f"http://{host}/v2/raw/up{i}/blobs/uploads/"], capture_output=True, text=True)
        loc = next((ln.split(":", 1)[1].strip() for ln in post.stdout.splitlines()
                    if ln.lower().startswith("location:")), None)
        if not loc:
            raise BenchError(f"raw upload: the registry gave no upload location: {post.stdout[-300:]}")
        url = (loc if loc.startswith("http") else f"http://{host}{loc}") + ("&" if "?" in loc else "?") + \
            f"digest={digest.replace(':', '%3A')}"
        put = subprocess.run(["curl", "-sS", "-f", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                              "--data-binary", f"@{path}", url], capture_output=True, text=True)
        if put.returncode:
            raise BenchError(f"raw upload of {path.name} failed: {put.stderr[-300:]}")
    return time.perf_counter() - t


def step_fleet(b: Bench) -> None:
    res = b.step_results("fleet")
    reg, host = _start_registry(b.work / "registry")
    try:
        env = b.env("offpkg-fleet")
        blobs = _blobs(b.bundle)
        total = sum(p.stat().st_size for p, _ in blobs)
        b.load("fleet")
        b.sync()
        push = b.offpkg(["push", str(b.bundle), f"oci://{host}/ml/stack:1", "--plain-http", "--json"], env,
                        what="offpkg push")
        pj = push.json_out()
        b.mem("push", push)
        b.sync()
        raw_up = _raw_upload(b, host, blobs)
        res.update({"bytes": total, "blobs": pj["blobs"], "push_s": push.seconds, "raw_upload_s": raw_up,
                    "push_vs_raw_upload": push.seconds / raw_up,
                    "push_cmd": "offpkg " + _cmd(push.argv[-5:], b.work)})
        # A second bundle: the same stack and one package more (six), pushed as :2.
        two = b.work / "bundle-plus-one"
        b.offpkg(["bundle", "-r", str(b.reqs), "six", "-o", str(two), *b.index, *b.cuda_args, "--json"],
                 b.env("offpkg-bundle", **b.cache), what="offpkg bundle, one package more (untimed)")
        second = b.offpkg(["push", str(two), f"oci://{host}/ml/stack:2", "--plain-http", "--json"], env,
                          what="offpkg push, one package more").json_out()
        res.update({"second_push_uploaded_bytes": second["uploaded_bytes"],
                    "second_push_uploaded_blobs": second["uploaded_blobs"],
                    "second_push_total_bytes": second["total_bytes"]})
        b.drop(two)
        # N clients at once: offpkg pull, then raw GETs of the same blobs (curl, one client = one process).
        outs = [b.work / f"client-{i}" for i in range(CLIENTS)]
        b.sync()
        t = time.perf_counter()
        procs = [subprocess.Popen(
            [sys.executable, "-c", _OFFPKG_WRAPPER, str(b.work / f"rss-pull-{i}.json"), str(REPO), "pull",
             f"oci://{host}/ml/stack:1", "-o", str(o), "--plain-http", "--json"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i, o in enumerate(outs)]
        errs = [p.communicate()[1] for p in procs]
        pull_s = time.perf_counter() - t
        if any(p.returncode for p in procs):
            raise BenchError(f"offpkg pull failed: {errs[0][-500:]!r}")
        b.drop(*outs)
        cfgs = []
        for i in range(CLIENTS):
            d = b.work / f"raw-client-{i}"
            d.mkdir()
            cfg = b.work / f"raw-client-{i}.cfg"
            cfg.write_text("".join(f'url = "http://{host}/v2/ml/stack/blobs/{dg}"\noutput = "{d / str(n)}"\n'
                                   for n, (_, dg) in enumerate(blobs)))
            cfgs.append(cfg)
        t = time.perf_counter()
        procs = [subprocess.Popen(["curl", "-sS", "-f", "-L", "--config", str(c)]) for c in cfgs]
        for p in procs:
            p.wait()
        raw_s = time.perf_counter() - t
        b.drop(*[b.work / f"raw-client-{i}" for i in range(CLIENTS)])
        res.update({"clients": CLIENTS, "pull_s": pull_s, "raw_get_s": raw_s, "pull_vs_raw_get": pull_s / raw_s})
    finally:
        reg.kill()
        reg.wait()
        b.drop(b.work / "registry")
    b.results.setdefault("extra_rows", {})["fleet"] = [
        ("push to a local registry", f"{res['push_s']:.2f} s", f"raw upload {res['raw_upload_s']:.2f} s",
         f"{res['push_vs_raw_upload']:.3f}"),
        (f"pull to {CLIENTS} clients at once", f"{res['pull_s']:.2f} s", f"raw GETs {res['raw_get_s']:.2f} s",
         f"{res['pull_vs_raw_get']:.3f}"),
        ("second push, one package more", f"{res['second_push_uploaded_bytes'] / 1e6:.1f} MB uploaded",
         f"of {res['second_push_total_bytes'] / 1e9:.2f} GB", ""),
    ]
    json.dumps(res)  # figures only: serialisable


register("fleet", step_fleet)
