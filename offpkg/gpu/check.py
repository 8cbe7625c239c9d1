"""Check bundles and hosts against the torch build a bundle records.

:func:`check_manifest` checks a finished bundle against its ``cuda`` record: the
torch-family wheels carry the recorded label (none for PyPI's build) and every NVIDIA
runtime wheel that torch's metadata requires for each target is in the bundle (read
through :mod:`offpkg.archive` for packed bundles). :func:`check_host` checks a host's
GPU facts against the record before an install.

This module never prints; it returns lists of problems.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from email.parser import HeaderParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import InputError, OffpkgError
from .facts import compat_floor, covers, parse_driver
from .plan import CudaPlan, gpu_inputs

if TYPE_CHECKING:  # pragma: no cover
    from ..manifest import Manifest, Package
    from ..target import Target

# Packages whose builds differ per variant and must come only from the chosen build's
# source, pinned with its local label (+cu126, +cpu): mixing an index build with PyPI's
# default build is how +cpu/+cuXYZ mix-ups happen.
TORCH_FAMILY: frozenset[str] = frozenset({
    "torch", "torchvision", "torchaudio", "torchcodec", "torchtext", "triton", "pytorch-triton",
    "pytorch-triton-rocm", "pytorch-triton-xpu", "fbgemm-gpu", "fbgemm-gpu-genai",
})
# Torch-family projects whose builds on the PyTorch index carry the variant's local
# label (+cu126, +cpu). triton / pytorch-triton carry none: torch's own pin picks them.
LABELLED: frozenset[str] = frozenset({"torch", "torchvision", "torchaudio", "torchcodec", "fbgemm-gpu",
                                      "fbgemm-gpu-genai"})


def is_torch_family(name: str) -> bool:
    """Whether a distribution must come only from the chosen variant's index (torch, torchvision, triton, ...)."""
    return canonicalize_name(name) in TORCH_FAMILY


def is_cuda_runtime(name: str) -> bool:
    """NVIDIA runtime wheels torch depends on (nvidia-*, cuda-toolkit, cuda-bindings...): same files on PyPI and the index."""
    n = canonicalize_name(name)
    return n.startswith("nvidia-") or n in ("cuda-toolkit", "cuda-bindings", "cuda-python", "cuda-pathfinder")


def manifest_record(plan: CudaPlan) -> dict[str, Any]:
    """What a bundle manifest records about its torch build (read back by :func:`check_host`)."""
    return {
        "variant": plan.variant,
        "torch": plan.torch,
        "cuda": plan.cuda,
        "min_driver": plan.min_driver,
        "own_min_driver": plan.own_min_driver,
        "archs": list(plan.archs),
        "ptx": plan.ptx,
        "index_url": plan.index_url,
        "from_pypi": plan.from_pypi,
        "uses_minor_version_compat": plan.uses_minor_version_compat,
        "os": plan.os,
        "vendor": plan.vendor,
        "rocm": plan.rocm,
        "cpu_arch": plan.cpu_arch,
        "labelled": plan.local_label is not None,
    }


def check_host(cuda_record: dict[str, Any] | None, gpu: dict[str, Any] | None, *,
               require_gpu: bool = False) -> list[str]:
    """Problems running a bundle's torch build on a host with ``gpu`` facts (``_probe.gpu_facts()``); [] when fine.

    A cpu record is always fine. A CUDA build on a host with no NVIDIA driver runs on
    the CPU, which is only a problem with ``require_gpu``. The driver must meet the
    record's ``min_driver``; every GPU must be covered by the recorded architectures
    (PTX only counts when the driver meets the toolkit's own minimum).
    """
    if not cuda_record or cuda_record.get("variant") in (None, "cpu", "custom", "xpu"):
        return []
    if cuda_record.get("vendor") == "amd":
        return _check_rocm_host(cuda_record, gpu, require_gpu)
    variant = cuda_record["variant"]
    cuda = cuda_record.get("cuda") or "?"
    problems: list[str] = []
    driver, _ = gpu_inputs(gpu)
    if driver is None:
        if require_gpu:
            problems.append(f"this host has no NVIDIA driver; the bundle's torch is a CUDA {cuda} build ({variant}) "
                            "and would run on the CPU only")
        return problems
    try:
        drv = parse_driver(driver)
    except InputError:
        return [f"this host's NVIDIA driver version {driver!r} cannot be read; the bundle needs "
                f"{cuda_record.get('min_driver')} or newer for {variant}"]
    min_driver = cuda_record.get("min_driver")
    own = cuda_record.get("own_min_driver") or min_driver
    if min_driver and drv < parse_driver(min_driver):
        msg = (f"NVIDIA driver {driver} is too old for the bundle's torch {cuda_record.get('torch')} {variant} "
               f"(CUDA {cuda} needs driver {min_driver} or newer)")
        floor = compat_floor(cuda, cuda_record.get("os", "linux")) if cuda != "?" else None
        if floor and drv >= parse_driver(floor) and floor != min_driver:
            msg += (f"; CUDA minor-version compatibility would run it from {floor}: build the bundle for this "
                    "host's probe file (`offpkg probe`, then --target) to plan for that")
        else:
            msg += "; upgrade the driver or build the bundle for this host's probe file"
        problems.append(msg)
    # PTX JIT needs the toolkit's own minimum driver, whatever the plan assumed.
    allow_ptx = bool(own) and drv >= parse_driver(own)
    archs = cuda_record.get("archs") or []
    ptx = cuda_record.get("ptx")
    for i, dev in enumerate((gpu or {}).get("devices") or []):
        cc = dev.get("compute_cap") if isinstance(dev, dict) else None
        if not cc:
            continue
        name = dev.get("name") or f"GPU {i}"
        try:
            ok = covers(archs, ptx, str(cc), allow_ptx=allow_ptx)
        except InputError:
            problems.append(f"{name}: compute capability {cc!r} cannot be read")
            continue
        if not ok:
            held = ", ".join(f"sm_{a.replace('.', '')}" for a in archs) + (f" + PTX {ptx}" if ptx else "")
            problems.append(f"{name} (compute {cc}) is not covered by the bundle's {variant} wheels ({held}); "
                            "build the bundle for this host's probe file (--target) to pick a build that covers it")
    return problems


