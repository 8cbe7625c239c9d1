"""`offpkg bundle --cuda auto|cpu|cuXYZ`: turn a CUDA plan into pinned requirements, and check bundles.

:func:`apply_cuda` runs before resolution. For every target it asks
:func:`offpkg.gpu.cuda.plan_for_target` for the torch build (the targets must agree
on one), finds the exact torch release of that build on the index the build
comes from, and rewrites the requirements so that a ``+cpu`` / ``+cuXYZ`` mix-up
cannot happen:

- a build from the PyTorch index (or a mirror of it): every torch-family
  requirement is pinned *with its local label* (``torch==2.6.0+cu126``) and the
  variant's index is added to the sources. PEP 440 lets a plain ``torch==2.6.0``
  match ``+cpu``, ``+cu124`` or PyPI's build alike; the label pins the build;
- PyPI's default build (``from_pypi``, e.g. torch 2.13 ``cu130`` on Linux
  x86_64): the plain version is pinned and the PyTorch index is *not* added.

torchvision/torchaudio follow torch: a version the user pinned gets the same
label; an unpinned one becomes the newest release of that build whose metadata
requires the chosen torch. The manifest records the plan (variant, minimum
driver, GPU architectures, index, exact torch version).

:func:`check_manifest` checks a finished bundle against its record: torch-family
wheels carry the recorded label (none for PyPI's build), and every NVIDIA
runtime wheel that torch's metadata requires for the target is in the bundle.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.parser import HeaderParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import cuda as cudaplan
from ..errors import InputError, NetworkError, OffpkgError, TargetMismatchError, UsageError
from ..redact import redact_url

if TYPE_CHECKING:  # pragma: no cover
    # offpkg.net.index brings in requests: `offpkg verify` (which checks the cuda record) must not pay for it.
    from ..net.index import DistFile, IndexClient
    from ..bundle import BundleOptions
    from ..net.cache import Cache
    from ..manifest import Manifest, Package
    from ..target import Target

# Torch-family projects whose builds on the PyTorch index carry the variant's local
# label (+cu126, +cpu). triton / pytorch-triton carry none: torch's own pin picks them.
LABELLED: frozenset[str] = frozenset({"torch", "torchvision", "torchaudio", "fbgemm-gpu", "fbgemm-gpu-genai"})
# How many releases of torchvision/torchaudio to try when matching them to torch by metadata.
_COMPANION_TRIES = 6


class CudaBundleError(TargetMismatchError):
    """The targets of one bundle need different torch builds, or the build is not on its index."""


@dataclass(frozen=True)
class TorchChoice:
    """The outcome of :func:`choose`: the plan, the exact torch version and the requirement pins."""

    plan: cudaplan.CudaPlan
    version: str  # public version, e.g. "2.13.0"
    pins: dict[str, str]  # canonical name -> pinned requirement line
    requirements: list[str]  # the rewritten requirement list
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str | None:
        return None if self.plan.from_pypi else self.plan.variant

    @property
    def full_version(self) -> str:
        return self.version + (f"+{self.label}" if self.label else "")


# ------------------------------------------------------------------ entry point

def index_base_default(explicit: str | None = None) -> str:
    """The PyTorch index base: ``explicit`` (--torch-index), ``OFFPKG_TORCH_INDEX``, the config, else the official one."""
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("OFFPKG_TORCH_INDEX", "").strip()
    if env:
        return env.rstrip("/")
    try:
        from ..config import load
        from ..mirrors.catalog import torch_index_base

        return torch_index_base(load())
    except (ImportError, OffpkgError):
        return cudaplan.DEFAULT_INDEX_BASE


def apply_cuda(opts: BundleOptions, cuda: str, torch: str | None, *, index_base: str | None = None) -> None:
    """Plan the torch build for ``opts.targets`` and pin it into ``opts`` (requirements, sources, cuda record)."""
    base = index_base_default(index_base)
    lookup = _Lookup(opts.sources.find_links, opts.fetch_policy.timeout, opts.cache)
    choice = choose(opts.requirements, opts.targets, cuda, torch, base, index_urls=opts.sources.index_urls,
                    lookup=lookup)
    opts.requirements = choice.requirements
    if not choice.plan.from_pypi:
        urls = tuple(opts.sources.index_urls)
        if not any(u.rstrip("/") == choice.plan.index_url.rstrip("/") for u in urls):
            opts.sources = replace(opts.sources, index_urls=urls + (choice.plan.index_url,))
    opts.cuda = record(choice)


def record(choice: TorchChoice) -> dict[str, Any]:
    """The manifest's ``cuda`` record: :func:`offpkg.gpu.cuda.manifest_record` plus the exact release and the pins."""
    plan = choice.plan
    return cudaplan.manifest_record(plan) | {
        "torch_version": choice.version,  # plan.torch may be a series ("2.13")
        "label": None if plan.from_pypi else plan.label,
        "pins": dict(choice.pins),
        "reason": plan.reason,
        "notes": list(dict.fromkeys([*plan.notes, *choice.notes])),
    }


