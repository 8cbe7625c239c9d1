"""Choose the CUDA build of torch for a target host, from its driver and GPUs.

The facts live in ``offpkg/data/cuda.json`` (every figure with its source, the
doubtful ones marked ``"uncertain": true``); this module applies the policy.

Policy (see docs/cuda.md):

1. No NVIDIA driver, no GPU, or a macOS target: the ``cpu`` build.
2. A CUDA variant of a torch release is *runnable* when the driver meets the
   toolkit's own minimum (Table 3 of NVIDIA's release notes), or failing that
   the minor-version-compatibility floor of its CUDA major (11.1-11.8 >= 450.80.02,
   12.x >= 525.60.13, 13.x >= 580; Windows columns on Windows). Under minor-version
   compatibility PTX JIT does not work, so such a plan is flagged and its GPUs
   must be covered by real machine code (SASS), not by PTX.
3. A variant *covers* a GPU when its wheels hold SASS for the same major
   architecture at or below the GPU's compute capability (sm_80 runs on 8.6), or
   PTX at or below it (only when the driver meets the toolkit's own minimum).
4. Among the runnable variants that cover every GPU: the newest CUDA *major*
   wins (a 12.x build through minor-version compatibility beats an 11.x build);
   within it, the newest variant whose own minimum the driver meets; only when
   none does, the newest one through minor-version compatibility (flagged).
   So driver 580.65.06 with torch 2.13 gets cu130 (own minimum), not cu132 (which
   needs 595.45.04 and would only run through compatibility).
5. With no torch requested, the newest torch release that has such a variant.
6. Nothing fits: :class:`CudaNoFitError` saying why, with a hint naming an older
   torch that fits or the driver version needed.

Where the wheels come from: PyPI when the variant is PyPI's default build of
that torch for Linux x86_64 (``from_pypi``), otherwise the PyTorch index for
the variant (``{index_base}/{variant}``), or a mirror of it given as
``index_base``. PyPI's Windows and macOS wheels are CPU-only, so CUDA builds
for Windows always come from the index, and ``cpu`` on Windows/macOS is PyPI's.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import InputError, OffpkgError, TargetMismatchError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..target import Target

DEFAULT_INDEX_BASE = "https://download.pytorch.org/whl"
DATA_FORMAT = 1

# Packages whose builds differ per CUDA variant and must come only from the
# chosen variant's index, pinned with its local label (+cu126, +cpu): mixing an
# index build with PyPI's default build is how +cpu/+cuXYZ mix-ups happen.
TORCH_FAMILY: frozenset[str] = frozenset({
    "torch",
    "torchvision",
    "torchaudio",
    "torchtext",
    "triton",
    "pytorch-triton",
    "pytorch-triton-rocm",
    "pytorch-triton-xpu",
    "fbgemm-gpu",
    "fbgemm-gpu-genai",
})


class CudaNoFitError(TargetMismatchError):
    """No CUDA build of torch runs on the target's driver and GPUs."""


class CudaDataError(OffpkgError):
    """offpkg's own data file is missing or malformed (an installation problem)."""

    exit_code = 10


# ------------------------------------------------------------------ versions

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


def _fmt_cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def _cuda_key(cuda: str) -> tuple[int, int]:
    a, b = cuda.split(".")[:2]
    return int(a), int(b)


def _series(torch: str) -> str:
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


# ------------------------------------------------------------------ data


@lru_cache(maxsize=1)
def load_data() -> dict[str, Any]:
    """The validated contents of ``offpkg/data/cuda.json`` (cached)."""
    try:
        text = resources.files("offpkg").joinpath("data/cuda.json").read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CudaDataError(f"offpkg's CUDA data file (offpkg/data/cuda.json) cannot be read: {exc}",
                            hint="reinstall offpkg") from None
    validate_data(data)
    return data


