"""The GPU facts offpkg keeps as data, and the small parsers around them.

``offpkg/data/cuda.json`` and ``offpkg/data/rocm.json`` hold only what the package
index cannot tell: driver minimums, compatibility floors, the variant lists of each
release and the GPU architectures each build was compiled for, every figure with its
source. What the index *can* tell (the CUDA version of PyPI's default build of a
release, read from its wheel's metadata: see :mod:`offpkg.gpu.pypi`) comes in as
``observed`` facts and wins over the data. A release newer than the data is
described from what was observed plus the newest release's rows, and says so
(:attr:`Release.assumed`): it is planned with a warning, never refused.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..errors import InputError, OffpkgError, TargetMismatchError, UsageError

DEFAULT_INDEX_BASE = "https://download.pytorch.org/whl"
DATA_FORMAT = 2
ROCM_FORMAT = 1
CPU_ARCHES = ("x86_64", "aarch64")

# observed: {torch series: {cpu arch: CUDA version of PyPI's default build, or None for a CPU-only build}}
Observed = Mapping[str, Mapping[str, "str | None"]]


class CudaNoFitError(TargetMismatchError):
    """No CUDA build of torch runs on the target's driver and GPUs."""


class CudaDataError(OffpkgError):
    """offpkg's own data file is missing or malformed (an installation problem)."""

    exit_code = 10


# ------------------------------------------------------------------ parsers

_DRIVER_RE = re.compile(r"\d+(?:\.\d+){0,3}")


def parse_driver(value: str, what: str = "driver version") -> tuple[int, ...]:
    """``"535.54.03"`` -> ``(535, 54, 3)``; InputError when it is not a version."""
    v = str(value).strip()
    if not _DRIVER_RE.fullmatch(v):
        raise InputError(f"{what} {value!r} is not an NVIDIA driver version (e.g. 535.54.03)")
    return tuple(int(x) for x in v.split("."))


def parse_cc(value: str) -> tuple[int, int]:
    """A compute capability: ``"8.6"``, ``"sm_86"``, ``"86"`` or ``"12.0"`` -> ``(8, 6)``."""
    v = str(value).strip().lower()
    if v.startswith("sm_"):
        v = v[3:]
    m = re.fullmatch(r"(\d{1,2})\.(\d)", v)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"(\d{1,2})(\d)", v)
    if m:
        return int(m.group(1)), int(m.group(2))
    raise InputError(f"compute capability {value!r} is not of the form X.Y (e.g. 8.6)")


def fmt_cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def cuda_key(cuda: str) -> tuple[int, int]:
    a, b = cuda.split(".")[:2]
    return int(a), int(b)


def variant_of(cuda: str) -> str:
    """``"13.0"`` -> ``"cu130"``."""
    a, b = cuda_key(cuda)
    return f"cu{a}{b}"


def series(torch: str) -> str:
    """``"2.13.0"`` -> ``"2.13"``; UsageError for a local label or garbage."""
    t = torch.strip()
    if t.startswith("=="):
        t = t[2:].strip()
    if "+" in t:
        raise UsageError(f"give the torch version without a local label ({torch!r}); the build is chosen with --cuda")
    if not re.fullmatch(r"\d+\.\d+(?:\.\d+)?(?:(?:a|b|rc)\d+)?", t):
        raise UsageError(f"torch version {torch!r} is not of the form X.Y or X.Y.Z (e.g. 2.6 or 2.6.0)")
    m = re.match(r"(\d+)\.(\d+)", t)
    assert m is not None  # the fullmatch above guarantees it
    return f"{int(m.group(1))}.{int(m.group(2))}"


def norm_arch(arch: str) -> str:
    """The CPU architecture as the data names it (``arm64`` is ``aarch64``)."""
    a = (arch or "x86_64").lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(a, a)


def covers(archs: list[str] | tuple[str, ...], ptx: str | None, cc: str, allow_ptx: bool = True) -> bool:
    """Whether wheels with SASS for ``archs`` (and PTX for ``ptx``) run on a GPU of compute capability ``cc``.

    SASS runs on the same major architecture at an equal or higher minor (sm_80 on
    8.6, sm_120 on GB10's 12.1); PTX is JIT-compiled for any equal or newer GPU, but
    only when the driver meets the toolkit's own minimum (``allow_ptx``).
    """
    c = parse_cc(cc)
    for a in archs:
        major, minor = parse_cc(a)
        if major == c[0] and minor <= c[1]:
            return True
    return bool(allow_ptx and ptx is not None and parse_cc(ptx) <= c)


# ------------------------------------------------------------------ loading and validating


