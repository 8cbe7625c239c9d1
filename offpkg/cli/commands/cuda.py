"""``offpkg cuda detect`` and ``offpkg cuda plan`` (also as ``offpkg gpu ...``): GPU facts and the torch build for a target."""

from __future__ import annotations

import sys
from typing import Any

import click

from ... import _probe
from .. import ui
from ...gpu.facts import DEFAULT_INDEX_BASE
from ...gpu.plan import CudaPlan, plan, plan_for_target
from ...errors import UsageError
from ..options import json_option
from ...target import Target


@click.group(name="cuda")
def cli() -> None:
    """GPU facts (NVIDIA, AMD) and the torch build (CUDA, ROCm or cpu) to bundle for a target."""


def _describe_gpu(gpu: dict[str, Any] | None) -> list[str]:
    if not gpu:
        return ["no NVIDIA GPU or driver found, and no AMD GPU (torch would be the cpu build)"]
    if gpu.get("vendor") == "amd":
        lines = [f"AMD GPU(s), ROCm {gpu.get('rocm_version') or 'version unknown'} (from {gpu.get('source')})"]
        lines += [f"GPU {i}: {d.get('name')} ({d.get('gfx')})" for i, d in enumerate(gpu.get("devices") or [])]
        return lines
    lines = [f"NVIDIA driver {gpu.get('driver_version') or 'unknown'} (from {gpu.get('source')}); "
             f"newest CUDA it runs: {gpu.get('cuda_max') or 'unknown'}"]
    devices = gpu.get("devices") or []
    for i, d in enumerate(devices):
        lines.append(f"GPU {i}: {d.get('name')} (compute capability {d.get('compute_cap')})")
    if not devices:
        lines.append("GPUs: unknown (nvidia-smi not available)")
    if gpu.get("jetson"):
        lines.append(f"Jetson board: {gpu['jetson']} (its torch wheels come from NVIDIA, not the PyTorch index)")
    return lines


@cli.command("detect")
@json_option
def detect(as_json: bool) -> None:
    """Show this host's GPUs: NVIDIA driver, newest CUDA and compute capabilities, or AMD gfx targets and ROCm.

    OFFPKG_CUDA_DRIVER_VERSION and OFFPKG_CUDA_COMPUTE_CAP (comma-separated), and
    OFFPKG_ROCM_GFX (comma-separated) and OFFPKG_ROCM_VERSION override what is found.
    """
    ui.state.json = as_json
    os_name = "windows" if sys.platform == "win32" else ("macos" if sys.platform == "darwin" else "linux")
    gpu = _probe.gpu_facts(os_name)
    if as_json:
        ui.emit_json("cuda detect", {"ok": True, "gpu": gpu})
        return
    for line in _describe_gpu(gpu):
        ui.result(line)


def _render(p: CudaPlan) -> None:
    ui.result(f"torch {p.torch} {p.variant}" + (f" (CUDA {p.cuda})" if p.cuda else "")
              + (f" (ROCm {p.rocm})" if p.rocm else "") + f" for {p.os} {p.cpu_arch}")
    ui.result(f"  wheels from: {'PyPI (default build), or ' + p.index_url if p.from_pypi else p.index_url}")
    if p.min_driver:
        ui.result(f"  needs driver: {p.min_driver} or newer"
                  + (f" (CUDA {p.cuda}'s own minimum: {p.own_min_driver})" if p.uses_minor_version_compat else ""))
    if p.archs:
        ui.result(f"  GPU architectures: {', '.join(p.archs)}" + (f" + PTX {p.ptx}" if p.ptx else
                                                                  (" (no PTX)" if p.vendor == "nvidia" else "")))
    ui.result(f"  why: {p.reason}")
    for n in p.notes:
        ui.warn(n)


@cli.command("plan")
@click.option("--target", "target_file", type=click.Path(dir_okay=False), default=None,
              help="Target description written by `offpkg probe` on the target host.")