def validate_data(data: Any) -> None:
    """Check the structure and cross-references of the CUDA data; CudaDataError on the first problem."""

    def bad(msg: str) -> CudaDataError:
        return CudaDataError(f"offpkg/data/cuda.json: {msg}", hint="reinstall offpkg")

    if not isinstance(data, dict) or data.get("format") != DATA_FORMAT:
        raise bad(f"expected an object with format {DATA_FORMAT}")
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise bad("sources: missing")
    for key in ("cuda_min_driver", "minor_version_compat", "torch", "variant_archs"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise bad(f"{key}: expected a non-empty list")
    if not isinstance(data.get("variants"), dict):
        raise bad("variants: expected an object")

    def need_source(row: dict[str, Any], where: str) -> None:
        if not isinstance(row.get("source"), str) or not row["source"].strip():
            raise bad(f"{where}: every figure needs a source")

    try:
        toolkits: set[str] = set()
        for i, row in enumerate(data["cuda_min_driver"]):
            where = f"cuda_min_driver[{i}]"
            need_source(row, where)
            _cuda_key(row["cuda"])
            parse_driver(row["linux"], where)
            parse_driver(row["windows"], where)
            toolkits.add(row["cuda"])
        for i, row in enumerate(data["minor_version_compat"]):
            where = f"minor_version_compat[{i}]"
            need_source(row, where)
            int(row["major"])
            parse_driver(row["linux"], where)
            parse_driver(row["windows"], where)
        for name, row in data["variants"].items():
            if not re.fullmatch(r"cu\d{3}", name):
                raise bad(f"variants.{name}: not a cuXYZ name")
            need_source(row, f"variants.{name}")
            if row["cuda"] not in toolkits:
                raise bad(f"variants.{name}: CUDA {row['cuda']} has no minimum driver in cuda_min_driver")
            if name != "cu" + row["cuda"].replace(".", ""):
                raise bad(f"variants.{name}: name does not match CUDA {row['cuda']}")
        for i, row in enumerate(data["variant_archs"]):
            where = f"variant_archs[{i}]"
            need_source(row, where)
            if row["variant"] not in data["variants"]:
                raise bad(f"{where}: unknown variant {row['variant']}")
            SpecifierSet(row["torch"])
            for a in row["archs"]:
                parse_cc(a)
            if row.get("ptx") is not None:
                parse_cc(row["ptx"])
        for i, row in enumerate(data["torch"]):
            where = f"torch[{i}]"
            need_source(row, where)
            series = row["torch"]
            for v in row["variants"]:
                if v not in data["variants"]:
                    raise bad(f"{where}: torch {series} names unknown variant {v}")
                if _arch_row(data, v, series) is None:
                    raise bad(f"{where}: no variant_archs entry for {v} with torch {series}")
            pypi = row.get("pypi_linux_x86_64")
            if pypi is not None and "cu" + pypi.replace(".", "") not in row["variants"]:
                raise bad(f"{where}: PyPI's CUDA {pypi} build of torch {series} is not among its variants")
    except (KeyError, TypeError, ValueError, InvalidSpecifier, InputError) as exc:
        if isinstance(exc, CudaDataError):
            raise
        raise bad(f"malformed entry: {exc}") from None


def _arch_row(data: dict[str, Any], variant: str, series: str) -> dict[str, Any] | None:
    for row in data["variant_archs"]:
        if row["variant"] == variant and Version(series) in SpecifierSet(row["torch"]):
            return row
    return None


def torch_releases() -> list[str]:
    """The torch release series offpkg knows, oldest first (``["2.0", ..., "2.13"]``)."""
    return [r["torch"] for r in sorted(load_data()["torch"], key=lambda r: Version(r["torch"]))]


def variants_for(torch: str) -> list[str]:
    """CUDA variants on the PyTorch index for a torch release (without ``cpu``)."""
    return list(_torch_row(_series(torch))["variants"])


def _torch_row(series: str) -> dict[str, Any]:
    for row in load_data()["torch"]:
        if row["torch"] == series:
            return row
    known = torch_releases()
    if Version(series) > Version(known[-1]):
        raise InputError(f"torch {series} is newer than offpkg's CUDA table ({known[0]} to {known[-1]})",
                         hint=f"use --torch {known[-1]} or older, or upgrade offpkg for newer torch releases")
    raise InputError(f"torch {series} is not in offpkg's CUDA table ({known[0]} to {known[-1]})",
                     hint=f"use torch {known[0]} or newer")


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
    key = _cuda_key(cuda)
    for row in load_data()["minor_version_compat"]:
        if _cuda_key(row["from"]) <= key <= _cuda_key(row["to"]):
            return str(row[col])
    return None


def _uncertain_driver(cuda: str, os: str) -> bool:
    col = "windows" if os == "windows" else "linux"
    for table in ("cuda_min_driver", "minor_version_compat"):
        for row in load_data()[table]:
            if row.get("uncertain") and row.get("uncertain_about", col) == col:
                if table == "cuda_min_driver" and row["cuda"] == cuda:
                    return True
                if table == "minor_version_compat" and _cuda_key(row["from"]) <= _cuda_key(cuda) <= _cuda_key(row["to"]):
                    return True
    return False


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class CudaPlan:
    """The torch build chosen for a target, and why."""

    torch: str  # the requested version ("2.6.0") or the release series chosen ("2.13")
    variant: str  # "cu126", "cu130", "cpu"
    cuda: str | None  # "12.6"; None for cpu
    index_url: str  # the variant's index: {index_base}/{variant}
    from_pypi: bool  # the variant is PyPI's default build of this torch for the target
    min_driver: str | None  # the driver this plan needs (the compat floor when it relies on it)
    uses_minor_version_compat: bool  # True: PTX JIT will not work
    archs: tuple[str, ...]  # compute capabilities with machine code (SASS) in the wheels
    reason: str
    own_min_driver: str | None = None  # the toolkit's own minimum (NVIDIA Table 3)
    ptx: str | None = None  # PTX architecture in the wheels, if any
    os: str = "linux"
    uncertain: bool = False  # a figure behind this plan is marked uncertain in the data
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """The local version label of this build's wheels on the index: ``+cu126``, ``+cpu``."""
        return "+" + self.variant

    @property
    def torch_series(self) -> str:
        return _series(self.torch)

    @property
    def source(self) -> str:
        """Where the torch-family wheels come from: ``"pypi"`` or ``"index"``."""
        return "pypi" if self.from_pypi else "index"

    def to_json(self) -> dict[str, Any]:
        return {
            "torch": self.torch,
            "variant": self.variant,
            "cuda": self.cuda,
            "label": self.label,
            "index_url": self.index_url,
            "from_pypi": self.from_pypi,
            "source": self.source,
            "min_driver": self.min_driver,
            "own_min_driver": self.own_min_driver,
            "uses_minor_version_compat": self.uses_minor_version_compat,
            "archs": list(self.archs),
            "ptx": self.ptx,
            "os": self.os,
            "uncertain": self.uncertain,
            "reason": self.reason,
            "notes": list(self.notes),
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


def covers(archs: list[str] | tuple[str, ...], ptx: str | None, cc: str, allow_ptx: bool = True) -> bool:
    """Whether wheels with SASS for ``archs`` (and PTX for ``ptx``) run on a GPU of compute capability ``cc``.

    SASS runs on the same major architecture at an equal or higher minor (sm_80 on
    8.6); PTX is JIT-compiled for any equal or newer GPU, but only when the driver
    meets the toolkit's own minimum (``allow_ptx``).
    """
    c = parse_cc(cc)
    for a in archs:
        major, minor = parse_cc(a)
        if major == c[0] and minor <= c[1]:
            return True
    return bool(allow_ptx and ptx is not None and parse_cc(ptx) <= c)


def _candidates(series: str, driver: tuple[int, ...] | None, caps: list[str], os: str) -> list[_Candidate]:
    data = load_data()
    out = []
    for v in _torch_row(series)["variants"]:
        cuda = data["variants"][v]["cuda"]
        own = own_min_driver(cuda, os)
        floor = compat_floor(cuda, os)
        mode = None
        if driver is not None:
            if driver >= parse_driver(own):
                mode = "own"
            elif floor is not None and driver >= parse_driver(floor):
                mode = "compat"
        row = _arch_row(data, v, series)
        assert row is not None  # validate_data guarantees it
        archs = tuple(row["archs"])
        ptx = row.get("ptx")
        allow_ptx = mode != "compat"
        uncovered = tuple(c for c in caps if not covers(archs, ptx, c, allow_ptx))
        uncertain = bool(row.get("uncertain")) or _uncertain_driver(cuda, os)
        out.append(_Candidate(v, cuda, own, floor, mode, uncovered, archs, ptx, uncertain))
    return out


def _choose(cands: list[_Candidate]) -> _Candidate | None:
    """Newest CUDA major that fits; in it, own minimum first, then minor-version compatibility."""
    fitting = [c for c in cands if c.fits]
    if not fitting:
        return None
    top = max(_cuda_key(c.cuda)[0] for c in fitting)
    in_major = [c for c in fitting if _cuda_key(c.cuda)[0] == top]
    own = [c for c in in_major if c.mode == "own"]
    pool = own or in_major
    return max(pool, key=lambda c: _cuda_key(c.cuda))


def _index_url(index_base: str, variant: str) -> str:
    return index_base.rstrip("/") + "/" + variant


def _pypi_default(series: str) -> str | None:
    cuda = _torch_row(series).get("pypi_linux_x86_64")
    return "cu" + cuda.replace(".", "") if cuda else None


def _from_pypi(series: str, variant: str, os: str, arch: str) -> bool:
    if os in ("windows", "macos"):
        return variant == "cpu"  # PyPI's Windows and macOS wheels are CPU-only
    if arch != "x86_64":
        return False  # only the Linux x86_64 default build is in the table; take the index
    return variant == _pypi_default(series)


def _cpu_plan(torch: str, os: str, arch: str, index_base: str, reason: str,
              notes: tuple[str, ...] = ()) -> CudaPlan:
    series = _series(torch)
    return CudaPlan(torch=torch, variant="cpu", cuda=None, index_url=_index_url(index_base, "cpu"),
                    from_pypi=_from_pypi(series, "cpu", os, arch), min_driver=None,
                    uses_minor_version_compat=False, archs=(), reason=reason, os=os, notes=notes)


def _make_plan(torch: str, cand: _Candidate, driver: str | None, caps: list[str], os: str, arch: str,
               index_base: str, others: list[_Candidate], explicit: bool = False) -> CudaPlan:
    series = _series(torch)
    compat = cand.mode == "compat"
    notes: list[str] = []
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
        why += f", and {cand.variant} wheels cover every GPU (compute {', '.join(sorted(set(caps), key=parse_cc))})"
    newer = [c for c in others if _cuda_key(c.cuda) > _cuda_key(cand.cuda)]
    if newer and not explicit:
        parts = []
        for c in sorted(newer, key=lambda c: _cuda_key(c.cuda)):
            if c.uncovered:
                parts.append(f"{c.variant} does not cover compute {', '.join(c.uncovered)}")
            elif c.mode is None:
                parts.append(f"{c.variant} needs driver {c.own}"
                             + (f" (or {c.floor} through minor-version compatibility)" if c.floor else ""))
            else:
                parts.append(f"{c.variant} would rely on minor-version compatibility (needs {c.own})")
        why += "; " + "; ".join(parts)
    src = "PyPI (its default build)" if _from_pypi(series, cand.variant, os, arch) else _index_url(index_base, cand.variant)
    reason = f"torch {torch} {cand.variant}: {why}. Wheels from {src}."
    return CudaPlan(
        torch=torch, variant=cand.variant, cuda=cand.cuda, index_url=_index_url(index_base, cand.variant),
        from_pypi=_from_pypi(series, cand.variant, os, arch),
        min_driver=cand.floor if compat else cand.own, uses_minor_version_compat=compat,
        archs=cand.archs, reason=reason, own_min_driver=cand.own, ptx=cand.ptx, os=os,
        uncertain=cand.uncertain, notes=tuple(notes),
    )


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


def _why_not(cands: list[_Candidate], driver: str) -> str:
    parts = []
    for c in sorted(cands, key=lambda c: _cuda_key(c.cuda), reverse=True):
        if c.uncovered:
            parts.append(f"{c.variant} wheels do not cover compute {', '.join(c.uncovered)} "
                         f"(they hold {', '.join(c.archs)})")
        elif c.mode is None:
            parts.append(f"{c.variant} needs driver {c.own}"
                         + (f" (or {c.floor} through minor-version compatibility)" if c.floor else ""))
    return "; ".join(parts)


def plan(driver: str | None, compute_caps: list[str], os: str = "linux", torch: str | None = None,
         index_base: str = DEFAULT_INDEX_BASE, arch: str = "x86_64") -> CudaPlan:
    """The torch build for a host with NVIDIA ``driver`` and GPUs of ``compute_caps`` (see the module policy).

    ``driver`` None (no NVIDIA driver) gives the cpu build. ``torch`` is a release
    ("2.6") or version ("2.6.0"); None picks the newest release with a fitting
    variant. Raises CudaNoFitError when no CUDA build fits.
    """
    caps = [_fmt_cc(parse_cc(c)) for c in compute_caps]
    if os not in ("linux", "windows", "macos"):
        raise UsageError(f"os {os!r} is not one of linux, windows, macos")
    series = _series(torch) if torch else None
    if series is not None:
        _torch_row(series)  # unknown release: a clear error before anything else
    newest = torch_releases()[-1]
    if os == "macos":
        return _cpu_plan(torch or newest, os, arch, index_base, "macOS has no CUDA: the cpu build")
    if not driver:
        why = ("no NVIDIA driver found, although GPUs were listed" if caps
               else "no NVIDIA GPU or driver on the target")
        return _cpu_plan(torch or newest, os, arch, index_base, f"{why}: the cpu build of torch {torch or newest}")
    drv = parse_driver(driver)

    if series is not None:
        cands = _candidates(series, drv, caps, os)
        best = _choose(cands)
        if best is not None:
            return _make_plan(torch, cand=best, driver=driver, caps=caps, os=os, arch=arch,  # type: ignore[arg-type]
                              index_base=index_base, others=cands)
        raise _no_fit(series, cands, driver, caps, os)

    for s in reversed(torch_releases()):
        cands = _candidates(s, drv, caps, os)
        best = _choose(cands)
        if best is not None:
            return _make_plan(s, cand=best, driver=driver, caps=caps, os=os, arch=arch,
                              index_base=index_base, others=cands)
    raise _no_fit(None, _candidates(newest, drv, caps, os), driver, caps, os)


def _no_fit(series: str | None, cands: list[_Candidate], driver: str, caps: list[str], os: str) -> CudaNoFitError:
    gpus = f" and GPUs of compute {', '.join(caps)}" if caps else ""
    if series is not None:
        msg = f"no CUDA build of torch {series} runs on driver {driver}{gpus} ({os}): {_why_not(cands, driver)}"
    else:
        releases = torch_releases()
        msg = (f"no CUDA build of any torch release ({releases[0]} to {releases[-1]}) runs on driver {driver}{gpus} "
               f"({os}); torch {releases[-1]}: {_why_not(cands, driver)}")
    hints = []
    if series is not None:
        drv = parse_driver(driver)
        for s in reversed(torch_releases()):
            if Version(s) >= Version(series):
                continue
            best = _choose(_candidates(s, drv, caps, os))
            if best is not None:
                how = " through minor-version compatibility" if best.mode == "compat" else ""
                hints.append(f"torch {s} ({best.variant}{how}) fits this host: use --torch {s}")
                break
    needed = _driver_needed(cands, caps)
    if needed is not None:
        d, c = needed
        hints.append(f"upgrade the NVIDIA driver to {d} or newer for {c.variant}")
    else:
        hints.append(f"no build of torch {series or torch_releases()[-1]} covers compute {', '.join(caps)}")
    hints.append("or bundle the cpu build with --cuda cpu")
    return CudaNoFitError(msg, hint="; ".join(hints))


def _gpu_inputs(gpu: dict[str, Any] | None) -> tuple[str | None, list[str]]:
    if not gpu:
        return None, []
    devices = gpu.get("devices") or []
    caps = [str(d["compute_cap"]) for d in devices if isinstance(d, dict) and d.get("compute_cap")]
    driver = gpu.get("driver_version")
    return (str(driver) if driver else None), caps


def plan_for_target(target: Target, cuda: str = "auto", torch: str | None = None,
                    index_base: str = DEFAULT_INDEX_BASE) -> CudaPlan:
    """The torch build for an offpkg Target.

    ``cuda``: ``"auto"`` (from ``target.gpu``; no GPU gives cpu), ``"cpu"``, or an
    explicit ``"cuXYZ"``, which must be a variant of the torch release and, when the
    target has GPU facts, run on its driver and cover its GPUs (CudaNoFitError).
    """
    choice = (cuda or "auto").strip().lower()
    os, arch = target.os, target.arch
    if choice == "auto":
        driver, caps = _gpu_inputs(target.gpu)
        return plan(driver, caps, os=os, torch=torch, index_base=index_base, arch=arch)
    newest = torch_releases()[-1]
    if choice == "cpu":
        if torch:
            _torch_row(_series(torch))
        return _cpu_plan(torch or newest, os, arch, index_base, "the cpu build was asked for (--cuda cpu)")
    if not re.fullmatch(r"cu\d{3}", choice):
        raise UsageError(f"--cuda {cuda!r} is not auto, cpu or a CUDA variant like cu126")
    data = load_data()
    if choice not in data["variants"]:
        raise InputError(f"--cuda {choice}: offpkg knows no such PyTorch variant",
                         hint="known variants: " + ", ".join(sorted(data["variants"], key=lambda v: int(v[2:]))))
    if os == "macos":
        raise CudaNoFitError(f"--cuda {choice}: macOS has no CUDA builds of torch", hint="use --cuda cpu")
    if torch:
        series = _series(torch)
        row = _torch_row(series)
        if choice not in row["variants"]:
            raise InputError(f"torch {series} has no {choice} build on the PyTorch index "
                             f"(it has {', '.join(row['variants'])}, cpu)",
                             hint=f"use one of those, or a torch release with {choice}: "
                                  + ", ".join(s for s in torch_releases() if choice in _torch_row(s)["variants"]))
    else:
        having = [s for s in torch_releases() if choice in _torch_row(s)["variants"]]
        series = having[-1]
        torch = series
    driver, caps = _gpu_inputs(target.gpu)
    caps = [_fmt_cc(parse_cc(c)) for c in caps]
    cands = _candidates(series, parse_driver(driver) if driver else None, caps, os)
    cand = next(c for c in cands if c.variant == choice)
    if driver is None:
        # No GPU facts: the user chose; record the toolkit's own minimum.
        cand = _Candidate(cand.variant, cand.cuda, cand.own, cand.floor, "own", (), cand.archs, cand.ptx,
                          cand.uncertain)
        p = _make_plan(torch, cand, None, [], os, arch, index_base, cands, explicit=True)
        return p
    if not cand.fits:
        if cand.mode is None:
            msg = (f"--cuda {choice}: driver {driver} on {target.source} is too old for CUDA {cand.cuda} "
                   f"(needs {cand.own}" + (f", or {cand.floor} through minor-version compatibility)" if cand.floor else ")"))
        else:
            msg = (f"--cuda {choice}: torch {series} {choice} wheels do not cover the GPUs of {target.source} "
                   f"(compute {', '.join(cand.uncovered)}; the wheels hold {', '.join(cand.archs)})")
        try:
            alt = plan(driver, caps, os=os, torch=torch, index_base=index_base, arch=arch)
            hint = f"--cuda auto would choose {alt.variant} for torch {alt.torch}"
        except CudaNoFitError as exc:
            hint = exc.hint
        raise CudaNoFitError(msg, hint=hint)
    return _make_plan(torch, cand, driver, caps, os, arch, index_base, cands, explicit=True)


# ------------------------------------------------------------------ bundles and hosts


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
    }


def check_host(cuda_record: dict[str, Any] | None, gpu: dict[str, Any] | None, *,
               require_gpu: bool = False) -> list[str]:
    """Problems running a bundle's torch build on a host with ``gpu`` facts (``_probe.gpu_facts()``); [] when fine.

    A cpu record is always fine. A CUDA build on a host with no NVIDIA driver runs on
    the CPU, which is only a problem with ``require_gpu``. The driver must meet the
    record's ``min_driver``; every GPU must be covered by the recorded architectures
    (PTX only counts when the driver meets the toolkit's own minimum).
    """
    if not cuda_record or cuda_record.get("variant") in (None, "cpu"):
        return []
    variant = cuda_record["variant"]
    cuda = cuda_record.get("cuda") or "?"
    problems: list[str] = []
    driver, _ = _gpu_inputs(gpu)
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