# ------------------------------------------------------------------ planning for every target

def plan_targets(targets: list[Target], cuda: str, torch: str | None, index_base: str) -> cudaplan.CudaPlan:
    """One plan that serves every target; CudaBundleError when they need different builds."""
    plans = [cudaplan.plan_for_target(t, cuda, torch, index_base) for t in targets]
    if len(plans) == 1:
        return plans[0]
    builds = {(p.variant, p.torch_series) for p in plans}
    if len(builds) > 1:
        each = "; ".join(f"{t.source} ({t.describe()}): torch {p.torch_series} {p.variant}"
                         for t, p in zip(targets, plans))
        raise CudaBundleError(
            f"the targets of this bundle need different torch builds: {each}",
            hint="one bundle carries one torch build: bundle each target separately, or choose one build for all "
                 "with --cuda cuXYZ (and --torch X.Y) that every target's driver and GPUs run")
    # Same variant: the most permissive driver floor that is still right for the variant.
    base = min(plans, key=lambda p: cudaplan.parse_driver(p.min_driver) if p.min_driver else (0,))
    # PyPI's default build only where it is PyPI's default for every target; else the labelled index build.
    from_pypi = all(p.from_pypi for p in plans)
    compat = any(p.uses_minor_version_compat for p in plans)
    notes = tuple(dict.fromkeys(n for p in plans for n in p.notes))
    return replace(base, from_pypi=from_pypi, uses_minor_version_compat=compat, notes=notes,
                   uncertain=any(p.uncertain for p in plans))


# ------------------------------------------------------------------ the exact torch release

def _parse_reqs(requirements: list[str]) -> list[tuple[str, Requirement | None]]:
    out: list[tuple[str, Requirement | None]] = []
    for r in requirements:
        try:
            out.append((r, Requirement(r)))
        except InvalidRequirement:
            out.append((r, None))  # validated earlier by offpkg.resolve; keep it as it is
    return out


def _family_specs(parsed: list[tuple[str, Requirement | None]]) -> dict[str, list[Requirement]]:
    fam: dict[str, list[Requirement]] = {}
    for _, req in parsed:
        if req is not None and cudaplan.is_torch_family(req.name):
            fam.setdefault(canonicalize_name(req.name), []).append(req)
    return fam


def _exact_pin(reqs: list[Requirement]) -> str | None:
    """``"2.6.0"`` when the requirements pin torch with ``==2.6.0`` (label dropped), else None."""
    for r in reqs:
        for s in r.specifier:
            if s.operator in ("==", "===") and "*" not in s.version:
                return s.version.split("+", 1)[0]
    return None


def _is_series(torch: str) -> bool:
    return re.fullmatch(r"\s*(==)?\s*\d+\.\d+\s*", torch) is not None


class _Lookup:
    """Project files on the indexes, each page fetched once."""

    def __init__(self, find_links: tuple[str, ...], timeout: float, cache: Cache | None = None) -> None:
        self.find_links = tuple(find_links)
        self.timeout = timeout
        self.cache = cache
        self._clients: dict[tuple[str, ...], IndexClient] = {}
        self._pages: dict[tuple[tuple[str, ...], str], list[DistFile]] = {}

    def client(self, urls: tuple[str, ...]) -> IndexClient:
        if urls not in self._clients:
            from ..net.index import IndexClient

            self._clients[urls] = IndexClient(list(urls), list(self.find_links), timeout=self.timeout,
                                              page_cache=self.cache.index_dir if self.cache is not None else None)
        return self._clients[urls]

    def files(self, urls: tuple[str, ...], name: str) -> list[DistFile]:
        key = (urls, canonicalize_name(name))
        if key not in self._pages:
            self._pages[key] = self.client(urls).files(name)
        return self._pages[key]


