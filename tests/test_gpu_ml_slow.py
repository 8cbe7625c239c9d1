"""The real gpu-ml stack from PyPI: bundle, verify (smoke test), install offline, import.

torch 2.13.0 on PyPI is the CUDA 13.0 build: about 74 wheels and 2.9 GB. Marked slow
and network, so it stays out of the default run (pyproject's addopts has
``-m 'not slow'``). Run it with::

    python -m pytest tests/test_gpu_ml_slow.py -m slow -p no:cacheprovider

Set GPU_ML_CACHE_DIR to keep offpkg's download cache between runs (default: a temp
dir; the bundle and the venv are always removed afterwards). It is not an OFFPKG_*
variable because the test fixtures strip those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import run_offpkg

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="offpkg-gpu-ml-"))
    yield d
    # The bundle, the venv and a cold cache are several GB each: never leave them behind.
    shutil.rmtree(d, ignore_errors=True)


def test_gpu_ml_stack_from_pypi_for_a_580_driver_h100(workdir, offline) -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the target file is for CPython 3.11 (--verify installs the bundle with this python)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = workdir / "home"
    home.mkdir()
    env.update(HOME=str(home), PIP_CONFIG_FILE=os.devnull, NO_COLOR="1", CI="1",
               OFFPKG_CACHE_DIR=os.environ.get("GPU_ML_CACHE_DIR") or str(workdir / "cache"),
               UV_CACHE_DIR=str(workdir / "uv-cache"))
    target = workdir / "target.json"
    probe_env = dict(env, OFFPKG_CUDA_DRIVER_VERSION="580.65.06", OFFPKG_CUDA_COMPUTE_CAP="9.0")
    proc = run_offpkg(["probe", "-o", str(target)], probe_env)
    assert proc.returncode == 0, proc.stderr

    t0 = time.monotonic()
    out = workdir / "OUT"
    proc = run_offpkg(["bundle", "--stack", "gpu-ml", "--cuda", "auto", "--target", str(target), "-o", str(out),
                       "--verify", "--json"], env, timeout=3600)
    bundle_s = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    rec = res["cuda"]
    assert rec["variant"] == "cu130" and rec["from_pypi"] is True and rec["cuda"] == "13.0"
    assert rec["torch_version"].startswith("2.13.")
    assert res["ok"] and res["verification"]["verified"]
    smoke = next(c for c in res["verification"]["checks"] if c["name"] == "gpu-ml smoke test")
    assert smoke["ok"] and smoke["report"]["torch_cuda"] == "13.0"

    from offpkg.gpu.bundle import check_manifest
    from offpkg.manifest import Manifest

    m = Manifest.read(out)
    wheels = m.requirement_packages
    torch_whl = next(p for p in wheels if p.name == "torch")
    assert "+" not in torch_whl.version, torch_whl.filename  # PyPI's CUDA 13 build, not /opt/wheels' +cpu
    assert torch_whl.url and torch_whl.url.startswith("https://files.pythonhosted.org/")
    names = {p.name for p in wheels}
    assert "cuda-toolkit" in names and any(n.startswith("nvidia-") for n in names)
    assert check_manifest(m, out) == []
    assert 60 <= len(wheels) <= 100, len(wheels)

    proc = run_offpkg(["verify", str(out), "--json"], env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stdout

    t1 = time.monotonic()
    venv = workdir / "V"
    proc = run_offpkg(["install", str(out), "--venv", str(venv), "--json"], env, offline=offline, timeout=1800)
    install_s = time.monotonic() - t1
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    code = ("import json, torch, transformers, tokenizers, sentencepiece, sklearn, pandas, numpy, matplotlib, tqdm\n"
            "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda}))")
    proc = subprocess.run([*offline, str(venv / "bin/python"), "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # PyPI's wheel is unlabelled, but torch reports its build at run time: 2.13.0+cu130.
    assert info["cuda"] == "13.0" and info["torch"] == f"{rec['torch_version']}+cu130"
    print(f"\ngpu-ml: {len(wheels)} wheels, {m.total_size() / 1e9:.2f} GB, bundle+verify {bundle_s:.0f} s, "
          f"offline install {install_s:.0f} s, torch {info['torch']} CUDA {info['cuda']}")
