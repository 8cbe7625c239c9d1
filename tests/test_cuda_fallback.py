"""A default that works where only PyPI is reachable, the torch family in lockstep, releases newer than
offpkg's data, ROCm bundles, and metadata read without downloading wheels.

Real parts: the local torch index (tests/torchindex.py) served with range requests on 127.0.0.1,
real uv resolution, and the offline install under ``unshare -n``. "PyPI only" is made real by
pointing the configured PyTorch index and the catalog's PyTorch mirror at a closed loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg
from torchindex import NEW_TORCH, amd_target_json, build_torch_index, serve_ranges, target_json, wheel_names

from offpkg.gpu.bundle import check_manifest
from offpkg.manifest import Manifest

TT = "cp311-cp311-manylinux_2_28_x86_64.whl"


def _dead_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/whl"


@pytest.fixture(scope="module")
def tindex(tmp_path_factory):
    ti = build_torch_index(tmp_path_factory.mktemp("torchindex"))
    server, base = serve_ranges(ti.root)
    ti.base, ti.log = base, server.log
    yield ti
    server.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory, session_uv_cache):
    base = tmp_path_factory.mktemp("fallback")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = base / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"), UV_CACHE_DIR=str(session_uv_cache),
               PYTHONUTF8="1", NO_COLOR="1", CI="1")
    return {"base": base, "env": env}


def _config(work, tmp_path: Path, **keys: str) -> dict[str, str]:
    """An environment whose offpkg config file holds ``keys`` and a ``mirrors`` table (no flags needed)."""
    mirrors = keys.pop("pytorch_mirror")
    lines = [f'{k} = "{v}"' for k, v in keys.items()]
    lines += ["", "[mirrors.official]", f'url = "{mirrors}"', 'kind = "pytorch"']
    cfg = tmp_path / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return dict(work["env"], OFFPKG_CONFIG=str(cfg))


# ------------------------------------------------------------------ the key acceptance

def test_unpinned_torch_and_torchaudio_with_no_flags_where_only_pypi_answers(work, tindex, tmp_path,
                                                                              offline) -> None:
    """The PyTorch index and its catalog mirror are unreachable; this host has no GPU: PyPI's default build
    (it runs on a CPU) is taken with a warning naming its size and the flags, torchaudio in lockstep, and
    the bundle installs with no network and imports."""
    env = _config(work, tmp_path, index_url=tindex.pypi, torch_index_url=_dead_url(), pytorch_mirror=_dead_url())
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("torch\ntorchaudio\nalpha\n")
    out = tmp_path / "bundle"
    proc = run_offpkg(["bundle", "-r", str(reqs), "-o", str(out), "--no-tools", "--json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(proc.stdout)["cuda"]
    assert (rec["variant"], rec["from_pypi"], rec["torch_version"]) == ("cu130", True, "2.13.1")
    assert rec["pins"] == {"torch": "2.13.1", "torchaudio": "2.13.1"}
    notes = " ".join(rec["notes"])
    assert "could not be reached" in notes and "several GB" in notes
    assert "--torch-index" in notes and "--cuda" in notes
    names = wheel_names(out)
    assert f"torch-2.13.1-{TT}" in names and f"torchaudio-2.13.1-{TT}" in names
    assert not any("+" in n for n in names)
    m = Manifest.read(out)
    assert check_manifest(m, out) == []
    venv = tmp_path / "venv"
    proc = run_offpkg(["install", str(out), "--venv", str(venv), "--json"], work["env"], offline=offline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = subprocess.run([*offline, str(venv / "bin" / "python"), "-c",
                          "import torch, torchaudio, alpha; print(torch.__version__, torchaudio.__version__)"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["2.13.1", "2.13.1"]


def test_catalog_pytorch_mirror_is_tried_before_pypi_and_the_family_follows(work, tindex, tmp_path) -> None:
    env = _config(work, tmp_path, index_url=tindex.pypi, torch_index_url=_dead_url(), pytorch_mirror=tindex.whl)
    out = tmp_path / "bundle"
    proc = run_offpkg(["bundle", "torch", "torchaudio", "torchcodec", "torchvision", "-o", str(out), "--no-tools",
                       "--json"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(proc.stdout)["cuda"]
    assert (rec["variant"], rec["index_url"]) == ("cpu", f"{tindex.whl}/cpu")
    assert rec["pins"] == {"torch": "2.13.0+cpu", "torchaudio": "2.13.0+cpu", "torchcodec": "0.9.0+cpu",
                           "torchvision": "0.28.0+cpu"}
    assert {n.split("-")[0] + "-" + n.split("-")[1] for n in wheel_names(out) if n.startswith("torch")} == {
        "torch-2.13.0+cpu", "torchaudio-2.13.0+cpu", "torchcodec-0.9.0+cpu", "torchvision-0.28.0+cpu"}


def test_an_explicit_choice_is_never_swapped_for_pypis_build(work, tindex, tmp_path) -> None:
    env = dict(work["env"])
    for extra in (["--torch-index", _dead_url()], ["--cuda", "cpu", "--torch-index", _dead_url()]):
        proc = run_offpkg(["bundle", "torch", "-i", tindex.pypi, "-o", str(tmp_path / "b"), "--no-tools",
                           *extra], env)
        assert_clean_error(proc, proc.returncode, "cannot look up torch", "--torch-index")
        assert proc.returncode != 0 and not (tmp_path / "b").exists()


def test_when_nothing_fits_the_error_names_the_flags(work, tindex, tmp_path) -> None:
    # driver 535 cannot run PyPI's CUDA 13.0 build, and the PyTorch index is unreachable
    target = tmp_path / "t.json"
    target.write_text(json.dumps(target_json("535.54.03", ["9.0"])))
    env = _config(work, tmp_path, index_url=tindex.pypi, torch_index_url=_dead_url(), pytorch_mirror=_dead_url())
    proc = run_offpkg(["bundle", "torch==2.13.1", "-o", str(tmp_path / "b"), "--target", str(target), "--no-tools",
                       "--json"], env)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 6 and doc["ok"] is False, proc.stdout + proc.stderr
    err = doc["error"]
    assert "does not run on" in err["message"] and "--torch-index" in err["hint"] and "--cuda" in err["hint"]


# ------------------------------------------------------------------ facts from the index

def test_release_newer_than_the_data_is_bundled_from_its_metadata(work, tindex, tmp_path) -> None:
    for platform, name in [("manylinux_2_28_x86_64", "x86"), ("manylinux_2_28_aarch64", "arm")]:
        target = tmp_path / f"{name}.json"
        target.write_text(json.dumps(target_json("595.45.04", ["9.0"], platform=platform)))
        out = tmp_path / name
        proc = run_offpkg(["bundle", "torch", "-i", tindex.pypi_new, "-o", str(out), "--target", str(target),
                           "--torch-index", _dead_url(), "--no-tools", "--json"], work["env"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rec = json.loads(proc.stdout)["cuda"]
        assert (rec["variant"], rec["from_pypi"], rec["torch_version"]) == ("cu132", True, NEW_TORCH), name
        assert any("newer than offpkg's data" in n and "wheel metadata" in n for n in rec["notes"]), rec["notes"]
        arch = "x86_64" if name == "x86" else "aarch64"
        assert f"torch-{NEW_TORCH}-cp311-cp311-manylinux_2_28_{arch}.whl" in wheel_names(out)


def test_metadata_is_read_by_range_requests_never_the_whole_wheel(tmp_path) -> None:
    """A 4 MB torch wheel without a PEP 658 file: its METADATA comes from the zip's end in a few ranges."""
    from pkgfactory import Dist, build_wheel

    from offpkg.gpu.pypi import PypiBuilds
    from offpkg.net.index import IndexClient, make_session
    from offpkg.net.ranged import fetch_metadata

    from torchindex import write_project_pages

    big = build_wheel(Dist("torch", "2.16.0", ['cuda-toolkit[cublas]==13.2.2; platform_system == "Linux"']),
                      tmp_path / "store", "cp311-cp311-manylinux_2_28_x86_64", payload=os.urandom(4 << 20))
    write_project_pages([big], tmp_path / "root" / "simple", metadata=False)
    server, base = serve_ranges(tmp_path / "root")
    try:
        client = IndexClient([f"{base}/simple"], timeout=10)
        (f,) = client.files("torch")
        text = fetch_metadata(f.url, make_session(), timeout=10)
        assert "Name: torch" in text
        builds = PypiBuilds(client, ("x86_64",))
        assert dict(builds["2.16"]) == {"x86_64": "13.2"} and builds.metadata_reads == 1
        wheel_hits = [h for h in server.log if h[0].endswith(".whl")]
        assert wheel_hits and all(rng for _, rng, _ in wheel_hits)  # only range requests, never a plain GET
        assert sum(n for _, _, n in wheel_hits) < 256 * 1024 < big.stat().st_size
    finally:
        server.shutdown()