def _check_rocm_host(rec: dict[str, Any], gpu: dict[str, Any] | None, require_gpu: bool) -> list[str]:
    from .rocm import gfx_of

    variant = rec["variant"]
    if not gpu or gpu.get("vendor") != "amd":
        return ([f"this host has no AMD GPU; the bundle's torch is a ROCm build ({variant}) and would run on the "
                 "CPU only"] if require_gpu else [])
    served = set(rec.get("archs") or [])
    return [f"AMD GPU {g} is not served by the bundle's {variant} build (it serves {', '.join(sorted(served))}); "
            "build the bundle for this host's probe file (--target)" for g in gfx_of(gpu) if served and g not in served]


def zip_metadata(wheel: Path | IO[bytes], name: str | None = None) -> str:
    """The ``*.dist-info/METADATA`` of a wheel (a path or an open seekable file)."""
    name = name or Path(str(getattr(wheel, "name", wheel))).name
    try:
        with zipfile.ZipFile(wheel) as z:
            for n in z.namelist():
                parts = n.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return z.read(n).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"cannot read the metadata of {name}: {exc}") from None
    raise InputError(f"{name} has no .dist-info/METADATA: it is not a valid wheel")


# ------------------------------------------------------------------ checking a bundle

def _runtime_packages(manifest: Manifest) -> list[Package]:
    return [p for p in manifest.requirement_packages
            if is_torch_family(p.name) or is_cuda_runtime(p.name)]


def check_manifest(manifest: Manifest, bundle: Path | None = None, *,
                   metadata: dict[str, str] | None = None) -> list[str]:
    """Problems with a bundle's torch build against its CUDA record; [] when fine (or no record).

    Always checked from the manifest: the torch-family wheels carry the recorded
    variant's local label (none for PyPI's default build) and torch is the recorded
    release. With ``bundle`` (a bundle directory or archive) or ``metadata``
    ({wheel filename: METADATA text}), also: every NVIDIA runtime wheel (``nvidia-*``,
    ``cuda-toolkit`` with its extras' components, ...) that the torch-family wheels
    require for each target, evaluated with that target's markers, is in the bundle.
    """
    rec = manifest.cuda
    if not rec or not rec.get("variant"):
        return []
    problems: list[str] = []
    variant = str(rec["variant"])
    # PyPI's build and a custom index (Jetson wheels) carry no label to check.
    from_pypi = bool(rec.get("from_pypi")) or rec.get("labelled") is False
    family = [p for p in manifest.requirement_packages if is_torch_family(p.name)]
    if not any(p.name == "torch" for p in family):
        problems.append(f"the manifest records a torch {variant} build, but the bundle holds no torch wheel")
    for p in family:
        try:
            local = Version(p.version).local
        except InvalidVersion:
            problems.append(f"{p.filename}: version {p.version!r} is not a valid version")
            continue
        if from_pypi:
            if local is not None:
                problems.append(f"{p.filename}: carries the local label +{local}, but the bundle records PyPI's default "
                                f"{variant} build (no label): a build from another index was mixed in")
        elif local is None:
            if p.name in LABELLED:
                problems.append(f"{p.filename}: has no local label, but the bundle records the +{variant} build from "
                                f"{rec.get('index_url')}: an unlabelled build (PyPI's?) was mixed in")
        elif local != variant:
            problems.append(f"{p.filename}: is a +{local} build, but the bundle records the +{variant} build")
    want = rec.get("torch_version")
    for p in family:
        if p.name == "torch" and want and Version(p.version).public != Version(str(want)).public:
            problems.append(f"{p.filename}: torch {p.version} differs from the recorded torch {want}")
    if metadata is None and bundle is not None:
        metadata = read_metadata(Path(bundle), _runtime_packages(manifest))
    if metadata is not None:
        problems += _missing_runtime(manifest, family, metadata)
    return problems


