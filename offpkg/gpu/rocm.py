"""Choose the ROCm build of torch for an AMD GPU host.

The PyTorch index serves ROCm builds as ``{index_base}/rocmX.Y`` with wheels labelled
``+rocmX.Y``; PyPI has none. Each build is compiled for a list of GPU architectures
(gfx targets), kept in ``offpkg/data/rocm.json`` with sources. The torch wheels carry
the ROCm user-space libraries, so the host needs only a working amdgpu kernel driver;
the host's own ROCm version (when the probe finds one) only adds a note when the
build is of a newer ROCm major.

Policy: the newest ROCm variant of the release whose gfx list holds every GPU of
the target; with no torch asked for, the newest release that has one. Nothing fits:
CudaNoFitError naming the gfx targets, what the builds serve and the flags that work.

This module never prints.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.version import Version

from ..errors import InputError, UsageError
from .facts import (DEFAULT_INDEX_BASE, CudaNoFitError, Observed, load_rocm, norm_arch, release, series,
                    torch_releases)
from .plan import CudaPlan, cpu_plan, index_url


def _rocm_key(variant: str) -> tuple[int, ...]:
    return tuple(int(x) for x in variant[4:].split("."))


def rocm_variants(torch: str) -> list[str]:
    """The ROCm variants of a torch release on the PyTorch index, per offpkg's data (oldest first)."""
    s = series(torch)
    rows = {r["torch"]: r for r in load_rocm()["torch"]}
    if s not in rows:
        newest = max(rows, key=Version)
        if Version(s) > Version(newest):
            return list(rows[newest]["variants"])  # assumed: the caller notes it
        return []
    return list(rows[s]["variants"])


def gfx_served(variant: str) -> list[str]:
    row = load_rocm()["variants"].get(variant)
    if row is None:
        raise InputError(f"--cuda {variant}: offpkg knows no such ROCm variant",
                         hint="known ROCm variants: " + ", ".join(sorted(load_rocm()["variants"], key=_rocm_key)))
    return list(row["gfx"])


def gfx_of(gpu: dict[str, Any] | None) -> list[str]:
    """The gfx targets of an AMD target's GPUs (``gfx90a`` ...), lower case, in order, without duplicates."""
    out: list[str] = []
    for d in (gpu or {}).get("devices") or []:
        g = str(d.get("gfx") or "").strip().lower() if isinstance(d, dict) else ""
        # gfx90a:sramecc+:xnack- (rocminfo's full name): the target is the part before the features.
        g = g.split(":", 1)[0]
        if re.fullmatch(r"gfx[0-9a-f]{3,4}", g) and g not in out:
            out.append(g)
    return out


def plan_rocm(gpu: dict[str, Any] | None, os: str, arch: str, torch: str | None,
              index_base: str = DEFAULT_INDEX_BASE, *, variant: str | None = None,
              observed: Observed | None = None) -> CudaPlan:
    """The ROCm build for an AMD GPU target (or the explicit ``variant``); see the module policy."""
    arch = norm_arch(arch)
    newest = torch_releases(observed)[-1]
    if torch:
        release(series(torch), observed)
    if variant is not None and not re.fullmatch(r"rocm\d+\.\d+(?:\.\d+)?", variant):
        raise UsageError(f"--cuda {variant!r} is not a ROCm variant like rocm6.3")
    if os != "linux" or arch != "x86_64":
        if variant is not None:
            raise CudaNoFitError(f"--cuda {variant}: ROCm builds of torch exist for Linux x86_64 only "
                                 f"(the target is {os} {arch})", hint="use --cuda cpu")
        return cpu_plan(torch or newest, os, arch, index_base,
                        f"an AMD GPU on {os} {arch}: the PyTorch index has ROCm builds for Linux x86_64 only; "
                        "the cpu build", observed=observed)
    gfx = gfx_of(gpu)
    host_rocm = str((gpu or {}).get("rocm_version") or "") or None
    tried = [series(torch)] if torch else list(reversed(torch_releases(observed)))
    misses: list[str] = []
    for s in tried:
        names = rocm_variants(s)
        if variant is not None:
            if variant not in names:
                if torch:
                    raise InputError(f"torch {s} has no {variant} build on the PyTorch index "
                                     f"(offpkg's data lists {', '.join(names) or 'none'})",
                                     hint="use one of those, or another --torch")
                continue
            names = [variant]
        for v in sorted(names, key=_rocm_key, reverse=True):
            served = gfx_served(v)
            missing = [g for g in gfx if g not in served]
            if missing and variant is None:
                misses.append(f"torch {s} {v} serves {', '.join(served)}, not {', '.join(missing)}")
                continue
            if missing:
                raise CudaNoFitError(f"--cuda {variant}: torch {s} {variant} is not built for "
                                     f"{', '.join(missing)} (it serves {', '.join(served)})",
                                     hint="use --cuda auto, or --cuda cpu")
            return _rocm_plan(torch or s, s, v, gfx, served, host_rocm, index_base, os, arch, observed,
                              explicit=variant is not None)
    if variant is not None:
        raise InputError(f"no torch release in offpkg's data has a {variant} build", hint="use --cuda auto")
    if not gfx:
        raise CudaNoFitError("an AMD GPU was found but its gfx target is unknown, so no ROCm build can be chosen",
                             hint="set OFFPKG_ROCM_GFX (e.g. gfx90a) when probing, choose --cuda rocmX.Y, "
                                  "or bundle the cpu build with --cuda cpu")
    raise CudaNoFitError(f"no ROCm build of torch {torch or 'any release'} serves {', '.join(gfx)}: "
                         + "; ".join(misses[:3]),
                         hint="bundle the cpu build with --cuda cpu, or give a build with --cuda rocmX.Y / "
                              "--torch-index URL")


def _rocm_plan(torch: str, s: str, v: str, gfx: list[str], served: list[str], host_rocm: str | None,
               index_base: str, os: str, arch: str, observed: Observed | None, explicit: bool) -> CudaPlan:
    rel = release(s, observed)
    rocm = v[4:]
    data = load_rocm()
    uncertain = bool(data["variants"][v].get("uncertain")) or any(
        r.get("uncertain") for r in data["torch"] if r["torch"] == s) or bool(rel.assumed)
    notes = list(rel.assumed)
    if s not in {r["torch"] for r in data["torch"]}:
        notes.append(f"torch {s} is newer than offpkg's ROCm data: its ROCm variants were assumed to be the newest "
                     "release's")
    if host_rocm:
        try:
            if Version(host_rocm).major < _rocm_key(v)[0]:
                notes.append(f"the host has ROCm {host_rocm}; this build carries ROCm {rocm} libraries and needs an "
                             "amdgpu kernel driver that supports them")
        except ValueError:
            pass
    if uncertain:
        notes.append("a figure behind this choice is marked uncertain in offpkg's data (see docs/cuda.md)")
    if not gfx:
        notes.append("the GPUs' gfx targets are unknown, so architecture coverage was not checked")
    why = (f"{v} was asked for" if explicit else f"the newest ROCm build of torch {s}")
    if gfx:
        why += f" that serves {', '.join(gfx)}"
    return CudaPlan(torch=torch, variant=v, cuda=None, index_url=index_url(index_base, v), from_pypi=False,
                    min_driver=None, uses_minor_version_compat=False, archs=tuple(served),
                    reason=f"torch {torch} {v}: {why}. Wheels from {index_url(index_base, v)}.", os=os,
                    uncertain=uncertain, notes=tuple(dict.fromkeys(notes)), vendor="amd", rocm=rocm, cpu_arch=arch)