def _fits(f: DistFile, t: Target) -> bool:
    if t.wheel_rank(f.filename) is None:
        return False
    if f.requires_python:
        try:
            pyver = Version(t.markers.get("python_full_version") or t.python_version + ".0")
            return pyver in SpecifierSet(f.requires_python)
        except (InvalidSpecifier, InvalidVersion):
            return True
    return True


def releases(files: list[DistFile], name: str, label: str | None, targets: list[Target]
             ) -> dict[Version, list[DistFile]]:
    """{public version: wheels} of ``name`` with local label ``label`` (None: no label) that fit every target."""
    by_version: dict[Version, list[DistFile]] = {}
    cname = canonicalize_name(name)
    for f in files:
        if not f.is_wheel or f.yanked:
            continue
        nv = f.name_version()
        if not nv or canonicalize_name(nv[0]) != cname or nv[1].local != label:
            continue
        by_version.setdefault(Version(nv[1].public), []).append(f)
    return {v: fs for v, fs in by_version.items() if all(any(_fits(f, t) for f in fs) for t in targets)}


def _labelled(version: Version | str, label: str | None) -> str:
    return f"{version}+{label}" if label else str(version)


def _source_urls(plan: cudaplan.CudaPlan, index_urls: tuple[str, ...]) -> tuple[str, ...]:
    """Where the torch-family wheels of ``plan`` are looked up: the variant index, or the user's indexes for PyPI's build."""
    return tuple(index_urls) if plan.from_pypi else (plan.index_url,)


def choose(requirements: list[str], targets: list[Target], cuda: str, torch: str | None, index_base: str, *,
           index_urls: tuple[str, ...], find_links: tuple[str, ...] = (), timeout: float = 30.0,
           lookup: _Lookup | None = None) -> TorchChoice:
    """The torch build, its exact release and the rewritten requirements for ``targets``.

    ``torch``: ``--torch`` (a release ``2.13`` or a version ``2.13.0``), else an exact
    ``torch==X.Y.Z`` among the requirements, else the newest release that fits and
    whose wheels are on the build's index.
    """
    if not targets:
        raise UsageError("--cuda needs a target")
    lookup = lookup or _Lookup(find_links, timeout)
    parsed = _parse_reqs(requirements)
    family = _family_specs(parsed)
    torch_reqs = family.get("torch", [])
    if torch is None:
        torch = _exact_pin(torch_reqs)
    if torch is not None:
        tried = [torch.strip().lstrip("=").strip()]
    else:
        tried = list(reversed(cudaplan.torch_releases()))
    notes: list[str] = []
    first_error: OffpkgError | None = None
    skipped: list[str] = []
    for wanted in tried:
        try:
            plan = plan_targets(targets, cuda, wanted, index_base)
        except CudaBundleError:
            raise
        except (cudaplan.CudaNoFitError, InputError) as exc:
            if len(tried) == 1:
                raise
            first_error = first_error or exc
            continue
        version, why_not, conflict = _pick_torch(plan, wanted, torch_reqs, targets, index_urls, lookup)
        if version is None:
            if len(tried) == 1 and conflict:
                raise UsageError(why_not, hint="drop the local label (or the version) from the torch requirement: the "
                                               "build is chosen with --cuda and the release with --torch")
            if len(tried) == 1:
                raise CudaBundleError(why_not, hint=_no_release_hint(plan, index_urls))
            skipped.append(why_not)
            continue
        if skipped:
            notes.append("newer torch releases were skipped: " + _few(skipped))
        pins = _pins(plan, version, family, targets, index_urls, lookup)
        return TorchChoice(plan=plan, version=str(version),
                           pins=pins, requirements=_rewrite(parsed, pins, plan, version), notes=tuple(notes))
    if skipped:
        raise CudaBundleError("no torch release fits: " + _few(skipped),
                              hint="check the index (--torch-index / OFFPKG_TORCH_INDEX), or choose --torch X.Y")
    if first_error is not None:
        # The planner's own message for "no release at all" is the clearest: name what would fit.
        plan_targets(targets, cuda, None, index_base)
        raise first_error
    raise CudaBundleError("no torch release fits the targets")  # pragma: no cover - tried is never empty


