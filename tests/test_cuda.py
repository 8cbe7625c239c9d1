"""The CUDA selection policy, its data file and the `offpkg cuda` commands, against the published facts."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from offpkg import _probe
from offpkg.gpu import cuda
from offpkg.cli.commands.cuda import cli as cuda_cli
from offpkg.errors import InputError, TargetMismatchError, UsageError
from offpkg.target import Target

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the data file

def test_data_min_driver_table_equals_probe_table() -> None:
    rows = [(r["cuda"], r["linux"], r["windows"]) for r in cuda.load_data()["cuda_min_driver"]]
    assert rows == [tuple(r) for r in _probe.CUDA_MIN_DRIVER]


def test_every_figure_has_a_known_source() -> None:
    data = cuda.load_data()
    names = set(data["sources"])
    rows = (data["cuda_min_driver"] + data["minor_version_compat"] + data["torch"] + data["variant_archs"]
            + list(data["variants"].values()))
    for row in rows:
        assert row["source"].strip()
        # each source string starts with (or names) one of the named sources
        assert any(n in row["source"] for n in names), row


def test_torch_releases_cover_every_release_on_pypi_and_pypi_defaults() -> None:
    # ../shared/reference/cuda.md (read from the wheels on PyPI, 2026-11-30): 2.0 to 2.15.
    releases = cuda.torch_releases()
    assert releases == [f"2.{i}" for i in range(16)]
    assert cuda.variants_for("2.13") == ["cu126", "cu130", "cu132"]
    assert cuda.variants_for("2.6.1") == ["cu118", "cu124", "cu126"]
    data = {r["torch"]: r["pypi"] for r in cuda.load_data()["torch"]}
    assert data["2.13"]["x86_64"] == "13.0" and data["2.0"]["x86_64"] == "11.7" and data["2.8"]["x86_64"] == "12.8"
    assert data["2.15"] == {"x86_64": "13.2", "aarch64": "13.2"}
    assert data["2.10"]["aarch64"] is None and data["2.11"]["aarch64"] == "13.0"  # aarch64 CUDA since 2.11


def test_minor_version_compat_floors() -> None:
    assert cuda.compat_floor("11.8") == "450.80.02"
    assert cuda.compat_floor("11.8", "windows") == "452.39"
    assert cuda.compat_floor("11.0") is None  # 11.0 predates minor-version compatibility
    assert cuda.compat_floor("12.6") == "525.60.13"
    assert cuda.compat_floor("12.6", "windows") == "528.33"
    assert cuda.compat_floor("13.2") == "580"


def test_uncertain_figures_are_marked() -> None:
    data = cuda.load_data()
    win13 = [r for r in data["cuda_min_driver"] if r["cuda"].startswith("13.")]
    assert win13 and all(r.get("uncertain") and r.get("uncertain_about") == "windows" for r in win13)
    assert cuda.plan("580.88", ["9.0"], os="windows", torch="2.13").uncertain
    assert not cuda.plan("580.65.06", ["9.0"], os="linux", torch="2.13").uncertain


@pytest.mark.parametrize("breakage, words", [
    (lambda d: d["cuda_min_driver"][0].pop("source"), "source"),
    (lambda d: d["torch"][0]["variants"].append("cu999"), "unknown variant cu999"),
    (lambda d: d["torch"][-1]["pypi"].__setitem__("x86_64", "12.4"), "not among its variants"),
    (lambda d: d["variant_archs"].__setitem__(0, {**d["variant_archs"][0], "archs": ["eight"]}), "malformed"),
    (lambda d: d.__setitem__("format", 99), "format"),
    (lambda d: d["variant_archs"].pop(0), "no variant_archs entry for cu117"),
])
def test_validate_data_rejects_broken_data(breakage, words: str) -> None:
    data = copy.deepcopy(cuda.load_data())
    breakage(data)
    with pytest.raises(cuda.CudaDataError) as ei:
        cuda.validate_data(data)
    assert words in ei.value.message
    assert ei.value.exit_code == 10


# ------------------------------------------------------------------ the policy

@pytest.mark.parametrize("driver, caps, os_name, torch, variant, compat, min_driver", [
    # the cases
    ("535.54.03", ["8.0"], "linux", "2.6", "cu126", True, "525.60.13"),      # CUDA 12 through minor-version compat
    ("580.65.06", ["9.0"], "linux", "2.13", "cu130", False, "580.65.06"),    # own minimum beats cu132 via compat
    ("580.65.06", ["6.1"], "linux", "2.13", "cu126", False, "560.28.03"),    # Pascal: CUDA 13 dropped sm_50-sm_70
    # newest variant whose own minimum the driver meets
    ("595.45.04", ["9.0"], "linux", "2.13", "cu132", False, "595.45.04"),
    ("575.51.03", ["8.6"], "linux", "2.13", "cu126", False, "560.28.03"),    # 13.x floor is 580
    ("570.26", ["12.0"], "linux", "2.8", "cu128", False, "570.26"),          # cu129 needs 575: own cu128 wins
    ("570.26", ["7.0"], "linux", "2.8", "cu128", False, "570.26"),           # 2.8's cu128 still holds sm_70
    ("570.26", ["7.0"], "linux", "2.10", "cu128", False, "570.26"),          # 2.10's cu128 still has Volta
    ("570.26", ["7.0"], "linux", "2.11", "cu126", False, "560.28.03"),       # 2.11's cu128 dropped it (PR 172598)
    ("520.61.05", ["8.0"], "linux", "2.6", "cu118", False, "520.61.05"),     # below the 12.x floor
    ("470.42.01", ["8.6"], "linux", "2.7", "cu118", True, "450.80.02"),      # 11.x through compat
    ("580.65.06", ["8.9", "9.0"], "linux", "2.13", "cu130", False, "580.65.06"),  # 8.9 runs sm_86 code
    ("580.65.06", [], "linux", "2.13", "cu130", False, "580.65.06"),         # GPUs unknown: not checked
    # Windows: the Windows columns
    ("560.76", ["8.6"], "windows", "2.13", "cu126", False, "560.76"),
    ("560.30", ["8.6"], "windows", "2.13", "cu126", True, "528.33"),
    ("520.06", ["8.6"], "windows", "2.6", "cu118", False, "520.06"),
    ("580.88", ["12.0"], "windows", "2.13", "cu130", False, "580.88"),
])
def test_plan_table(driver: str, caps: list[str], os_name: str, torch: str, variant: str, compat: bool,
                    min_driver: str) -> None:
    p = cuda.plan(driver, caps, os=os_name, torch=torch)
    assert (p.variant, p.uses_minor_version_compat, p.min_driver) == (variant, compat, min_driver), p.reason
    assert p.cuda == cuda.load_data()["variants"][variant]["cuda"]
    assert p.index_url == f"https://download.pytorch.org/whl/{variant}"
    assert p.torch == torch and p.reason.startswith(f"torch {torch} {variant}")
    for cc in caps:
        assert cuda.covers(p.archs, p.ptx, cc, allow_ptx=not compat)
    if compat:
        assert any("PTX JIT will not work" in n for n in p.notes)
        assert "minor-version compatibility" in p.reason


def test_linux_and_windows_columns_differ() -> None:
    assert not cuda.plan("560.30", ["8.6"], os="linux", torch="2.13").uses_minor_version_compat
    assert cuda.plan("560.30", ["8.6"], os="windows", torch="2.13").uses_minor_version_compat
    # Linux 520.06 is below 11.8's own 520.61.05 but above the 11.x floor
    assert cuda.plan("520.06", ["8.6"], os="linux", torch="2.6").uses_minor_version_compat


def test_where_the_wheels_come_from() -> None:
    linux = cuda.plan("580.65.06", ["9.0"], torch="2.13")
    assert linux.from_pypi and linux.source == "pypi" and linux.label == "+cu130"
    assert "PyPI" in linux.reason
    assert not cuda.plan("580.65.06", ["6.1"], torch="2.13").from_pypi  # cu126 is not 2.13's PyPI build
    assert cuda.plan("550.54.14", ["8.0"], torch="2.5").from_pypi  # 2.5's PyPI build is CUDA 12.4
    # PyPI's Windows wheels are CPU-only: CUDA always from the index there, cpu from PyPI.
    assert not cuda.plan("580.88", ["9.0"], os="windows", torch="2.13").from_pypi
    assert cuda.plan(None, [], os="windows", torch="2.13").from_pypi
    assert not cuda.plan(None, [], os="linux", torch="2.13").from_pypi  # Linux PyPI default is a CUDA build
    # aarch64: PyPI's build is CUDA 13.0 since 2.11 (read from the wheels), CPU-only before
    assert cuda.plan("580.65.06", ["9.0"], torch="2.13", arch="aarch64").from_pypi
    assert cuda.plan(None, [], torch="2.10", arch="aarch64").from_pypi  # 2.10's aarch64 PyPI wheel is +cpu
    assert not cuda.plan(None, [], torch="2.13", arch="aarch64").from_pypi
    mirror = cuda.plan("580.65.06", ["9.0"], torch="2.13", index_base="http://127.0.0.1:9/pytorch/whl/")
    assert mirror.index_url == "http://127.0.0.1:9/pytorch/whl/cu130"


def test_no_torch_picks_the_newest_release_that_fits() -> None:
    p = cuda.plan("535.54.03", ["8.0"])
    assert (p.torch, p.variant, p.uses_minor_version_compat) == ("2.14", "cu126", True)
    p = cuda.plan("590.44.01", ["7.0", "9.0"])  # a Volta and a Hopper: only cu126 covers both
    assert (p.torch, p.variant) == ("2.14", "cu126")
    p = cuda.plan("595.45.04", ["9.0"])  # 2.15 is PyPI's cu132 build
    assert (p.torch, p.variant, p.from_pypi) == ("2.15", "cu132", True)
    p = cuda.plan("570.26", ["10.0"])  # Blackwell: cu126 lacks sm_100, 2.12+ lost cu128, CUDA 13 needs 580
    assert (p.torch, p.variant) == ("2.11", "cu128")
    p = cuda.plan("470.42.01", ["8.0"])
    assert (p.torch, p.variant, p.min_driver) == ("2.7", "cu118", "450.80.02")


@pytest.mark.parametrize("driver, caps, os_name", [(None, [], "linux"), ("", [], "linux"), (None, ["8.0"], "linux"),
                                                    (None, [], "windows"), ("580.65.06", ["9.0"], "macos")])
def test_no_gpu_gives_cpu(driver: str | None, caps: list[str], os_name: str) -> None:
    p = cuda.plan(driver, caps, os=os_name, torch="2.13")
    assert (p.variant, p.cuda, p.min_driver, p.archs) == ("cpu", None, None, ())
    assert p.index_url.endswith("/cpu") and p.label == "+cpu"
    assert cuda.manifest_record(p)["variant"] == "cpu"


def test_driver_470_with_torch_2_13_does_not_fit() -> None:
    with pytest.raises(cuda.CudaNoFitError) as ei:
        cuda.plan("470.42.01", ["8.0"], torch="2.13")
    err = ei.value
    assert isinstance(err, TargetMismatchError) and err.exit_code == 6
    assert "torch 2.13" in err.message and "470.42.01" in err.message
    assert "cu126 needs driver 560.28.03 (or 525.60.13 through minor-version compatibility)" in err.message
    assert "torch 2.7" in err.hint  # an older torch that fits
    assert "525.60.13" in err.hint  # the driver that would fit
    assert "--cuda cpu" in err.hint


def test_uncovered_gpu_does_not_fit_and_names_what_would() -> None:
    with pytest.raises(cuda.CudaNoFitError) as ei:
        cuda.plan("570.26", ["10.0"], torch="2.13")
    assert "cu126 wheels do not cover compute 10.0" in ei.value.message
    assert "torch 2.11" in ei.value.hint
    with pytest.raises(cuda.CudaNoFitError) as ei:
        cuda.plan("470.42.01", ["3.5"])  # Kepler: nothing in the table covers it
    assert "any torch release" in ei.value.message and "covers compute 3.5" in ei.value.hint


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(InputError, match="not an NVIDIA driver version"):
        cuda.plan("latest", ["8.0"])
    with pytest.raises(InputError, match="compute capability"):
        cuda.plan("580.65.06", ["ampere"])
    with pytest.raises(InputError, match="not in offpkg's CUDA data"):
        cuda.plan("580.65.06", ["9.0"], torch="1.13")
    with pytest.raises(UsageError, match="local label"):
        cuda.plan("580.65.06", ["9.0"], torch="2.6.0+cu124")
    with pytest.raises(UsageError):
        cuda.plan("580.65.06", ["9.0"], torch="two")


def test_exact_torch_version_is_kept() -> None:
    p = cuda.plan("580.65.06", ["9.0"], torch="2.6.0")
    assert p.torch == "2.6.0" and p.torch_series == "2.6" and p.variant == "cu126"


@pytest.mark.parametrize("archs, ptx, cc, allow_ptx, expected", [
    (["8.0"], None, "8.6", True, True),     # SASS runs on a newer minor of the same major
    (["8.6"], None, "8.0", True, False),    # not on an older one
    (["9.0"], None, "10.0", True, False),   # nor on another major
    (["12.0"], "12.0", "13.0", True, True),  # PTX JIT for a newer GPU
    (["12.0"], "12.0", "13.0", False, False),  # ... not under minor-version compatibility
    (["7.5"], "12.0", "7.0", True, False),  # PTX never runs on an older GPU
    (["8.6"], None, "sm_86", True, True),
    (["8.6"], None, "86", True, True),
])
def test_covers(archs: list[str], ptx: str | None, cc: str, allow_ptx: bool, expected: bool) -> None:
    assert cuda.covers(archs, ptx, cc, allow_ptx) is expected


# ------------------------------------------------------------------ targets

def _target(gpu: dict | None, platform: str = "manylinux_2_28_x86_64") -> Target:
    return replace(Target.from_options("3.11", [platform]), gpu=gpu)


def _gpu(driver: str, *caps: str) -> dict:
    return {"vendor": "nvidia", "driver_version": driver, "cuda_max": _probe.cuda_for_driver(driver),
            "devices": [{"name": f"GPU {i}", "compute_cap": c} for i, c in enumerate(caps)], "source": "env"}


def test_plan_for_target_auto_and_cpu() -> None:
    p = cuda.plan_for_target(_target(_gpu("535.54.03", "8.0")), torch="2.6")
    assert (p.variant, p.uses_minor_version_compat) == ("cu126", True)
    assert cuda.plan_for_target(_target(None)).variant == "cpu"
    p = cuda.plan_for_target(_target(_gpu("580.65.06", "9.0")), cuda="cpu", torch="2.13")
    assert (p.variant, p.torch) == ("cpu", "2.13")
    win = cuda.plan_for_target(_target(_gpu("560.30", "8.6"), "win_amd64"), torch="2.13")
    assert (win.os, win.variant, win.uses_minor_version_compat, win.from_pypi) == ("windows", "cu126", True, False)


def test_plan_for_target_explicit_variant() -> None:
    t = _target(_gpu("580.65.06", "9.0"))
    p = cuda.plan_for_target(t, cuda="cu126", torch="2.13")
    assert (p.variant, p.min_driver, p.uses_minor_version_compat) == ("cu126", "560.28.03", False)
    assert "was asked for" in p.reason
    assert cuda.plan_for_target(t, cuda="cu130").torch == "2.15"
    assert cuda.plan_for_target(t, cuda="cu118").torch == "2.7"  # the newest torch with cu118
    # no GPU facts: the user's choice, with the toolkit's own minimum recorded
    p = cuda.plan_for_target(_target(None), cuda="CU130")
    assert (p.variant, p.min_driver, p.uses_minor_version_compat) == ("cu130", "580.65.06", False)


def test_plan_for_target_explicit_variant_errors() -> None:
    with pytest.raises(cuda.CudaNoFitError) as ei:
        cuda.plan_for_target(_target(_gpu("580.65.06", "6.1")), cuda="cu130", torch="2.13")
    assert "do not cover" in ei.value.message and "6.1" in ei.value.message
    assert "--cuda auto would choose cu126" in ei.value.hint
    with pytest.raises(cuda.CudaNoFitError) as ei:
        cuda.plan_for_target(_target(_gpu("535.54.03", "9.0")), cuda="cu130", torch="2.13")
    assert "too old for CUDA 13.0" in ei.value.message and "580.65.06" in ei.value.message
    with pytest.raises(InputError) as ei:
        cuda.plan_for_target(_target(None), cuda="cu118", torch="2.13")
    assert "cu126, cu130, cu132" in ei.value.message and "2.7" in ei.value.hint
    with pytest.raises(InputError, match="no such PyTorch variant"):
        cuda.plan_for_target(_target(None), cuda="cu999")
    with pytest.raises(UsageError):
        cuda.plan_for_target(_target(None), cuda="rocmx")
    assert cuda.plan_for_target(_target(None), cuda="rocm6.2").torch == "2.5"  # the newest torch with rocm6.2
    with pytest.raises(cuda.CudaNoFitError, match="macOS"):
        cuda.plan_for_target(_target(None, "macosx_11_0_arm64"), cuda="cu126")


# ------------------------------------------------------------------ bundles and hosts

def test_torch_family() -> None:
    for name in ("torch", "TorchVision", "torchaudio", "triton", "pytorch_triton", "pytorch-triton-rocm"):
        assert cuda.is_torch_family(name), name
    for name in ("transformers", "nvidia-cublas-cu12", "torchmetrics", "cuda-toolkit", "numpy"):
        assert not cuda.is_torch_family(name), name
    assert cuda.is_cuda_runtime("nvidia-cudnn-cu12") and cuda.is_cuda_runtime("cuda_toolkit")
    assert not cuda.is_cuda_runtime("torch")


def test_manifest_record_fields() -> None:
    rec = cuda.manifest_record(cuda.plan("535.54.03", ["8.0"], torch="2.6"))
    assert rec == {
        "variant": "cu126", "torch": "2.6", "cuda": "12.6", "min_driver": "525.60.13", "own_min_driver": "560.28.03",
        "archs": ["5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"], "ptx": None,
        "index_url": "https://download.pytorch.org/whl/cu126", "from_pypi": False,
        "uses_minor_version_compat": True, "os": "linux", "vendor": "nvidia", "rocm": None, "cpu_arch": "x86_64",
        "labelled": True,
    }
    json.dumps(rec)  # it goes into offpkg.json


def test_check_host() -> None:
    cu130 = cuda.manifest_record(cuda.plan("580.65.06", ["9.0"], torch="2.13"))
    assert cuda.check_host(cu130, _gpu("580.65.06", "9.0", "8.0")) == []
    # the cu13x wheels hold no PTX (read from the wheels): a GPU newer than sm_120 is NOT covered
    future = cuda.check_host(cu130, _gpu("590.44.01", "13.0"))
    assert len(future) == 1 and "compute 13.0" in future[0] and "not covered" in future[0]
    old = cuda.check_host(cu130, _gpu("575.51.03", "9.0"))
    assert len(old) == 1 and "575.51.03 is too old" in old[0] and "580.65.06" in old[0]
    pascal = cuda.check_host(cu130, _gpu("580.65.06", "6.1"))
    assert len(pascal) == 1 and "compute 6.1" in pascal[0] and "not covered" in pascal[0]
    # no driver: a CUDA build runs on the CPU; a problem only when a GPU is required
    assert cuda.check_host(cu130, None) == []
    assert "no NVIDIA driver" in cuda.check_host(cu130, None, require_gpu=True)[0]
    # a cpu record is always fine
    cpu = cuda.manifest_record(cuda.plan(None, [], torch="2.13"))
    assert cuda.check_host(cpu, None, require_gpu=True) == []
    assert cuda.check_host(cpu, _gpu("390.1", "3.0")) == []
    # an explicit cu126 bundle (own minimum 560.28.03) on a 535 host: points at minor-version compatibility
    cu126 = cuda.manifest_record(cuda.plan_for_target(_target(None), cuda="cu126", torch="2.13"))
    msg = cuda.check_host(cu126, _gpu("535.54.03", "8.0"))
    assert len(msg) == 1 and "525.60.13" in msg[0]
    # a compat plan: its own floor is the contract, and PTX does not count below the own minimum
    compat = cuda.manifest_record(cuda.plan("580.0", ["9.0"], torch="2.13"))
    assert compat["uses_minor_version_compat"] and compat["min_driver"] == "580"
    assert cuda.check_host(compat, _gpu("580.0", "9.0")) == []
    assert cuda.check_host(compat, _gpu("580.0", "13.0"))  # would need PTX JIT
    assert cuda.check_host(cu130, _gpu("garbage", "9.0"))


# ------------------------------------------------------------------ the commands

def test_cli_plan_json_fields() -> None:
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "535.54.03", "--compute-cap", "8.0", "--torch", "2.6",
                                        "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "cuda plan" and doc["schema_version"] == 1
    assert (doc["torch"], doc["variant"], doc["cuda"]) == ("2.6", "cu126", "12.6")
    assert doc["index_url"] == "https://download.pytorch.org/whl/cu126"
    assert doc["min_driver"] == "525.60.13" and doc["uses_minor_version_compat"] is True
    assert "minor-version compatibility" in doc["reason"]


def test_cli_plan_windows_and_mirror() -> None:
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "580.88", "--compute-cap", "9.0", "--os", "windows",
                                        "--torch-index", "http://127.0.0.1:9/whl", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["variant"], doc["os"], doc["from_pypi"]) == ("cu130", "windows", False)
    assert doc["index_url"] == "http://127.0.0.1:9/whl/cu130" and doc["uncertain"] is True


def test_cli_plan_target_file(tmp_path: Path) -> None:
    target = _target(_gpu("580.65.06", "6.1"))
    f = tmp_path / "target.json"
    f.write_text(json.dumps(target.to_json()))
    res = CliRunner().invoke(cuda_cli, ["plan", "--target", str(f), "--torch", "2.13", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["variant"], doc["target"]) == ("cu126", "target.json")
    res = CliRunner().invoke(cuda_cli, ["plan", "--target", str(f), "--cuda", "cu130", "--torch", "2.13"])
    assert isinstance(res.exception, cuda.CudaNoFitError)


def test_cli_plan_text_and_errors() -> None:
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "580.65.06", "--compute-cap", "9.0", "--torch", "2.13"])
    assert res.exit_code == 0 and "torch 2.13 cu130 (CUDA 13.0)" in res.stdout
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "470.42.01", "--torch", "2.13", "--json"])
    assert isinstance(res.exception, cuda.CudaNoFitError) and res.exception.exit_code == 6
    res = CliRunner().invoke(cuda_cli, ["plan", "--compute-cap", "8.0"])
    assert isinstance(res.exception, UsageError)
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "535", "--target", "x.json"])
    assert isinstance(res.exception, UsageError)


def _offpkg_argv() -> list[str]:
    """`python -m offpkg` once the CLI registers the cuda group; the group alone until then."""
    probe = subprocess.run([sys.executable, "-m", "offpkg", "cuda", "--help"], capture_output=True, text=True,
                           cwd=REPO, timeout=60)
    if probe.returncode == 0:
        return [sys.executable, "-m", "offpkg"]
    return [sys.executable, "-c", "import sys; from offpkg.cli.commands.cuda import cli; "
                                  "cli(sys.argv[2:], prog_name='offpkg cuda')"]


@pytest.fixture(scope="module")
def offpkg_argv() -> list[str]:
    return _offpkg_argv()


def test_detect_env_overrides_in_a_subprocess(offpkg_argv: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, OFFPKG_CUDA_DRIVER_VERSION="580.65.06", OFFPKG_CUDA_COMPUTE_CAP="9.0, 6.1",
               HOME=str(tmp_path))
    out = subprocess.run(offpkg_argv + ["cuda", "detect", "--json"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    gpu = doc["gpu"]
    assert doc["command"] == "cuda detect"
    assert (gpu["driver_version"], gpu["cuda_max"], gpu["source"]) == ("580.65.06", "13.0", "env")
    assert [d["compute_cap"] for d in gpu["devices"]] == ["9.0", "6.1"]


def test_plan_follows_env_overrides_in_a_subprocess(offpkg_argv: list[str], tmp_path: Path) -> None:
    env = dict(os.environ, OFFPKG_CUDA_DRIVER_VERSION="580.65.06", OFFPKG_CUDA_COMPUTE_CAP="6.1",
               HOME=str(tmp_path))
    out = subprocess.run(offpkg_argv + ["cuda", "plan", "--torch", "2.13", "--json"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["variant"] == "cu126"
    env["OFFPKG_CUDA_DRIVER_VERSION"] = "470.42.01"
    out = subprocess.run(offpkg_argv + ["cuda", "plan", "--torch", "2.13", "--json"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    if offpkg_argv[1] == "-m":  # the real CLI maps the error to exit 6 with a hint
        assert out.returncode == 6 and "hint:" in out.stderr and "torch 2." in out.stderr


def test_detect_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFPKG_CUDA_DRIVER_VERSION", raising=False)
    monkeypatch.delenv("OFFPKG_CUDA_COMPUTE_CAP", raising=False)
    if _probe.gpu_facts() is not None:
        pytest.skip("this host has an NVIDIA driver")
    res = CliRunner().invoke(cuda_cli, ["detect"])
    assert res.exit_code == 0 and "no NVIDIA GPU" in res.stdout
    res = CliRunner().invoke(cuda_cli, ["detect", "--json"])
    assert json.loads(res.stdout)["gpu"] is None
