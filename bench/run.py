#!/usr/bin/env python3
"""offpkg's benchmark: offpkg against the physical references and its peers, side by side, in one run.

    python bench/run.py [--stack gpu-ml|cpu-small] [--steps download,resolve,verify,install,archive,scale]

Each step measures offpkg and its references on the same files, the same machine, one
after the other, so the ratios hold even where the machine is slow or noisy:

- bundle, cold: against a raw parallel fetch of exactly the bundle's files (curl --parallel, 8 streams);
- bundle, warm: against `pip download`;
- resolve for another target: against `uv pip compile --python-platform`;
- verify: against hashlib with 2 threads over the same files;
- install: against uv alone (uv venv + uv pip install --offline, empty cache), `cp -a` of the venv, pip;
- scale: three targets in one bundle, time per unique byte against one target.

It prints a table and writes JSON with the machine's facts and its load. It is a
benchmark, not a test: nothing fails on time, CI never runs it. The modules: harness.py
(running commands), refs.py (the physical references), steps.py (the steps), scale.py,
report.py (goals, table, JSON). See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, SCHEMA, Bench, BenchError, _check_index, _netns_prefix, machine_facts  # noqa: E402

sys.path.insert(0, str(REPO))  # benchmark this checkout's offpkg, not some other installed copy

import report  # noqa: E402
import fleet  # noqa: E402,F401 - registers the fleet step (--steps fleet)
import scale  # noqa: E402,F401 - registers the scale step
import updates  # noqa: E402,F401 - registers the updates step (issue 15; run it with --steps updates)
from steps import STANDALONE, STEPS  # noqa: E402

DEFAULT_STEPS = ("download", "resolve", "verify", "install", "archive", "scale")
NEED_GB = {"gpu-ml": 40, "cpu-small": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", default="gpu-ml", choices=("gpu-ml", "cpu-small"),
                   help="built-in stack to benchmark (default: gpu-ml, ~3 GB; cpu-small takes a minute)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON results file (default: bench/results/latest-<stack>.json)")
    p.add_argument("--steps", default=",".join(DEFAULT_STEPS),
                   help=f"comma-separated steps to run, from {','.join(STEPS)} (default: {','.join(DEFAULT_STEPS)})")
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
                   help="torch release for --cuda (default: offpkg's own default, PyPI's newest)")
    p.add_argument("--repeat", type=int, default=3, help="runs of verify and of the hash references; best is kept")
    p.add_argument("--hash-threads", type=int, default=2, help="threads for the raw hashlib reference (default 2)")
    a = p.parse_args(argv)
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps:
        p.error(f"unknown step(s) {', '.join(bad) or '(none)'}; choose from {','.join(STEPS)}")
    if a.repeat < 1 or a.hash_threads < 1:
        p.error("--repeat and --hash-threads must be at least 1")
    a.steps = [s for s in STEPS if s in steps]  # in the registry's order: download first
    a.cuda = a.cuda or ("pypi" if a.stack == "gpu-ml" else "none")
    a.out = a.out or REPO / "bench" / "results" / f"latest-{a.stack}.json"
    return a


def main(argv: list[str] | None = None) -> int:
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
            if step not in STANDALONE:
                bench.ensure_bundle()
            print(f"  {step} ...", flush=True)
            t = time.perf_counter()
            STEPS[step](bench)
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
        r["goals"] = report.goal_rows(r)
        report.write_json(args.out, r)
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
    report.print_table(r)
    print(f"results: {args.out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