def _few(reasons: list[str], n: int = 3) -> str:
    return "; ".join(reasons[:n]) + (f"; and {len(reasons) - n} older releases likewise" if len(reasons) > n else "")


def _no_release_hint(plan: cudaplan.CudaPlan, index_urls: tuple[str, ...]) -> str:
    if plan.from_pypi:
        return ("PyPI's default build is taken from the package index (" + ", ".join(redact_url(u) for u in index_urls)
                + "); check it carries torch, or choose another release with --torch X.Y")
    return (f"check that {redact_url(plan.index_url)} mirrors the PyTorch index (--torch-index / OFFPKG_TORCH_INDEX), "
            "or choose another release with --torch X.Y")


def _pick_torch(plan: cudaplan.CudaPlan, wanted: str, torch_reqs: list[Requirement], targets: list[Target],
                index_urls: tuple[str, ...], lookup: _Lookup) -> tuple[Version | None, str, bool]:
    """The newest torch of the plan's release on its index that fits every target and the requirements."""
    label = None if plan.from_pypi else plan.variant
    urls = _source_urls(plan, index_urls)
    try:
        files = lookup.files(urls, "torch")
    except NetworkError as exc:
        raise NetworkError(f"cannot look up torch for the {plan.variant} build: {exc.message}", hint=exc.hint) from None
    if plan.from_pypi:
        _refuse_labelled_twin(files, plan, wanted)
    found = releases(files, "torch", label, targets)
    series = plan.torch_series
    exact = None if _is_series(wanted) else Version(wanted)
    where = ", ".join(redact_url(u) for u in urls)
    build = f"torch {series} {plan.variant}" + (" (PyPI's default build, no local label)" if plan.from_pypi
                                               else f" (+{plan.variant})")
    cands = sorted((v for v in found if ".".join(map(str, v.release[:2])) == series), reverse=True)
    if exact is not None:
        cands = [v for v in cands if v == exact]
    elif not any(s.operator in ("==", "===") for r in torch_reqs for s in r.specifier):
        cands = [v for v in cands if not v.is_prerelease] or cands
    for v in cands:
        full = Version(_labelled(v, label))
        if all(r.specifier.contains(full, prereleases=True) for r in torch_reqs):
            return v, "", False
    if cands:
        specs = ", ".join(str(r) for r in torch_reqs)
        return None, (f"the requirement {specs} conflicts with the torch build chosen for the target: {build}, "
                      f"on {where}: {', '.join(_labelled(v, label) for v in cands[:5])}"), True
    what = f"torch {exact}" if exact else build
    any_series = sorted({v for v in found if ".".join(map(str, v.release[:2])) == series}, reverse=True)
    if exact is not None and any_series:
        return None, f"{what} {plan.variant} is not on {where} (it has {', '.join(map(str, any_series[:5]))})", False
    return None, f"{what}: no wheel for {' and '.join(t.describe() for t in targets)} on {where}", False


def _refuse_labelled_twin(files: list[DistFile], plan: cudaplan.CudaPlan, wanted: str) -> None:
    """PyPI's build is pinned without a label; a labelled twin on another configured index would match that pin."""
    twins = sorted({f.filename for f in files if f.is_wheel and (nv := f.name_version()) and nv[1].local
                    and ".".join(map(str, nv[1].release[:2])) == plan.torch_series})
    if twins:
        raise CudaBundleError(
            f"the indexes given to offpkg carry labelled torch builds ({', '.join(twins[:3])}) next to PyPI's default "
            f"build of torch {plan.torch_series} ({plan.variant}); a plain torch==X pin would match either",
            hint="drop the PyTorch index from --index-url/--extra-index-url: with --cuda, offpkg adds the variant's "
                 "index itself when the build comes from there")


# ------------------------------------------------------------------ torchvision, torchaudio ...

def _requires_torch(metadata: str, torch_full: str) -> bool | None:
    """Whether METADATA's torch requirement admits ``torch_full``; None when it names no torch."""
    seen = False
    for line in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            r = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(r.name) != "torch":
            continue
        if r.marker is not None and "extra" in str(r.marker):
            continue
        seen = True
        if not r.specifier.contains(Version(torch_full), prereleases=True):
            return False
    return True if seen else None


