"""Choose the torch build for a target host, from its driver and GPUs (NVIDIA; AMD in :mod:`.rocm`).

Policy (see docs/cuda.md):

1. No GPU, or a macOS target: the ``cpu`` build. An AMD GPU: a ROCm build (:mod:`.rocm`).
   A Jetson (Orin, Xavier ...): refused, naming where its wheels come from, unless
   ``--torch-index`` names an index of Jetson wheels.
2. A CUDA variant is *runnable* when the driver meets the toolkit's own minimum
   (NVIDIA Table 3), or failing that the minor-version-compatibility floor of its
   CUDA major. Under minor-version compatibility PTX JIT does not work, so such a
   plan is flagged and its GPUs must be covered by machine code (SASS).
3. A variant *covers* a GPU when its wheels for the target's CPU architecture hold
   SASS for the same major architecture at or below the GPU's compute capability,
   or PTX at or below it (the CUDA 13 builds hold none).
4. Among the runnable variants that cover every GPU: the newest CUDA major wins;
   within it the newest variant whose own minimum the driver meets; only when none
   does, the newest one through minor-version compatibility (flagged).
5. With no torch requested, the newest release (data plus what PyPI showed) that fits.
6. Nothing fits: :class:`CudaNoFitError` saying why and naming what would.

Where the wheels come from: PyPI when the variant is PyPI's default build of that
release for the target's OS and CPU architecture (``from_pypi``; the CUDA of that
build is read from the wheel's metadata where it could be, see :mod:`.pypi`), else
``{index_base}/{variant}``.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from ..errors import InputError, UsageError
from .facts import (DEFAULT_INDEX_BASE, CudaNoFitError, Observed, Release, compat_floor, covers, cuda_key,
                    fmt_cc, is_jetson, jetson_facts, load_data, norm_arch, own_min_driver, parse_cc, parse_driver,
                    release, series, torch_releases, uncertain_driver, variant_archs, variant_cuda)

if TYPE_CHECKING:  # pragma: no cover
    from ..target import Target


@dataclass(frozen=True)
class CudaPlan:
    """The torch build chosen for a target, and why."""

    torch: str  # the requested version ("2.6.0") or the release series chosen ("2.13")
    variant: str  # "cu126", "cu130", "cpu", "rocm6.3", or "custom" (an explicit index of unlabelled wheels)
    cuda: str | None  # "12.6"; None for cpu and ROCm
    index_url: str  # the variant's index: {index_base}/{variant}
    from_pypi: bool  # the variant is PyPI's default build of this torch for the target
    min_driver: str | None  # the driver this plan needs (the compat floor when it relies on it)
    uses_minor_version_compat: bool  # True: PTX JIT will not work
    archs: tuple[str, ...]  # compute capabilities (or gfx targets) with machine code in the wheels
    reason: str
    own_min_driver: str | None = None  # the toolkit's own minimum (NVIDIA Table 3)
    ptx: str | None = None  # PTX architecture in the wheels, if any
    os: str = "linux"
    uncertain: bool = False  # a figure behind this plan is marked uncertain or assumed
    notes: tuple[str, ...] = field(default=())
    vendor: str = "nvidia"  # "nvidia", "amd" or "none" (cpu)
    rocm: str | None = None  # "6.3" for a ROCm build
    labelled: bool = True  # the index's wheels carry +variant (False for a custom index, e.g. Jetson wheels)
    cpu_arch: str = "x86_64"

    @property
    def label(self) -> str:
        """The local version label of this build's wheels on the index: ``+cu126``, ``+cpu``, ``+rocm6.3``."""
        return "+" + self.variant

    @property
    def local_label(self) -> str | None:
        """The label the bundle pins (None for PyPI's build and custom indexes)."""
        return None if self.from_pypi or not self.labelled else self.variant

    @property
    def torch_series(self) -> str:
        return series(self.torch)

    @property
    def source(self) -> str:
        """Where the torch-family wheels come from: ``"pypi"`` or ``"index"``."""
        return "pypi" if self.from_pypi else "index"

    def to_json(self) -> dict[str, Any]:
        return {
            "torch": self.torch, "variant": self.variant, "cuda": self.cuda, "rocm": self.rocm,
            "vendor": self.vendor, "label": self.label, "index_url": self.index_url, "from_pypi": self.from_pypi,
            "source": self.source, "min_driver": self.min_driver, "own_min_driver": self.own_min_driver,
            "uses_minor_version_compat": self.uses_minor_version_compat, "archs": list(self.archs),
            "ptx": self.ptx, "os": self.os, "cpu_arch": self.cpu_arch, "uncertain": self.uncertain,
            "reason": self.reason, "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Candidate:
    variant: str
    cuda: str
    own: str
    floor: str | None
    mode: str | None  # "own" | "compat" | None (the driver cannot run it)
    uncovered: tuple[str, ...]  # compute capabilities its wheels do not cover
    archs: tuple[str, ...]
    ptx: str | None
    uncertain: bool

    @property
    def fits(self) -> bool:
        return self.mode is not None and not self.uncovered


def index_url(index_base: str, variant: str) -> str:
    return index_base.rstrip("/") + "/" + variant


def _candidates(rel: Release, driver: tuple[int, ...] | None, caps: list[str], os: str,
                arch: str) -> list[_Candidate]:
    out = []
    for v in rel.variants.get(norm_arch(arch), ()):
        row = variant_archs(v, rel, arch)
        if row is None:
            continue
        cuda = variant_cuda(v)
        own = own_min_driver(cuda, os)
        floor = compat_floor(cuda, os)
        mode = None
        if driver is not None:
            if driver >= parse_driver(own):
                mode = "own"
            elif floor is not None and driver >= parse_driver(floor):
                mode = "compat"
        archs = tuple(row["archs"])
        ptx = row.get("ptx")
        uncovered = tuple(c for c in caps if not covers(archs, ptx, c, mode != "compat"))
        # A release row's doubt is about its variant list, not PyPI's build, which was read from the wheels.
        doubt = rel.uncertain and (bool(rel.assumed) or v != rel.pypi_variant(arch))
        uncertain = bool(row.get("uncertain")) or uncertain_driver(cuda, os) or doubt
        out.append(_Candidate(v, cuda, own, floor, mode, uncovered, archs, ptx, uncertain))
    return out


def _choose(cands: list[_Candidate]) -> _Candidate | None:
    """Newest CUDA major that fits; in it, own minimum first, then minor-version compatibility."""
    fitting = [c for c in cands if c.fits]
    if not fitting:
        return None
    top = max(cuda_key(c.cuda)[0] for c in fitting)
    in_major = [c for c in fitting if cuda_key(c.cuda)[0] == top]
    own = [c for c in in_major if c.mode == "own"]
    return max(own or in_major, key=lambda c: cuda_key(c.cuda))


def _from_pypi(rel: Release, variant: str, os: str, arch: str) -> bool:
    if os in ("windows", "macos"):
        return variant == "cpu"  # PyPI's Windows and macOS wheels are CPU-only
    if norm_arch(arch) not in rel.pypi:
        return False
    return variant == rel.pypi_variant(arch)


def cpu_plan(torch: str, os: str, arch: str, index_base: str, reason: str, notes: tuple[str, ...] = (),
             observed: Observed | None = None) -> CudaPlan:
    rel = release(series(torch), observed)
    return CudaPlan(torch=torch, variant="cpu", cuda=None, index_url=index_url(index_base, "cpu"),
                    from_pypi=_from_pypi(rel, "cpu", os, arch), min_driver=None, uses_minor_version_compat=False,
                    archs=(), reason=reason, os=os, notes=tuple(dict.fromkeys((*rel.assumed, *notes))),
                    uncertain=bool(rel.assumed), vendor="none", cpu_arch=norm_arch(arch))


def _make_plan(torch: str, rel: Release, cand: _Candidate, driver: str | None, caps: list[str], os: str, arch: str,
               index_base: str, others: list[_Candidate], explicit: bool = False) -> CudaPlan:
    compat = cand.mode == "compat"
    notes: list[str] = list(rel.assumed)
    if compat:
        notes.append(f"relies on CUDA {cand.cuda.split('.')[0]} minor-version compatibility: driver {driver} is "
                     f"older than {cand.own} (CUDA {cand.cuda}'s own minimum) but meets the floor {cand.floor}; "
                     "PTX JIT will not work (GPUs need machine code in the wheels, and code that hands PTX to "
                     "the driver may fail), and features needing a newer driver are unavailable")
    if cand.uncertain:
        notes.append("a figure behind this choice is marked uncertain in offpkg's data (see docs/cuda.md)")
    if not caps and driver is not None:
        notes.append("the GPUs' compute capabilities are unknown, so architecture coverage was not checked")
    if explicit:
        why = f"{cand.variant} was asked for"
        if driver is not None:
            why += f"; driver {driver} runs it" + (" through minor-version compatibility" if compat else "")
    else:
        how = (f"through CUDA {cand.cuda.split('.')[0]} minor-version compatibility (floor {cand.floor})" if compat
               else f"(its own minimum is {cand.own})")
        why = f"driver {driver} runs CUDA {cand.cuda} {how}"
    if caps:
        why += (f", and {cand.variant} {norm_arch(arch)} wheels cover every GPU (compute "
                f"{', '.join(sorted(set(caps), key=parse_cc))})")
    newer = [c for c in others if cuda_key(c.cuda) > cuda_key(cand.cuda)]
    if newer and not explicit:
        why += "; " + "; ".join(_why_not_one(c) for c in sorted(newer, key=lambda c: cuda_key(c.cuda)))
    pypi = _from_pypi(rel, cand.variant, os, arch)
    src = "PyPI (its default build)" if pypi else index_url(index_base, cand.variant)
    return CudaPlan(
        torch=torch, variant=cand.variant, cuda=cand.cuda, index_url=index_url(index_base, cand.variant),
        from_pypi=pypi, min_driver=cand.floor if compat else cand.own, uses_minor_version_compat=compat,
        archs=cand.archs, reason=f"torch {torch} {cand.variant}: {why}. Wheels from {src}.",
        own_min_driver=cand.own, ptx=cand.ptx, os=os, uncertain=cand.uncertain,
        notes=tuple(dict.fromkeys(notes)), cpu_arch=norm_arch(arch))


def _why_not_one(c: _Candidate) -> str:
    if c.uncovered:
        held = ", ".join(c.archs) + (f" + PTX {c.ptx}" if c.ptx else "; no PTX")
        return f"{c.variant} wheels do not cover compute {', '.join(c.uncovered)} (they hold {held})"
    if c.mode is None:
        return (f"{c.variant} needs driver {c.own}"
                + (f" (or {c.floor} through minor-version compatibility)" if c.floor else ""))
    return f"{c.variant} would rely on minor-version compatibility (needs {c.own})"


def _driver_needed(cands: list[_Candidate], caps: list[str]) -> tuple[str, _Candidate] | None:
    """The lowest driver with which some candidate runs and covers every GPU."""
    best: tuple[tuple[int, ...], str, _Candidate] | None = None
    for c in cands:
        options = []
        if c.floor is not None and all(covers(c.archs, c.ptx, cc, allow_ptx=False) for cc in caps):
            options.append(c.floor)
        if all(covers(c.archs, c.ptx, cc) for cc in caps):
            options.append(c.own)
        for d in options:
            if best is None or parse_driver(d) < best[0]:
                best = (parse_driver(d), d, c)
    return (best[1], best[2]) if best else None


def _check_os(os: str) -> None:
    if os not in ("linux", "windows", "macos"):
        raise UsageError(f"os {os!r} is not one of linux, windows, macos")


def plan(driver: str | None, compute_caps: list[str], os: str = "linux", torch: str | None = None,
         index_base: str = DEFAULT_INDEX_BASE, arch: str = "x86_64", *, observed: Observed | None = None,
         jetson: bool = False, custom_index: bool = False) -> CudaPlan:
    """The torch build for a host with NVIDIA ``driver`` and GPUs of ``compute_caps`` (see the module policy).

    ``driver`` None (no NVIDIA driver) gives the cpu build. ``torch`` is a release
    ("2.6") or version ("2.6.0"); None picks the newest release with a fitting
    variant. ``jetson``: the GPU is a Jetson's (refused unless ``custom_index``,
    an index of Jetson wheels given with --torch-index). Raises CudaNoFitError
    when no CUDA build fits.
    """
    caps = [fmt_cc(parse_cc(c)) for c in compute_caps]
    _check_os(os)
    s = series(torch) if torch else None
    if s is not None:
        release(s, observed)  # unknown release: a clear error before anything else
    newest = torch_releases(observed)[-1]
    arch = norm_arch(arch)
    if os == "macos":
        return cpu_plan(torch or newest, os, arch, index_base, "macOS has no CUDA: the cpu build", observed=observed)
    if jetson or (arch == "aarch64" and caps and is_jetson({"devices": [{"compute_cap": c} for c in caps]}, arch)):
        return _jetson(torch or newest, driver, caps, index_base, custom_index)
    if not driver:
        why = ("no NVIDIA driver found, although GPUs were listed" if caps
               else "no NVIDIA GPU or driver on the target")
        return cpu_plan(torch or newest, os, arch, index_base, f"{why}: the cpu build of torch {torch or newest}",
                        observed=observed)
    if os == "linux" and arch not in ("x86_64", "aarch64"):
        return cpu_plan(torch or newest, os, arch, index_base,
                        f"the PyTorch index has no CUDA builds for {arch}: the cpu build", observed=observed)
    drv = parse_driver(driver)
    if s is not None:
        rel = release(s, observed)
        cands = _candidates(rel, drv, caps, os, arch)
        best = _choose(cands)
        if best is not None:
            return _make_plan(torch, rel, best, driver, caps, os, arch, index_base, cands)  # type: ignore[arg-type]
        raise _no_fit(s, cands, driver, caps, os, arch, observed)
    for s2 in reversed(torch_releases(observed)):
        rel = release(s2, observed)
        cands = _candidates(rel, drv, caps, os, arch)
        best = _choose(cands)
        if best is not None:
            return _make_plan(s2, rel, best, driver, caps, os, arch, index_base, cands)
    raise _no_fit(None, _candidates(release(newest, observed), drv, caps, os, arch), driver, caps, os, arch, observed)


def _jetson(torch: str, driver: str | None, caps: list[str], index_base: str, custom_index: bool) -> CudaPlan:
    facts = jetson_facts()
    where = facts.get("wheels_from", "NVIDIA (JetPack)")
    if not custom_index:
        raise CudaNoFitError(
            f"this is a Jetson GPU (compute {', '.join(caps) or 'unknown'}, aarch64): the PyTorch index's aarch64 CUDA "
            f"wheels are SBSA server builds that do not run on it; Jetson wheels come from {where}",
            hint="give an index of Jetson wheels with --torch-index URL (e.g. https://pypi.jetson-ai-lab.io/jp6/cu126), "
                 "or bundle the cpu build with --cuda cpu")
    return CudaPlan(torch=torch, variant="custom", cuda=None, index_url=index_base.rstrip("/"), from_pypi=False,
                    min_driver=None, uses_minor_version_compat=False, archs=tuple(caps),
                    reason=(f"torch {torch} for a Jetson (driver {driver or 'unknown'}): from the index given with --torch-index "
                            f"({index_base}); offpkg does not know its builds, so the driver and GPU fit are the "
                            "index's promise"),
                    uncertain=True, notes=(f"Jetson wheels are taken as they are from {index_base}: JetPack and the "
                                           "wheels must match (see docs/cuda.md)",),
                    labelled=False, cpu_arch="aarch64")


def _no_fit(s: str | None, cands: list[_Candidate], driver: str, caps: list[str], os: str, arch: str,
            observed: Observed | None) -> CudaNoFitError:
    gpus = f" and GPUs of compute {', '.join(caps)}" if caps else ""
    where = f"{os}, {arch}"
    why = "; ".join(_why_not_one(c) for c in sorted(cands, key=lambda c: cuda_key(c.cuda), reverse=True)) \
        or f"there are no CUDA builds for {arch}"
    releases = torch_releases(observed)
    if s is not None:
        msg = f"no CUDA build of torch {s} runs on driver {driver}{gpus} ({where}): {why}"
    else:
        msg = (f"no CUDA build of any torch release ({releases[0]} to {releases[-1]}) runs on driver {driver}{gpus} "
               f"({where}); torch {releases[-1]}: {why}")
    hints = []
    if s is not None:
        drv = parse_driver(driver)
        for s2 in reversed(releases):
            if Version(s2) >= Version(s):
                continue
            best = _choose(_candidates(release(s2, observed), drv, caps, os, arch))
            if best is not None:
                how = " through minor-version compatibility" if best.mode == "compat" else ""
                hints.append(f"torch {s2} ({best.variant}{how}) fits this host: use --torch {s2}")
                break
    needed = _driver_needed(cands, caps)
    if needed is not None:
        hints.append(f"upgrade the NVIDIA driver to {needed[0]} or newer for {needed[1].variant} (--cuda {needed[1].variant})")
    else:
        hints.append(f"no {arch} build of torch {s or releases[-1]} covers compute {', '.join(caps) or '?'}")
    hints.append("or bundle the cpu build with --cuda cpu (or pick a build with --cuda cuXYZ / --torch-index URL)")
    return CudaNoFitError(msg, hint="; ".join(hints))


def gpu_inputs(gpu: dict[str, Any] | None) -> tuple[str | None, list[str]]:
    """(NVIDIA driver, compute capabilities) of a target's ``gpu`` facts; (None, []) for none or AMD."""
    if not gpu or gpu.get("vendor", "nvidia") != "nvidia":
        return None, []
    devices = gpu.get("devices") or []
    caps = [str(d["compute_cap"]) for d in devices if isinstance(d, dict) and d.get("compute_cap")]
    driver = gpu.get("driver_version")
    return (str(driver) if driver else None), caps


def plan_for_target(target: Target, cuda: str = "auto", torch: str | None = None,
                    index_base: str = DEFAULT_INDEX_BASE, *, observed: Observed | None = None,
                    custom_index: bool = False) -> CudaPlan:
    """The torch build for an offpkg Target.

    ``cuda``: ``"auto"`` (from ``target.gpu``: NVIDIA, AMD, or none for cpu), ``"cpu"``,
    an explicit ``"cuXYZ"`` or ``"rocmX.Y"``, which must be a variant of the release
    and, when the target has GPU facts, run on them (CudaNoFitError).
    """
    choice = (cuda or "auto").strip().lower()
    os, arch = target.os, norm_arch(target.arch)
    gpu = target.gpu or None
    vendor = (gpu or {}).get("vendor", "nvidia") if gpu else None
    if choice.startswith("rocm") or (choice == "auto" and vendor == "amd"):
        from .rocm import plan_rocm

        return plan_rocm(gpu, os, arch, torch, index_base, variant=None if choice == "auto" else choice,
                         observed=observed)
    if choice == "auto":
        driver, caps = gpu_inputs(gpu)
        return plan(driver, caps, os=os, torch=torch, index_base=index_base, arch=arch, observed=observed,
                    jetson=is_jetson(gpu, arch), custom_index=custom_index)
    newest = torch_releases(observed)[-1]
    if choice == "xpu":
        return xpu_plan(torch or newest, os, arch, index_base, observed)
    if choice == "cpu":
        if torch:
            release(series(torch), observed)
        return cpu_plan(torch or newest, os, arch, index_base, "the cpu build was asked for (--cuda cpu)",
                        observed=observed)
    if not re.fullmatch(r"cu\d{3}", choice):
        raise UsageError(f"--cuda {cuda!r} is not auto, cpu, xpu, a CUDA variant like cu126 or a ROCm one like rocm6.3")
    data = load_data()
    if choice not in data["variants"]:
        raise InputError(f"--cuda {choice}: offpkg knows no such PyTorch variant",
                         hint="known variants: " + ", ".join(sorted(data["variants"], key=lambda v: int(v[2:]))))
    if os == "macos":
        raise CudaNoFitError(f"--cuda {choice}: macOS has no CUDA builds of torch", hint="use --cuda cpu")
    having = [s for s in torch_releases(observed) if choice in release(s, observed).variants.get(arch, ())]
    if torch:
        s = series(torch)
        rel = release(s, observed)
        if choice not in rel.variants.get(arch, ()):
            raise InputError(f"torch {s} has no {choice} build for {arch} on the PyTorch index "
                             f"(it has {', '.join(rel.variants.get(arch, ())) or 'none'}, cpu)",
                             hint=f"use one of those, or a torch release with {choice} for {arch}: "
                                  + (", ".join(having) or "none"))
    else:
        if not having:
            raise InputError(f"no torch release has a {choice} build for {arch} on the PyTorch index",
                             hint="choose another variant (`offpkg cuda plan` shows what fits)")
        s = torch = having[-1]
        rel = release(s, observed)
    driver, caps = gpu_inputs(gpu)
    caps = [fmt_cc(parse_cc(c)) for c in caps]
    cands = _candidates(rel, parse_driver(driver) if driver else None, caps, os, arch)
    cand = next(c for c in cands if c.variant == choice)
    if driver is None:
        # No GPU facts: the user chose; record the toolkit's own minimum.
        cand = _Candidate(cand.variant, cand.cuda, cand.own, cand.floor, "own", (), cand.archs, cand.ptx,
                          cand.uncertain)
        return _make_plan(torch, rel, cand, None, [], os, arch, index_base, cands, explicit=True)
    if not cand.fits:
        if cand.mode is None:
            msg = (f"--cuda {choice}: driver {driver} on {target.source} is too old for CUDA {cand.cuda} "
                   f"(needs {cand.own}" + (f", or {cand.floor} through minor-version compatibility)" if cand.floor else ")"))
        else:
            msg = (f"--cuda {choice}: torch {s} {choice} {arch} wheels do not cover the GPUs of {target.source} "
                   f"(compute {', '.join(cand.uncovered)}; the wheels hold {', '.join(cand.archs)}, no PTX)")
        try:
            alt = plan(driver, caps, os=os, torch=torch, index_base=index_base, arch=arch, observed=observed)
            hint = f"--cuda auto would choose {alt.variant} for torch {alt.torch}"
        except CudaNoFitError as exc:
            hint = exc.hint
        raise CudaNoFitError(msg, hint=hint)
    return _make_plan(torch, rel, cand, driver, caps, os, arch, index_base, cands, explicit=True)


def pypi_build_plan(target: Target, torch: str, index_base: str, *, observed: Observed | None = None,
                    why: str = "") -> CudaPlan | None:
    """A plan for PyPI's default build of ``torch`` on ``target`` when that build runs there; else None.

    It runs on a host without a GPU (a CUDA build falls back to the CPU) and on an
    NVIDIA host whose driver and GPUs it fits. Used when the planned variant's index
    cannot be reached (see :mod:`.bundle`).
    """
    os, arch = target.os, norm_arch(target.arch)
    s = series(torch)
    rel = release(s, observed)
    variant = "cpu" if os in ("windows", "macos") else rel.pypi_variant(arch)
    if variant is None:
        return None
    driver, caps = gpu_inputs(target.gpu)
    vendor = (target.gpu or {}).get("vendor", "nvidia") if target.gpu else None
    size = ("PyPI's build is a CUDA build: with its NVIDIA runtime wheels it is several GB, against a few hundred MB "
            "for the cpu build" if variant != "cpu" else "")
    flags = "choose otherwise with --torch-index URL (a reachable mirror of the PyTorch index) or --cuda"
    if variant == "cpu" or vendor == "amd" or driver is None:
        if vendor == "amd" and variant != "cpu":
            return None  # an AMD GPU host wants ROCm; a CUDA build would only run on its CPU: no silent swap
        reason = (f"torch {torch} {variant} from PyPI (its default build for {os} {arch}): {why}"
                  + ("; it runs on this target's CPU" if variant != "cpu" else ""))
        notes = tuple(n for n in (f"{why}: took PyPI's default build of torch {s} ({variant}) instead. {size}; {flags}"
                                  if why else "",) if n)
        if variant == "cpu":
            return cpu_plan(torch, os, arch, index_base, reason, notes, observed)
        cuda = rel.pypi.get(arch) or variant_cuda(variant)
        try:
            own: str | None = own_min_driver(cuda, os)
        except InputError:
            own = None  # a CUDA newer than offpkg's driver table: irrelevant on a host without a GPU
        return CudaPlan(torch=torch, variant=variant, cuda=cuda, index_url=index_url(index_base, variant),
                        from_pypi=True, min_driver=None, uses_minor_version_compat=False, archs=(), reason=reason,
                        own_min_driver=own, os=os, uncertain=bool(rel.assumed),
                        notes=tuple(dict.fromkeys((*rel.assumed, *notes))), vendor="none", cpu_arch=arch)
    caps = [fmt_cc(parse_cc(c)) for c in caps]
    cands = [c for c in _candidates(rel, parse_driver(driver), caps, os, arch) if c.variant == variant]
    if not cands or not cands[0].fits:
        return None
    p = _make_plan(torch, rel, cands[0], driver, caps, os, arch, index_base, cands)
    if not p.from_pypi:
        return None
    note = f"{why}: took PyPI's default build of torch {s} ({variant}), which fits this driver and GPU; {flags}"
    return CudaPlan(**{**p.__dict__, "notes": tuple(dict.fromkeys((*p.notes, note))) if why else p.notes})


def xpu_plan(torch: str, os: str, arch: str, index_base: str, observed: Observed | None = None) -> CudaPlan:
    """Intel GPUs: the ``xpu`` build from the PyTorch index, only when asked for (``--cuda xpu``; not detected)."""
    from packaging.specifiers import SpecifierSet

    row = load_data().get("xpu") or {}
    s = series(torch)
    rel = release(s, observed)
    if Version(s) not in SpecifierSet(row.get("torch", ">=2.5")):
        raise InputError(f"torch {s} has no xpu build on the PyTorch index (xpu builds exist for torch "
                         f"{row.get('torch', '>=2.5')})", hint="use --torch 2.5 or newer")
    if os not in row.get("os", ["linux", "windows"]) or norm_arch(arch) not in row.get("cpu_arch", ["x86_64"]):
        raise CudaNoFitError(f"--cuda xpu: the PyTorch index has xpu builds for Linux and Windows x86_64 only "
                             f"(the target is {os} {norm_arch(arch)})", hint="use --cuda cpu")
    return CudaPlan(torch=torch, variant="xpu", cuda=None, index_url=index_url(index_base, "xpu"), from_pypi=False,
                    min_driver=None, uses_minor_version_compat=False, archs=(), os=os, vendor="intel",
                    reason=f"torch {torch} xpu: the Intel GPU build was asked for. Wheels from "
                           f"{index_url(index_base, 'xpu')}.",
                    notes=(*rel.assumed, "offpkg does not detect Intel GPUs or check their driver: the xpu build "
                                         "needs Intel's GPU driver on the target"),
                    uncertain=True, cpu_arch=norm_arch(arch))