def test_rocm_target_bundles_the_rocm_build(work, tindex, tmp_path) -> None:
    target = tmp_path / "amd.json"
    target.write_text(json.dumps(amd_target_json("gfx90a", rocm="6.3")))
    out = tmp_path / "rocm"
    proc = run_offpkg(["bundle", "torch", "-i", tindex.pypi, "-o", str(out), "--target", str(target),
                       "--torch", "2.7", "--torch-index", tindex.whl, "--no-tools", "--json"], work["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(proc.stdout)["cuda"]
    assert (rec["variant"], rec["vendor"], rec["label"], rec["pins"]) == (
        "rocm6.3", "amd", "+rocm6.3", {"torch": "2.7.1+rocm6.3"})
    assert f"torch-2.7.1+rocm6.3-{TT}" in wheel_names(out)
    assert any(n.startswith("pytorch_triton_rocm-3.3.1") for n in wheel_names(out))
    assert check_manifest(Manifest.read(out), out) == []


def test_cuda_plan_refuses_a_jetson_target_file(work, tmp_path) -> None:
    target = tmp_path / "orin.json"
    target.write_text(json.dumps(target_json("540.4.0", ["8.7"], platform="manylinux_2_28_aarch64")))
    proc = run_offpkg(["cuda", "plan", "--target", str(target), "--json"], work["env"])
    doc = json.loads(proc.stdout)
    assert proc.returncode == 6 and "Jetson" in doc["error"]["message"] and "--torch-index" in doc["error"]["hint"]