def wheel_metadata(f: DistFile, client: IndexClient, cache: Cache | None = None) -> str:
    """A wheel's METADATA: PEP 658 ``<url>.metadata`` where the index serves it, else from the wheel itself."""
    local = f.local_path
    if local is not None:
        return _zip_metadata(local)
    try:
        r = client.session.get(f.url + ".metadata", timeout=client.timeout)
        if r.status_code == 200 and r.text.lstrip().startswith("Metadata-Version"):
            return r.text
    except Exception:  # noqa: BLE001 - fall back to the wheel itself
        pass
    from ..net.cache import Cache
    from ..net.fetch import Fetcher, FetchPolicy, FetchRequest

    # The wheel goes into the download cache: the bundle fetches it from there afterwards.
    got = Fetcher(cache or Cache(), FetchPolicy(timeout=client.timeout), session=client.session).fetch(FetchRequest(f))
    return _zip_metadata(got.path)


def _zip_metadata(wheel: Path | IO[bytes], name: str | None = None) -> str:
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


def _companion(name: str, reqs: list[Requirement], plan: cudaplan.CudaPlan, torch_version: Version,
               targets: list[Target], index_urls: tuple[str, ...], lookup: _Lookup) -> Version:
    """The release of ``name`` (torchvision, torchaudio ...) of the plan's build that goes with ``torch_version``."""
    label = None if plan.from_pypi else plan.variant
    urls = _source_urls(plan, index_urls)
    found = releases(lookup.files(urls, name), name, label, targets)
    where = ", ".join(redact_url(u) for u in urls)
    torch_full = _labelled(torch_version, label)
    exact = _exact_pin(reqs)
    if exact is not None:
        v = Version(exact)
        if v not in found:
            have = ", ".join(_labelled(x, label) for x in sorted(found, reverse=True)[:5]) or "none"
            raise CudaBundleError(f"{name}=={_labelled(v, label)} is not on {where} for the target(s) (it has {have})",
                                  hint=f"pin a {name} release that goes with torch {torch_full}")
        return v
    cands = [v for v in sorted(found, reverse=True) if not v.is_prerelease
             and all(r.specifier.contains(Version(_labelled(v, label)), prereleases=True) for r in reqs)]
    client = lookup.client(urls)
    for v in cands[:_COMPANION_TRIES]:
        f = sorted(found[v], key=lambda f: targets[0].wheel_rank(f.filename) if _fits(f, targets[0]) else 10**9)[0]
        ok = _requires_torch(wheel_metadata(f, client, lookup.cache), torch_full)
        if ok:
            return v
    raise CudaBundleError(
        f"no {name} release of the {plan.variant} build on {where} requires torch {torch_full}"
        + (f" (tried {', '.join(_labelled(v, label) for v in cands[:_COMPANION_TRIES])})" if cands else ""),
        hint=f"pin {name} yourself, e.g. {name}==X.Y.Z, to the release made for torch {torch_version}")


def _pins(plan: cudaplan.CudaPlan, torch_version: Version, family: dict[str, list[Requirement]],
          targets: list[Target], index_urls: tuple[str, ...], lookup: _Lookup) -> dict[str, str]:
    label = None if plan.from_pypi else plan.variant
    pins = {"torch": _labelled(torch_version, label)}
    for name, reqs in family.items():
        if name == "torch" or name not in LABELLED:
            continue  # triton & co.: torch's own requirement picks the release
        pins[name] = _labelled(_companion(name, reqs, plan, torch_version, targets, index_urls, lookup), label)
    return pins