def _missing_runtime(manifest: Manifest, family: list[Package], metadata: dict[str, str]) -> list[str]:
    from ..target import Target

    problems: list[str] = []
    targets = [Target.from_probe(t, source=f"target {i}") for i, t in enumerate(manifest.targets)]
    for ti, target in enumerate(targets):
        have: dict[str, Package] = {p.name: p for p in manifest.requirement_packages if ti in p.targets}
        # Walk from the torch-family wheels through the NVIDIA runtime wheels, extras included.
        queue: list[tuple[Package, frozenset[str]]] = [(p, frozenset()) for p in family if ti in p.targets]
        seen: set[tuple[str, frozenset[str]]] = set()
        while queue:
            pkg, extras = queue.pop()
            if (pkg.filename, extras) in seen:
                continue
            seen.add((pkg.filename, extras))
            text = metadata.get(pkg.filename)
            if text is None:
                problems.append(f"{pkg.filename}: its METADATA could not be read to check its NVIDIA runtime wheels")
                continue
            for req in _requires(text, target, extras):
                name = canonicalize_name(req.name)
                if not (is_cuda_runtime(name) or is_torch_family(name)):
                    continue
                got = have.get(name)
                where = f" for {target.describe()}" if len(targets) > 1 else ""
                via = f" (with its extras {', '.join(sorted(extras))})" if extras else ""
                wanted = f"{name}{req.specifier}"
                if got is None:
                    problems.append(f"{pkg.name} {pkg.version}{via} requires {wanted}{where}, which is not in the "
                                    "bundle: the NVIDIA runtime is incomplete")
                    continue
                if not req.specifier.contains(Version(got.version), prereleases=True):
                    problems.append(f"{pkg.name} {pkg.version}{via} requires {wanted}{where}, but the bundle holds "
                                    f"{got.name} {got.version}")
                    continue
                if is_cuda_runtime(name):
                    queue.append((got, frozenset(canonicalize_name(e) for e in req.extras)))
    return list(dict.fromkeys(problems))


def _requires(metadata: str, target: Target, extras: Iterable[str]) -> list[Requirement]:
    out = []
    wanted = [""] + sorted(extras)
    for line in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            r = Requirement(line)
        except InvalidRequirement:
            continue
        if r.marker is None or any(target.evaluate(str(r.marker), extra=e) for e in wanted):
            out.append(r)
    return out


def read_metadata(bundle: Path, packages: list[Package]) -> dict[str, str]:
    """{filename: METADATA} of ``packages``' wheels in a bundle directory or archive (.tar, .tar.zst, .sh)."""
    out: dict[str, str] = {}
    if bundle.is_dir():
        for p in packages:
            path = bundle / p.path
            if path.is_file():
                try:
                    out[p.filename] = zip_metadata(path)
                except InputError:
                    pass
        return out
    return _archive_metadata(bundle, {p.path: p.filename for p in packages})


def _archive_metadata(archive: Path, wanted: dict[str, str]) -> dict[str, str]:
    """{filename: METADATA} of the wanted wheels of a bundle archive, read through :mod:`offpkg.archive`.

    Each wanted wheel is streamed to a temporary file (a zip needs seeking) and read there.
    """
    from ..archive import each_member, payload_offset

    out: dict[str, str] = {}
    try:
        offset = payload_offset(archive) if archive.name.endswith(".sh") else 0
        with tempfile.TemporaryDirectory(prefix="offpkg-meta-") as tmp:
            dest = Path(tmp) / "wheel.whl"
            for name, src in each_member(archive, set(wanted), offset=offset):
                with open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                try:
                    out[wanted[name]] = zip_metadata(dest, name)
                except InputError:
                    pass  # reported as unreadable by the caller
                dest.unlink()
    except (OffpkgError, OSError):
        pass  # a broken archive is verify's own finding; unread wheels are reported as unreadable
    return out