@click.option("--driver", default=None, metavar="VER", help="The target's NVIDIA driver version, e.g. 535.54.03.")
@click.option("--compute-cap", "compute_caps", multiple=True, metavar="X.Y",
              help="Compute capability of a target GPU, e.g. 8.6 (with --driver). Repeatable.")
@click.option("--os", "os_name", type=click.Choice(["linux", "windows"]), default=None,
              help="The target's OS (with --driver or --gfx; default linux).")
@click.option("--arch", "cpu_arch", type=click.Choice(["x86_64", "aarch64"]), default=None,
              help="The target's CPU architecture (with --driver or --gfx; default x86_64).")
@click.option("--gfx", "gfx", multiple=True, metavar="GFX",
              help="gfx target of an AMD GPU of the target, e.g. gfx90a (instead of --driver). Repeatable.")
@click.option("--rocm-version", default=None, metavar="X.Y", help="The target's ROCm version (with --gfx).")
@click.option("--torch", "torch_version", default=None, metavar="VERSION",
              help="The torch release or version to plan for (default: the newest that fits).")
@click.option("--cuda", "cuda_choice", default="auto", show_default=True, metavar="auto|cpu|cuXYZ|rocmX.Y|xpu",
              help="Check an explicit choice instead of choosing (with --target or this host).")
@click.option("--torch-index", "index_base", default=DEFAULT_INDEX_BASE, show_default=True, metavar="URL",
              envvar="OFFPKG_TORCH_INDEX", help="Base URL of the PyTorch wheel index or a mirror of it.")
@json_option
def plan_cmd(target_file: str | None, driver: str | None, compute_caps: tuple[str, ...], os_name: str | None,
             cpu_arch: str | None, gfx: tuple[str, ...], rocm_version: str | None,
             torch_version: str | None, cuda_choice: str, index_base: str, as_json: bool) -> None:
    """Pick the torch build (CUDA or ROCm variant, or cpu) for a target's GPUs.

    Without --target, --driver or --gfx it plans for this host. Exits 6 when no
    build fits, saying why and what would. This plans from offpkg's data alone;
    `offpkg bundle` also reads PyPI's wheels for releases newer than the data.
    """
    ui.state.json = as_json
    custom = index_base.rstrip("/") != DEFAULT_INDEX_BASE
    if target_file and (driver or gfx):
        raise UsageError("use either --target FILE or --driver VER / --gfx GFX, not both")
    if driver and gfx:
        raise UsageError("--driver describes an NVIDIA target and --gfx an AMD one: give one of them")
    if (compute_caps or os_name or cpu_arch) and not (driver or gfx):
        raise UsageError("--compute-cap, --os and --arch describe the target together with --driver VER (or --gfx)")
    if rocm_version and not gfx:
        raise UsageError("--rocm-version goes with --gfx")
    if driver:
        if cuda_choice.strip().lower() != "auto":
            raise UsageError("--cuda checks a choice against --target or this host; with --driver it must be auto")
        p = plan(driver, list(compute_caps), os=os_name or "linux", torch=torch_version, index_base=index_base,
                 arch=cpu_arch or "x86_64", custom_index=custom)
        source = "options"
    elif gfx:
        from ...gpu.rocm import plan_rocm

        choice = cuda_choice.strip().lower()
        gpu = {"vendor": "amd", "rocm_version": rocm_version,
               "devices": [{"name": f"AMD GPU {i}", "gfx": g} for i, g in enumerate(gfx)]}
        p = plan_rocm(gpu, os_name or "linux", cpu_arch or "x86_64", torch_version, index_base,
                      variant=None if choice == "auto" else choice)
        source = "options"
    else:
        target = Target.from_file(target_file) if target_file else Target.host()
        p = plan_for_target(target, cuda=cuda_choice, torch=torch_version, index_base=index_base,
                            custom_index=custom)
        source = target.source
    if as_json:
        ui.emit_json("cuda plan", {"ok": True, "target": source, **p.to_json()})
        return
    _render(p)