def _read(name: str) -> Any:
    try:
        return json.loads(resources.files("offpkg").joinpath(f"data/{name}").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CudaDataError(f"offpkg's GPU data file (offpkg/data/{name}) cannot be read: {exc}",
                            hint="reinstall offpkg") from None


@lru_cache(maxsize=1)
def load_data() -> dict[str, Any]:
    """The validated contents of ``offpkg/data/cuda.json`` (cached)."""
    data = _read("cuda.json")
    validate_data(data)
    return data


@lru_cache(maxsize=1)
def load_rocm() -> dict[str, Any]:
    """The validated contents of ``offpkg/data/rocm.json`` (cached)."""
    data = _read("rocm.json")
    validate_rocm(data)
    return data


def _bad(file: str, msg: str) -> CudaDataError:
    return CudaDataError(f"offpkg/data/{file}: {msg}", hint="reinstall offpkg")


def _need_source(file: str, row: Any, where: str) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("source"), str) or not row["source"].strip():
        raise _bad(file, f"{where}: every figure needs a source")


def validate_data(data: Any) -> None:
    """Check the structure and cross-references of the CUDA data; CudaDataError on the first problem."""
    f = "cuda.json"
    if not isinstance(data, dict) or data.get("format") != DATA_FORMAT:
        raise _bad(f, f"expected an object with format {DATA_FORMAT}")
    if not isinstance(data.get("sources"), dict) or not data["sources"]:
        raise _bad(f, "sources: missing")
    for key in ("cuda_min_driver", "minor_version_compat", "torch", "variant_archs"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise _bad(f, f"{key}: expected a non-empty list")
    if not isinstance(data.get("variants"), dict):
        raise _bad(f, "variants: expected an object")
    try:
        toolkits: set[str] = set()
        for i, row in enumerate(data["cuda_min_driver"]):
            _need_source(f, row, f"cuda_min_driver[{i}]")
            cuda_key(row["cuda"])
            parse_driver(row["linux"], f"cuda_min_driver[{i}]")
            parse_driver(row["windows"], f"cuda_min_driver[{i}]")
            toolkits.add(row["cuda"])
        for i, row in enumerate(data["minor_version_compat"]):
            _need_source(f, row, f"minor_version_compat[{i}]")
            int(row["major"])
            parse_driver(row["linux"])
            parse_driver(row["windows"])
        for name, row in data["variants"].items():
            if not re.fullmatch(r"cu\d{3}", name):
                raise _bad(f, f"variants.{name}: not a cuXYZ name")
            _need_source(f, row, f"variants.{name}")
            if row["cuda"] not in toolkits:
                raise _bad(f, f"variants.{name}: CUDA {row['cuda']} has no minimum driver in cuda_min_driver")
            if name != variant_of(row["cuda"]):
                raise _bad(f, f"variants.{name}: name does not match CUDA {row['cuda']}")
        for i, row in enumerate(data["variant_archs"]):
            where = f"variant_archs[{i}]"
            _need_source(f, row, where)
            if row["variant"] not in data["variants"]:
                raise _bad(f, f"{where}: unknown variant {row['variant']}")
            if row.get("cpu_arch", "x86_64") not in CPU_ARCHES:
                raise _bad(f, f"{where}: cpu_arch must be one of {', '.join(CPU_ARCHES)}")
            SpecifierSet(row["torch"])
            for a in row["archs"]:
                parse_cc(a)
            if row.get("ptx") is not None:
                parse_cc(row["ptx"])
        for i, row in enumerate(data["torch"]):
            where = f"torch[{i}]"
            _need_source(f, row, where)
            s = row["torch"]
            for arch, key in (("x86_64", "variants"), ("aarch64", "variants_aarch64")):
                for v in row.get(key, []):
                    if v not in data["variants"]:
                        raise _bad(f, f"{where}: torch {s} names unknown variant {v}")
                    if arch_row(data, v, s, arch) is None:
                        raise _bad(f, f"{where}: no variant_archs entry for {v} ({arch}) with torch {s}")
            pypi = row.get("pypi")
            if not isinstance(pypi, dict) or set(pypi) != set(CPU_ARCHES):
                raise _bad(f, f"{where}: pypi must name the default build for {' and '.join(CPU_ARCHES)}")
            for arch, cuda in pypi.items():
                key = "variants" if arch == "x86_64" else "variants_aarch64"
                if cuda is not None and variant_of(cuda) not in row.get(key, []):
                    raise _bad(f, f"{where}: PyPI's CUDA {cuda} build of torch {s} ({arch}) is not among its variants")
        xpu = data.get("xpu")
        if xpu is not None:
            _need_source(f, xpu, "xpu")
            SpecifierSet(xpu["torch"])
        jet = data.get("jetson")
        if jet is not None:
            _need_source(f, jet, "jetson")
            for c in jet["compute_caps"]:
                parse_cc(c)
    except (KeyError, TypeError, ValueError, InvalidSpecifier, InputError) as exc:
        raise _bad(f, f"malformed entry: {exc}") from None


def validate_rocm(data: Any) -> None:
    """Check the ROCm data; CudaDataError on the first problem."""
    f = "rocm.json"
    if not isinstance(data, dict) or data.get("format") != ROCM_FORMAT:
        raise _bad(f, f"expected an object with format {ROCM_FORMAT}")
    try:
        for name, row in data["variants"].items():
            if not re.fullmatch(r"rocm\d+\.\d+(?:\.\d+)?", name):
                raise _bad(f, f"variants.{name}: not a rocmX.Y name")
            _need_source(f, row, f"variants.{name}")
            if not row["gfx"] or not all(re.fullmatch(r"gfx[0-9a-f]{3,4}", g) for g in row["gfx"]):
                raise _bad(f, f"variants.{name}: gfx targets must look like gfx90a")
        for i, row in enumerate(data["torch"]):
            _need_source(f, row, f"torch[{i}]")
            Version(row["torch"])
            for v in row["variants"]:
                if v not in data["variants"]:
                    raise _bad(f, f"torch[{i}]: unknown variant {v}")
    except (KeyError, TypeError, ValueError, InvalidVersion) as exc:
        if isinstance(exc, CudaDataError):
            raise
        raise _bad(f, f"malformed entry: {exc}") from None


def arch_row(data: dict[str, Any], variant: str, s: str, cpu_arch: str = "x86_64") -> dict[str, Any] | None:
    """The ``variant_archs`` row of a variant for torch series ``s`` on ``cpu_arch``."""
    for row in data["variant_archs"]:
        if (row["variant"] == variant and row.get("cpu_arch", "x86_64") == cpu_arch
                and Version(s) in SpecifierSet(row["torch"])):
            return row
    return None


# ------------------------------------------------------------------ releases


@dataclass(frozen=True)
class Release:
    """What offpkg knows about one torch release series, from its data and what the index showed."""

    torch: str  # "2.15"
    variants: dict[str, tuple[str, ...]]  # cpu arch -> CUDA variants on the PyTorch index
    pypi: dict[str, str | None]  # cpu arch -> CUDA version of PyPI's default build (None: CPU-only)
    uncertain: bool = False
    assumed: tuple[str, ...] = field(default=())  # what was assumed, for a warning
    like: str | None = None  # the data release its rows were borrowed from (a release newer than the data)

    def pypi_variant(self, arch: str) -> str | None:
        """``"cu130"`` for PyPI's CUDA 13.0 build on ``arch``; ``"cpu"`` for a CPU-only one."""
        cuda = self.pypi.get(norm_arch(arch))
        return variant_of(cuda) if cuda else "cpu"


def data_releases() -> list[str]:
    """The torch release series offpkg's data describes, oldest first."""
    return [r["torch"] for r in sorted(load_data()["torch"], key=lambda r: Version(r["torch"]))]


def torch_releases(observed: Observed | None = None) -> list[str]:
    """The torch release series offpkg knows (data plus observed), oldest first."""
    data = data_releases()
    # releases older than the data (torch 1.x on PyPI) are not planned: offpkg has no facts for them
    known = set(data) | {s for s in (observed or {}) if Version(s) > Version(data[-1])}
    return sorted(known, key=Version)


def release(s: str, observed: Observed | None = None) -> Release:
    """The facts of torch series ``s``: the data's row, corrected by what was observed on PyPI.

    A release newer than the data is described from ``observed`` (PyPI's builds) and the
    newest data release (variant lists, GPU architectures), with :attr:`Release.assumed`
    naming what was borrowed. An older release unknown to the data is an InputError.
    """
    rows = {r["torch"]: r for r in load_data()["torch"]}
    seen = dict((observed or {}).get(s) or {})
    known = data_releases()
    if s in rows:
        row = rows[s]
        pypi = {a: row["pypi"][a] for a in CPU_ARCHES}
        assumed: list[str] = []
        for a, cuda in seen.items():
            if a in pypi and cuda != pypi[a]:
                assumed.append(f"PyPI's torch {s} for {a} is a {('CUDA ' + cuda) if cuda else 'CPU-only'} build by its "
                               f"wheel metadata, not {('CUDA ' + pypi[a]) if pypi[a] else 'CPU-only'} as offpkg's data says: "
                               "the metadata wins")
                pypi[a] = cuda
        variants = {"x86_64": tuple(row["variants"]), "aarch64": tuple(row.get("variants_aarch64", []))}
        for a, cuda in pypi.items():  # a build PyPI has is a variant, even where the data's list lacks it
            if cuda and variant_of(cuda) not in variants[a] and variant_of(cuda) in load_data()["variants"]:
                variants[a] = (*variants[a], variant_of(cuda))
        return Release(s, variants, pypi, uncertain=bool(row.get("uncertain")), assumed=tuple(assumed))
    if Version(s) < Version(known[-1]):
        raise InputError(f"torch {s} is not in offpkg's CUDA data ({known[0]} to {known[-1]})",
                         hint=f"use torch {known[0]} or newer")
    newest = rows[known[-1]]
    pypi = {a: seen[a] if a in seen else newest["pypi"][a] for a in CPU_ARCHES}
    what = []
    if seen:
        what.append("its PyPI build (" + ", ".join(f"{a}: {('CUDA ' + c) if c else 'CPU only'}"
                                                    for a, c in sorted(seen.items())) + ") was read from its wheel metadata")
    else:
        what.append(f"PyPI's build was assumed to be torch {known[-1]}'s")
    variants = {"x86_64": tuple(newest["variants"]), "aarch64": tuple(newest.get("variants_aarch64", []))}
    for a, cuda in pypi.items():
        if cuda and variant_of(cuda) not in variants[a]:
            if variant_of(cuda) not in load_data()["variants"]:
                continue  # a CUDA offpkg has no driver figures for: planned only through PyPI, see plan.py
            variants[a] = (*variants[a], variant_of(cuda))
    what.append(f"its PyTorch-index variants ({', '.join(variants['x86_64'])}) and GPU architectures were assumed "
                f"to be torch {known[-1]}'s")
    note = (f"torch {s} is newer than offpkg's data ({known[0]} to {known[-1]}): " + "; ".join(what)
            + "; upgrade offpkg for checked facts")
    return Release(s, variants, pypi, uncertain=True, assumed=(note,), like=known[-1])


def variants_for(torch: str, arch: str = "x86_64", observed: Observed | None = None) -> list[str]:
    """CUDA variants on the PyTorch index for a torch release and CPU architecture (without ``cpu``)."""
    return list(release(series(torch), observed).variants.get(norm_arch(arch), ()))


def variant_archs(variant: str, rel: Release, arch: str = "x86_64") -> dict[str, Any] | None:
    """The GPU-architecture row of ``variant`` for ``rel`` (borrowed from the newest data release if newer)."""
    data = load_data()
    return arch_row(data, variant, rel.like or rel.torch, norm_arch(arch))


def variant_cuda(variant: str) -> str:
    return str(load_data()["variants"][variant]["cuda"])


def own_min_driver(cuda: str, os: str = "linux") -> str:
    """The CUDA toolkit's own minimum driver (NVIDIA Table 3) for ``os``."""
    col = "windows" if os == "windows" else "linux"
    for row in load_data()["cuda_min_driver"]:
        if row["cuda"] == cuda:
            return str(row[col])
    raise InputError(f"CUDA {cuda} has no known minimum driver")


def compat_floor(cuda: str, os: str = "linux") -> str | None:
    """The minor-version-compatibility driver floor that covers ``cuda`` (None for 11.0)."""
    col = "windows" if os == "windows" else "linux"
    key = cuda_key(cuda)
    for row in load_data()["minor_version_compat"]:
        if cuda_key(row["from"]) <= key <= cuda_key(row["to"]):
            return str(row[col])
    return None


def uncertain_driver(cuda: str, os: str) -> bool:
    col = "windows" if os == "windows" else "linux"
    for table in ("cuda_min_driver", "minor_version_compat"):
        for row in load_data()[table]:
            if row.get("uncertain") and row.get("uncertain_about", col) == col:
                if table == "cuda_min_driver" and row["cuda"] == cuda:
                    return True
                if table == "minor_version_compat" and cuda_key(row["from"]) <= cuda_key(cuda) <= cuda_key(row["to"]):
                    return True
    return False


def jetson_facts() -> dict[str, Any]:
    return dict(load_data().get("jetson") or {})


def is_jetson(gpu: Mapping[str, Any] | None, arch: str) -> bool:
    """A Jetson (integrated, non-SBSA) GPU: the probe said so, or an aarch64 GPU of a Jetson compute capability."""
    if not gpu or norm_arch(arch) != "aarch64":
        return False
    if gpu.get("jetson"):
        return True
    caps = {fmt_cc(parse_cc(c)) for c in jetson_facts().get("compute_caps", [])}
    devs = [d for d in gpu.get("devices") or [] if isinstance(d, dict) and d.get("compute_cap")]
    try:
        return bool(devs) and all(fmt_cc(parse_cc(str(d["compute_cap"]))) in caps for d in devs)
    except InputError:
        return False