def _rewrite(parsed: list[tuple[str, Requirement | None]], pins: dict[str, str], plan: cudaplan.CudaPlan,
             torch_version: Version) -> list[str]:
    """The requirements with one ``name[extras]==version+label`` line per pinned project."""
    out: list[str] = []
    merged: dict[str, list[Requirement]] = {}
    for _, req in parsed:
        if req is not None and canonicalize_name(req.name) in pins:
            merged.setdefault(canonicalize_name(req.name), []).append(req)
    done: set[str] = set()
    for text, req in parsed:
        name = canonicalize_name(req.name) if req is not None else None
        if name is None or name not in pins:
            out.append(text)
            continue
        if name in done:
            continue
        done.add(name)
        reqs = merged[name]
        for r in reqs:
            if not r.specifier.contains(Version(pins[name]), prereleases=True):
                raise UsageError(
                    f"the requirement {r} conflicts with the torch build chosen for the target: {name}=={pins[name]} "
                    f"(torch {plan.torch_series} {plan.variant})",
                    hint="drop the local label or the version from the requirement: the build is chosen with --cuda "
                         "and the release with --torch")
        extras = sorted({e for r in reqs for e in r.extras})
        markers = {str(r.marker) for r in reqs if r.marker is not None}
        line = reqs[0].name + (f"[{','.join(extras)}]" if extras else "") + f"=={pins[name]}"
        if len(markers) == 1 and all(r.marker is not None for r in reqs):
            line += f"; {markers.pop()}"
        out.append(line)
    if "torch" not in done:
        # --cuda without torch among the requirements (it may come in as a dependency): pin it anyway,
        # or a dependency would pull an unlabelled torch of whatever build the index has.
        out.append(f"torch=={pins['torch']}")
    return out


# ------------------------------------------------------------------ checking a bundle

def _runtime_packages(manifest: Manifest) -> list[Package]:
    return [p for p in manifest.requirement_packages
            if cudaplan.is_torch_family(p.name) or cudaplan.is_cuda_runtime(p.name)]


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
    from_pypi = bool(rec.get("from_pypi"))
    family = [p for p in manifest.requirement_packages if cudaplan.is_torch_family(p.name)]
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
                if not (cudaplan.is_cuda_runtime(name) or cudaplan.is_torch_family(name)):
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
                if cudaplan.is_cuda_runtime(name):
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
                    out[p.filename] = _zip_metadata(path)
                except InputError:
                    pass
        return out
    return _archive_metadata(bundle, {p.path: p.filename for p in packages})


class _Slice(io.RawIOBase):
    """A read-only, seekable window ``[start, start + size)`` of an open file: a tar member read in place."""

    def __init__(self, f: Any, start: int, size: int) -> None:
        self.f, self.start, self.size, self.pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, min(self.size, base + pos))
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.size - self.pos)
        if n <= 0:
            return 0
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)


def _member_name(ti: tarfile.TarInfo) -> str:
    return ti.name[2:] if ti.name.startswith("./") else ti.name


def _archive_metadata(archive: Path, wanted: dict[str, str]) -> dict[str, str]:
    """{filename: METADATA} of the wanted wheels of a bundle archive.

    A plain tar (or a self-extracting .sh with a tar payload) is read in place; a
    compressed one in one streaming pass, each wanted wheel copied to a temp file.
    """
    from ..archive import detect_format, payload_offset

    out: dict[str, str] = {}
    offset = payload_offset(archive) if archive.name.endswith(".sh") else 0
    fmt = detect_format(archive, offset=offset)
    if fmt not in ("tar", "tar.zst", "tar.gz"):
        return out
    try:
        with open(archive, "rb") as raw:
            if fmt == "tar":
                window = _Slice(raw, offset, archive.stat().st_size - offset)
                with tarfile.open(fileobj=window, mode="r:") as tf:  # type: ignore[call-overload]
                    for ti in tf:
                        name = _member_name(ti)
                        if name in wanted and ti.isfile():
                            member = io.BufferedReader(_Slice(raw, offset + ti.offset_data, ti.size))
                            with contextlib.suppress(InputError):
                                out[wanted[name]] = _zip_metadata(member, name)
                return out
            raw.seek(offset)
            stream: Any = raw
            if fmt == "tar.zst":
                import zstandard

                stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
            with tempfile.TemporaryDirectory(prefix="offpkg-meta-") as tmp, \
                    tarfile.open(fileobj=stream, mode="r|gz" if fmt == "tar.gz" else "r|") as tf:
                for ti in tf:
                    name = _member_name(ti)
                    if name not in wanted or not ti.isfile():
                        continue
                    src = tf.extractfile(ti)
                    if src is None:
                        continue
                    dest = Path(tmp) / "wheel.whl"
                    with open(dest, "wb") as fh:
                        shutil.copyfileobj(src, fh, 1 << 20)
                    with contextlib.suppress(InputError):
                        out[wanted[name]] = _zip_metadata(dest)
                    dest.unlink()
    except (tarfile.TarError, OSError, EOFError):
        pass  # a broken archive is verify's own finding; unread wheels are reported as unreadable
    return out
