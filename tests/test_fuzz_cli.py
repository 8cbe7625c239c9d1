"""Fuzz the whole command line (hypothesis): malformed arguments, manifests, archives and
target files must never reach exit 70 (a bug), never print a traceback, and with
``--json`` every failure prints exactly one JSON document on stdout.

Runs in process through the real error boundary (``offpkg.cli.main``) on a real
bundle built from a loopback index, mutated one way or another per example.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault_servers import FaultServer
from offpkg.backends import Sources, get_backend
from offpkg.bundle import BundleOptions, build_bundle
from offpkg.cli import main
from offpkg.net.cache import Cache
from offpkg.target import Target
from pkgfactory import Dist, build_wheel, write_simple_index

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

WEIRD = ["", " ", "-", "--", "..", "/", "/proc/nope/x", "\u00e9\u0301", "a" * 300, "{}", "[]", "null", "-1",
         "1e999", "--json", "--bogus", "-vq", "0", "nan", "x" * 5000, "../../etc/passwd", "C:\\x", "~", "$HOME"]
leaf = (st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(allow_nan=False)
        | st.text(max_size=20) | st.sampled_from(WEIRD))
json_value = st.recursive(leaf, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=15)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzcli-idx")
    build_wheel(Dist("alpha", "1.0", ["beta"]), root / "files")
    build_wheel(Dist("beta", "1.0"), root / "files")
    write_simple_index(root / "files", root)
    out = tmp_path_factory.mktemp("fuzzcli") / "bundle"
    with FaultServer(root) as srv:
        build_bundle(BundleOptions(requirements=["alpha"], targets=[Target.host()], sources=Sources((srv.url,)),
                                   backend=get_backend("uv"), output=out, cache=Cache(out.parent / "cache"),
                                   tools=False))
    return out


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutate(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one to three values replaced or removed (a root replacement included)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            return draw(json_value)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_value)
    return doc


def _reseal(bundle: Path) -> None:
    """Make SHA256SUMS agree with the (mutated) manifest, so checks past the checksums run too."""
    sums = bundle / "SHA256SUMS"
    digest = hashlib.sha256((bundle / "offpkg.json").read_bytes()).hexdigest()
    lines = [f"{digest}  offpkg.json" if line.endswith("  offpkg.json") else line
             for line in sums.read_text().splitlines()]
    sums.write_text("\n".join(lines) + "\n")


@st.composite
def bundle_input(draw: st.DrawFn, real: Path, work: Path) -> Path:
    """A bundle-shaped input: a mutated directory, an archive of one, or bytes that only look like one."""
    kind = draw(st.sampled_from(["dir", "dir-resealed", "tar", "garbage", "deep", "hostile-member", "truncated"]))
    target = work / "b"
    if kind.startswith("dir") or kind in ("tar", "truncated"):
        shutil.copytree(real, target)
        manifest = json.loads((target / "offpkg.json").read_text())
        (target / "offpkg.json").write_text(json.dumps(draw(mutate(manifest))))
        if kind != "dir":
            _reseal(target)
        if kind.startswith("dir"):
            return target
        tar = work / "b.tar"
        with tarfile.open(tar, "w") as t:
            t.add(target, arcname=".")
        if kind == "truncated":
            data = tar.read_bytes()
            tar.write_bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
        return tar
    suffix = draw(st.sampled_from([".tar", ".tar.zst", ".sh", ".zip", ""]))
    path = work / f"in{suffix}"
    if kind == "garbage":
        path.write_bytes(draw(st.binary(max_size=2000)))
    else:
        with tarfile.open(path, "w") as t:
            name = ("/".join(["d"] * draw(st.integers(200, 1600))) + "/f" if kind == "deep"
                    else draw(st.sampled_from(["/abs", "../up", "a/../../x", "a\\b", "x/./../..", "ok/" + "n" * 300])))
            info = tarfile.TarInfo(name)
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
    return path


@st.composite
def command(draw: st.DrawFn, real: Path, work: Path) -> list[str]:
    verb = draw(st.sampled_from(["inspect", "verify", "install", "install-conda", "index", "probe", "freeze",
                                 "bundle-target", "lock-target", "junk"]))
    if verb == "probe":
        argv = ["probe", "-o", draw(st.sampled_from([str(work / "t.json"), "/proc/nope/t.json",
                                                     str(work / "x" / "y.json"), str(work)]))]
    elif verb == "freeze":
        fake = work / "py"
        fake.write_text("#!/bin/sh\nprintf '%s' " + repr(draw(st.sampled_from(["[{}]", "not json", "{}", "[1,2]",
                                                                              '[{"name": 1}]', ""]))) + "\n")
        fake.chmod(0o755)
        argv = ["freeze", "--python", str(fake)]
    elif verb in ("bundle-target", "lock-target"):
        tj = draw(mutate(Target.host().to_json()))
        tf = work / "target.json"
        tf.write_text(json.dumps(tj) if draw(st.booleans()) else draw(st.text(max_size=200)))
        try:
            Target.from_file(tf)
            tf.write_text("{}")  # a valid target would go on to resolve: keep this offline and fast
        except Exception:  # noqa: BLE001 - any refusal is what this example wants
            pass
        argv = [verb.split("-")[0], "alpha", "--target", str(tf), "-i", "http://127.0.0.1:9/simple"]
        if verb == "bundle-target":
            argv += ["-o", str(work / "out")]
    elif verb == "junk":
        argv = draw(st.lists(st.sampled_from(["bundle", "verify", "install", "lock", "inspect", "mirror", "cuda",
                                              "stack", "config", "index", *WEIRD]), min_size=1, max_size=5))
    else:
        b = str(draw(bundle_input(real, work)))
        argv = {"inspect": ["inspect", b], "verify": ["verify", b], "index": ["index", b, "-o", str(work / "ix")],
                "install": ["install", b, "--venv", str(work / "v")],
                "install-conda": ["install", b, "--conda-prefix", str(work / "p")]}[verb]
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), "--json")
    return argv


@FUZZ
@given(data=st.data())
def test_no_input_reaches_exit_70(real, tmp_path_factory, capsys, data) -> None:
    work = tmp_path_factory.mktemp("ex")
    argv = data.draw(command(real, work))
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    shutil.rmtree(work, ignore_errors=True)
    assert code != 70, (argv, out.err)
    assert "Traceback" not in out.err, (argv, out.err)
    args = argv[: argv.index("--")] if "--" in argv else argv
    if "--json" in args and code not in (0,):
        doc = json.loads(out.out)  # exactly one document: two would not parse
        assert doc["ok"] is False, (argv, doc)
        if doc["command"] == "error":
            assert doc["error"]["exit_code"] == code and doc["error"]["message"], (argv, doc)
