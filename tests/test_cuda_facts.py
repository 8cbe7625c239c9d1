"""One test per GPU fact offpkg keeps or reads, each naming its source.

Sources: ../shared/reference/cuda.md top section (read from the wheels on PyPI on
2026-11-30: Requires-Dist from PEP 658 metadata, version.py and the compiled arch
list through range requests), and the rows of offpkg/data/cuda.json and rocm.json.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from offpkg import _probe
from offpkg.cli.commands.cuda import cli as cuda_cli
from offpkg.errors import InputError
from offpkg.gpu import facts, rocm
from offpkg.gpu.facts import CudaNoFitError
from offpkg.gpu.plan import plan, plan_for_target, pypi_build_plan
from offpkg.gpu.pypi import cuda_of_metadata
from offpkg.target import Target

X86 = "manylinux_2_28_x86_64"
ARM = "manylinux_2_28_aarch64"


def _target(gpu: dict | None, platform: str = X86) -> Target:
    return replace(Target.from_options("3.11", [platform]), gpu=gpu)


def _nv(driver: str | None, *caps: str, **extra: object) -> dict:
    return {"vendor": "nvidia", "driver_version": driver, "cuda_max": None, "source": "env",
            "devices": [{"name": f"GPU {i}", "compute_cap": c} for i, c in enumerate(caps)], **extra}


def _amd(*gfx: str, rocm_version: str | None = None) -> dict:
    return {"vendor": "amd", "rocm_version": rocm_version, "source": "env",
            "devices": [{"name": f"AMD GPU {i}", "gfx": g} for i, g in enumerate(gfx)]}


# ------------------------------------------------------------------ facts read from the wheels (cuda.md top)

def test_aarch64_cuda_wheels_lack_sm75_so_t4g_is_refused() -> None:
    # aarch64 CUDA builds (2.11, 2.13, 2.15): sm_80 90 100 110 120 -- no sm_75 (AWS T4G's T4).
    for torch in ("2.11", "2.13", "2.15"):
        with pytest.raises(CudaNoFitError) as ei:
            plan("595.45.04", ["7.5"], torch=torch, arch="aarch64")
        assert "7.5" in ei.value.message and "aarch64" in ei.value.message
        assert "--cuda cpu" in ei.value.hint
    # the same GPU on x86_64 is covered (sm_75 is in the x86_64 builds)
    assert plan("595.45.04", ["7.5"], torch="2.15").variant == "cu132"


def test_cu13x_wheels_carry_no_ptx() -> None:
    # No compute_XX entry in the 2.11-2.15 builds: a GPU newer than sm_120 is not covered by PTX.
    for row in facts.load_data()["variant_archs"]:
        if row["variant"] in ("cu130", "cu132"):
            assert row["ptx"] is None, row
    with pytest.raises(CudaNoFitError) as ei:
        plan("600.1", ["13.0"], torch="2.15")
    assert "no PTX" in ei.value.message


def test_torch_2_10_cu128_keeps_volta_and_2_11_drops_it() -> None:
    assert plan("570.26", ["7.0"], torch="2.10").variant == "cu128"
    assert plan("570.26", ["7.0"], torch="2.11").variant == "cu126"  # PR #172598


def test_pypi_aarch64_torch_is_cuda_since_2_11() -> None:
    for s in ("2.0", "2.10"):
        assert facts.release(s).pypi["aarch64"] is None
        assert plan(None, [], torch=s, arch="aarch64").from_pypi  # the cpu build is PyPI's there
    for s in ("2.11", "2.14"):
        assert facts.release(s).pypi["aarch64"] == "13.0"
    assert facts.release("2.15").pypi == {"x86_64": "13.2", "aarch64": "13.2"}


def test_no_aarch64_cu118_so_gh200_on_driver_470_is_refused() -> None:
    assert all("cu118" not in r.get("variants_aarch64", []) for r in facts.load_data()["torch"])
    with pytest.raises(CudaNoFitError) as ei:
        plan("470.57.02", ["9.0"], arch="aarch64")
    assert "upgrade the NVIDIA driver" in ei.value.hint
    # x86_64 with the same driver: cu118 through minor-version compatibility
    assert plan("470.57.02", ["9.0"]).variant == "cu118"


@pytest.mark.parametrize("cc, name", [("9.0", "GH200"), ("12.1", "GB10 (DGX Spark)"), ("11.0", "Thor")])
def test_aarch64_server_gpus_get_the_pypi_cuda_build(cc: str, name: str) -> None:
    p = plan("595.45.04", [cc], torch="2.15", arch="aarch64")
    assert (p.variant, p.from_pypi, p.cpu_arch) == ("cu132", True, "aarch64"), name
    assert facts.covers(p.archs, p.ptx, cc)


def test_jetson_is_refused_naming_where_its_wheels_come_from() -> None:
    with pytest.raises(CudaNoFitError) as ei:
        plan_for_target(_target(_nv("540.4.0", "8.7"), ARM))
    assert "Jetson" in ei.value.message and "NVIDIA" in ei.value.message
    assert "--torch-index" in ei.value.hint
    # the probe's own flag (L4T board), even without a driver version
    with pytest.raises(CudaNoFitError, match="Jetson"):
        plan_for_target(_target(_nv(None, jetson="NVIDIA Jetson AGX Orin"), ARM))
    # an index of Jetson wheels given with --torch-index: taken as it is, unlabelled
    p = plan_for_target(_target(_nv("540.4.0", "8.7"), ARM), index_base="http://127.0.0.1:9/jp6/cu126",
                        custom_index=True)
    assert (p.variant, p.index_url, p.local_label) == ("custom", "http://127.0.0.1:9/jp6/cu126", None)
    # Thor (11.0) is SBSA: not a Jetson for the PyTorch index
    assert plan_for_target(_target(_nv("595.45.04", "11.0"), ARM), torch="2.15").variant == "cu132"


# ------------------------------------------------------------------ releases newer than the data

def test_release_newer_than_the_data_is_planned_from_its_metadata_with_a_warning() -> None:
    observed = {"2.16": {"x86_64": "13.2"}}
    p = plan("595.45.04", ["9.0"], observed=observed)
    assert (p.torch, p.variant, p.from_pypi, p.uncertain) == ("2.16", "cu132", True, True)
    note = " ".join(p.notes)
    assert "newer than offpkg's data" in note and "read from its wheel metadata" in note and "assumed" in note
    # with nothing observed it is still planned (not refused), assuming the newest release's facts
    p = plan("595.45.04", ["9.0"], torch="2.16")
    assert p.torch == "2.16" and "assumed" in " ".join(p.notes)
    cpu = plan(None, [], torch="2.16.0", observed=observed)
    assert cpu.variant == "cpu" and "newer than offpkg's data" in " ".join(cpu.notes)


def test_metadata_wins_over_the_data() -> None:
    rel = facts.release("2.13", {"2.13": {"x86_64": "13.2"}})
    assert rel.pypi["x86_64"] == "13.2" and "metadata wins" in rel.assumed[0]


@pytest.mark.parametrize("requires, arch, cuda", [
    (['cuda-toolkit[cublas,cudart]==13.0.2; platform_system == "Linux"'], "x86_64", "13.0"),
    (['cuda-toolkit[cublas]==13.2.2; platform_system == "Linux"'], "aarch64", "13.2"),
    (['nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and platform_machine == "x86_64"'],
     "x86_64", "12.8"),
    (['nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and platform_machine == "x86_64"'],
     "aarch64", None),  # 2.10's aarch64 wheel: the pins are x86_64-only, it is a CPU build
    (["nvidia-cuda-runtime==13.0.96; platform_system == \"Linux\""], "x86_64", "13.0"),
    (["filelock", "sympy>=1.13.3"], "x86_64", None),
])
def test_cuda_of_metadata(requires: list[str], arch: str, cuda: str | None) -> None:
    meta = "Metadata-Version: 2.1\nName: torch\nVersion: 2.99.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    assert cuda_of_metadata(meta, arch) == cuda


# ------------------------------------------------------------------ the PyPI fallback's fit

def test_pypi_build_runs_on_cpu_hosts_and_fitting_gpus_only() -> None:
    why = "the PyTorch index could not be reached"
    cpu = pypi_build_plan(_target(None), "2.13", facts.DEFAULT_INDEX_BASE, why=why)
    assert cpu is not None and (cpu.variant, cpu.from_pypi) == ("cu130", True)
    assert "several GB" in " ".join(cpu.notes) and "--torch-index" in " ".join(cpu.notes)
    fits = pypi_build_plan(_target(_nv("580.65.06", "9.0")), "2.13", facts.DEFAULT_INDEX_BASE, why=why)
    assert fits is not None and fits.variant == "cu130"
    assert pypi_build_plan(_target(_nv("535.54.03", "9.0")), "2.13", facts.DEFAULT_INDEX_BASE) is None  # driver
    assert pypi_build_plan(_target(_nv("580.65.06", "6.1")), "2.13", facts.DEFAULT_INDEX_BASE) is None  # Pascal
    assert pypi_build_plan(_target(_amd("gfx90a")), "2.13", facts.DEFAULT_INDEX_BASE) is None  # AMD wants ROCm


# ------------------------------------------------------------------ AMD / ROCm

def test_rocm_plan_picks_a_variant_that_serves_the_gfx_target() -> None:
    p = plan_for_target(_target(_amd("gfx90a", rocm_version="6.3")), torch="2.7")
    assert (p.variant, p.vendor, p.rocm, p.from_pypi) == ("rocm6.3", "amd", "6.3", False)
    assert p.index_url == "https://download.pytorch.org/whl/rocm6.3" and p.label == "+rocm6.3"
    # gfx1101 is served by rocm6.1, not rocm6.2 (uv's table): torch 2.5 has both
    assert plan_for_target(_target(_amd("gfx1101")), torch="2.5").variant == "rocm6.1"
    with pytest.raises(CudaNoFitError) as ei:
        plan_for_target(_target(_amd("gfx803")))
    assert "gfx803" in ei.value.message and "--cuda cpu" in ei.value.hint
    # rocminfo's full name carries feature flags
    assert rocm.gfx_of(_amd("gfx90a:sramecc+:xnack-")) == ["gfx90a"]
    # an AMD GPU on aarch64: no ROCm builds, the cpu build
    assert plan_for_target(_target(_amd("gfx942"), ARM)).variant == "cpu"


def test_rocm_data_is_sourced() -> None:
    data = facts.load_rocm()
    for row in list(data["variants"].values()) + data["torch"]:
        assert any(s in row["source"] for s in data["sources"]), row
    broken = copy.deepcopy(data)
    broken["torch"][0]["variants"].append("rocm9.9")
    with pytest.raises(facts.CudaDataError, match="unknown variant"):
        facts.validate_rocm(broken)


def test_probe_reads_amd_gpus_from_env_and_kfd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("OFFPKG_CUDA_DRIVER_VERSION", "OFFPKG_CUDA_COMPUTE_CAP"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OFFPKG_ROCM_GFX", "gfx90a,gfx942")
    monkeypatch.setenv("OFFPKG_ROCM_VERSION", "6.3.1")
    got = _probe.amd_facts()
    assert got == {"vendor": "amd", "rocm_version": "6.3.1", "source": "env",
                   "devices": [{"name": "AMD GPU 0", "gfx": "gfx90a"}, {"name": "AMD GPU 1", "gfx": "gfx942"}]}
    # KFD's gfx_target_version encodes major*10000 + minor*100 + stepping
    assert [_probe.gfx_name(v) for v in (90010, 90402, 100300, 110000, 120001)] == \
        ["gfx90a", "gfx942", "gfx1030", "gfx1100", "gfx1201"]


def test_cli_plan_json_for_rocm_keeps_the_fields() -> None:
    res = CliRunner().invoke(cuda_cli, ["plan", "--gfx", "gfx942", "--torch", "2.8", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["variant"], doc["torch"], doc["index_url"]) == ("rocm6.4", "2.8",
                                                                "https://download.pytorch.org/whl/rocm6.4")
    res = CliRunner().invoke(cuda_cli, ["plan", "--driver", "595.45.04", "--compute-cap", "9.0", "--arch",
                                        "aarch64", "--torch", "2.15", "--json"])
    doc = json.loads(res.stdout)
    assert (doc["variant"], doc["cpu_arch"], doc["from_pypi"]) == ("cu132", "aarch64", True)


def test_unknown_old_release_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not in offpkg's CUDA data"):
        facts.release("1.13")


def test_check_host_for_rocm_and_custom_records() -> None:
    from offpkg.gpu.check import check_host, manifest_record

    rec = manifest_record(plan_for_target(_target(_amd("gfx90a")), torch="2.7"))
    assert rec["vendor"] == "amd" and rec["variant"] == "rocm6.3"
    assert check_host(rec, _amd("gfx90a")) == []
    bad = check_host(rec, _amd("gfx803"))
    assert len(bad) == 1 and "gfx803" in bad[0] and "rocm6.3" in bad[0]
    assert check_host(rec, None) == []
    assert "no AMD GPU" in check_host(rec, None, require_gpu=True)[0]
    jet = manifest_record(plan_for_target(_target(_nv("540.4.0", "8.7"), ARM), index_base="http://127.0.0.1:9/jp6",
                                          custom_index=True))
    assert jet["labelled"] is False and check_host(jet, _nv("540.4.0", "8.7")) == []


def test_intel_xpu_only_when_asked_for() -> None:
    p = plan_for_target(_target(None), cuda="xpu", torch="2.8")
    assert (p.variant, p.vendor, p.index_url, p.label) == ("xpu", "intel", "https://download.pytorch.org/whl/xpu",
                                                            "+xpu")
    with pytest.raises(InputError, match="no xpu build"):
        plan_for_target(_target(None), cuda="xpu", torch="2.4")
    with pytest.raises(CudaNoFitError, match="x86_64 only"):
        plan_for_target(_target(None, ARM), cuda="xpu")
    assert plan_for_target(_target(None)).variant == "cpu"  # never chosen by auto
