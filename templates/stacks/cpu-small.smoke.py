#!/usr/bin/env python3
"""Smoke test of the cpu-small stack, run inside the freshly installed environment.

    VENV/bin/python cpu-small.smoke.py [--expect-cuda none]

Standard library and the stack only; no network. Prints ONE JSON object on
stdout and exits 0 when every check passes, 1 when any fails, 2 on bad arguments.
The stack has no torch, so --expect-cuda (accepted for the same calling
convention as gpu-ml) must be none.
"""

import argparse
import contextlib
import json
import platform
import re
import sys
import time
import traceback

STACK = "cpu-small"
FORMAT = 1
PACKAGES = [("requests", "requests"), ("numpy", "numpy"), ("tqdm", "tqdm"), ("packaging", "packaging")]


def parse_expect_cuda(value):
    v = value.strip().lower()
    if v in ("none", "cpu", "null"):
        return None
    if re.fullmatch(r"\d+\.\d+", v):
        return v
    raise argparse.ArgumentTypeError("expected a CUDA version like 13.0, or none; got %r" % value)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Smoke test of the %s stack (no network)." % STACK)
    ap.add_argument("--expect-cuda", default=None, type=parse_expect_cuda, metavar="none",
                    help="must be none: this stack has no torch")
    args = ap.parse_args(argv)

    real_stdout = sys.stdout
    start = time.perf_counter()
    results = []
    modules = {}
    versions = {}

    def run(name, fn, needs=()):
        missing = [m for m in needs if m not in modules]
        if missing:
            results.append({"name": name, "ok": False, "skipped": True,
                            "error": "needs %s, which did not import" % ", ".join(missing)})
            return
        t0 = time.perf_counter()
        rec = {"name": name}
        try:
            detail = fn()
            rec["ok"] = True
            if detail is not None:
                rec["detail"] = detail
        except Exception as exc:
            rec["ok"] = False
            rec["error"] = "%s: %s" % (type(exc).__name__, exc)
            rec["traceback"] = traceback.format_exc(limit=6)[-2000:]
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        results.append(rec)

    def do_import(dist, mod):
        import importlib

        module = importlib.import_module(mod)
        modules[mod] = module
        version = getattr(module, "__version__", None)
        if version is None:
            from importlib import metadata

            version = metadata.version(dist)
        versions[dist] = str(version)
        return str(version)

    def expect_cuda():
        if args.expect_cuda is not None:
            raise AssertionError("the %s stack has no torch; it cannot be a CUDA %s build" % (STACK, args.expect_cuda))
        return "no torch in this stack"

    def numeric():
        np = modules["numpy"]
        a = np.array([[4.0, 1.0], [2.0, 3.0]])
        x = np.linalg.solve(a, np.array([6.0, 8.0]))
        assert np.allclose(x, [1.0, 2.0]), x
        assert int(np.arange(101).sum()) == 5050
        return "numpy solve and sum"

    def progress():
        import io

        out = io.StringIO()
        total = sum(modules["tqdm"].tqdm(range(10), file=out, mininterval=0))
        assert total == 45, total
        return "iterated 10 items"

    def versions_check():
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        assert Version("2.13.0+cu130") in SpecifierSet("==2.13.0")
        assert Version("1.10") > Version("1.9")
        return "packaging version ordering"

    def http_request():
        # Builds a request without sending it: no network.
        req = modules["requests"].Request("GET", "http://offpkg.invalid/x", params={"q": "a b"}).prepare()
        assert req.url == "http://offpkg.invalid/x?q=a+b", req.url
        return req.url

    with contextlib.redirect_stdout(sys.stderr):
        for dist, mod in PACKAGES:
            run("import:" + dist, lambda dist=dist, mod=mod: do_import(dist, mod))
        run("expect_cuda", expect_cuda)
        run("numpy_numeric", numeric, needs=["numpy"])
        run("tqdm_progress", progress, needs=["tqdm"])
        run("packaging_versions", versions_check, needs=["packaging"])
        run("requests_prepare", http_request, needs=["requests"])

    ok = all(r["ok"] for r in results)
    report = {
        "smoke": STACK,
        "format": FORMAT,
        "ok": ok,
        "expect_cuda": args.expect_cuda,
        "torch_cuda": None,
        "gpu_available": False,
        "gpu": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "checks": results,
        "failed": [r["name"] for r in results if not r["ok"]],
        "seconds": round(time.perf_counter() - start, 3),
    }
    real_stdout.write(json.dumps(report, sort_keys=True) + "\n")
    real_stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
