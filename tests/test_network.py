"""Real PyPI (skipped when it is unreachable): a target other than this host, and an offline install."""

from __future__ import annotations

import json
import subprocess

import pytest

from offpkg.target import Target

pytestmark = pytest.mark.network


def test_tokenizers_for_python310_manylinux_2_28(tmp_path, env, offpkg) -> None:
    """pip's `download --platform manylinux_2_28_x86_64 --python-version 3.10 --only-binary=:all: tokenizers`
    finds nothing (pip#10760); offpkg expands the platform and finds the manylinux_2_17 wheel."""
    out = tmp_path / "b"
    proc = offpkg(["bundle", "tokenizers", "requests", "--python-version", "3.10", "--platform",
                   "manylinux_2_28_x86_64", "-o", str(out), "--json", "-i", "https://pypi.org/simple"], env)
    assert proc.returncode == 0, proc.stderr
    target = Target.from_options("3.10", ["manylinux_2_28_x86_64"])
    wheels = [p.name for p in (out / "wheels").iterdir()]
    tok = [w for w in wheels if w.startswith("tokenizers-")]
    assert len(tok) == 1 and "manylinux_2_17_x86_64" in tok[0], tok
    assert all(target.accepts_wheel(w) for w in wheels), wheels
    # uv for the target's platform rides along in tools/ for a fast offline install.
    tools = [p.name for p in (out / "tools").iterdir()]
    assert any(t.startswith("uv-") and "manylinux" in t for t in tools), tools
    assert any(t.startswith("pip-") for t in tools), tools
    manifest = json.loads((out / "offpkg.json").read_text())
    assert manifest["indexes"] == ["https://pypi.org/simple"]
    verify = offpkg(["verify", str(out)], env)
    assert verify.returncode == 0, verify.stderr


def test_pip_alone_fails_where_offpkg_succeeds(tmp_path, env) -> None:
    """The motivating failure, for the record: pip matches the platform tag exactly."""
    import sys

    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path), "--platform",
                           "manylinux_2_28_x86_64", "--python-version", "3.10", "--only-binary=:all:", "tokenizers",
                           "--index-url", "https://pypi.org/simple"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "No matching distribution" in proc.stderr


def test_requests_for_this_host_installs_offline(tmp_path, env, offpkg, offline) -> None:
    out = tmp_path / "b.tar"
    proc = offpkg(["bundle", "requests", "-o", str(out), "--json", "-i", "https://pypi.org/simple"], env)
    assert proc.returncode == 0, proc.stderr
    venv = tmp_path / "v"
    inst = offpkg(["install", str(out), "--venv", str(venv), "--json"], env, offline=offline)
    assert inst.returncode == 0, inst.stderr
    assert json.loads(inst.stdout)["backend"] == "uv"  # the bundled uv ran on the offline side
    run = subprocess.run([str(venv / "bin/python"), "-c", "import requests, urllib3, idna, certifi; print(requests.__version__)"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
