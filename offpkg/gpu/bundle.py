"""`offpkg bundle --cuda auto|cpu|cuXYZ|rocmX.Y`: turn a torch build plan into pinned requirements.

:func:`apply_cuda` runs before resolution. For every target it asks the planner
(:mod:`.plan`, :mod:`.rocm`) for the torch build (the targets must agree on one),
with what PyPI's own wheels say about its default build (:mod:`.pypi`), finds the
exact torch release of that build on the index it comes from (:mod:`.lookup`), and
rewrites the requirements so that a ``+cpu`` / ``+cuXYZ`` mix-up cannot happen:

- a build from the PyTorch index (or a mirror of it): every torch-family requirement
  (torch, torchvision, torchaudio, torchcodec) is pinned *with its local label*
  (``torch==2.6.0+cu126``) and the variant's index is added to the sources;
- PyPI's default build (``from_pypi``): the plain version is pinned and the PyTorch
  index is *not* added.

When the planned variant's index cannot be reached, the PyTorch mirrors of the
catalog are tried, then PyPI's default build if it runs on every target (a warning
names its size and the flags that choose otherwise). An explicit ``--cuda`` or
``--torch-index`` is never overridden. The manifest records the plan.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import InputError, NetworkError, OffpkgError, UsageError
from .check import check_manifest, is_torch_family, manifest_record, read_metadata  # noqa: F401 - re-exported
from .facts import DEFAULT_INDEX_BASE, CudaNoFitError, Observed, torch_releases
from .lookup import CudaBundleError, _exact_pin, _few, _Lookup, _no_release_hint, _pick_torch, _pins
from .plan import CudaPlan, plan_for_target, pypi_build_plan

if TYPE_CHECKING:  # pragma: no cover
    from ..bundle import BundleOptions
    from ..target import Target

__all__ = ["CudaBundleError", "TorchChoice", "apply_cuda", "check_manifest", "choose", "index_base_default",
           "plan_targets", "read_metadata", "record"]


@dataclass(frozen=True)
class TorchChoice:
    """The outcome of :func:`choose`: the plan, the exact torch version and the requirement pins."""

    plan: CudaPlan
    version: str  # public version, e.g. "2.13.0"
    pins: dict[str, str]  # canonical name -> pinned requirement line
    requirements: list[str]  # the rewritten requirement list
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str | None:
        return self.plan.local_label

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
        return DEFAULT_INDEX_BASE


def mirror_bases(first: str) -> list[str]:
    """``first``, then the catalog's (and config's) PyTorch mirrors with a simple-index layout."""
    out = [first.rstrip("/")]
    try:
        from ..config import load
        from ..mirrors.catalog import known_mirrors

        for m in known_mirrors(load()):
            if (m.kind == "pytorch" and m.layout == "pep503" and m.fallback
                    and m.url.rstrip("/") not in out):
                out.append(m.url.rstrip("/"))
    except (ImportError, OffpkgError):
        pass
    return out


def apply_cuda(opts: BundleOptions, cuda: str, torch: str | None, *, index_base: str | None = None,
               explicit: bool | None = None) -> None:
    """Plan the torch build for ``opts.targets`` and pin it into ``opts`` (requirements, sources, cuda record).

    ``explicit``: the build was chosen by the user (``--cuda`` other than auto, or
    ``--torch-index``): it is never replaced by PyPI's build. Default: ``cuda != "auto"``
    or an ``index_base`` given.
    """
    given = index_base or os.environ.get("OFFPKG_TORCH_INDEX", "").strip() or None
    if explicit is None:
        explicit = (cuda or "auto").strip().lower() != "auto" or given is not None
    base = index_base_default(index_base)
    lookup = _Lookup(opts.sources.find_links, opts.fetch_policy.timeout, opts.cache)
    from .pypi import PypiBuilds

    observed = PypiBuilds(lookup.client(tuple(opts.sources.index_urls)), tuple(t.arch for t in opts.targets))
    choice = choose(opts.requirements, opts.targets, cuda, torch, base, index_urls=opts.sources.index_urls,
                    lookup=lookup, observed=observed, bases=[base] if given else mirror_bases(base),
                    fallback=not explicit, custom_index=given is not None)
    if observed.notes:
        choice = replace(choice, notes=tuple(dict.fromkeys((*choice.notes, *observed.notes))))
    opts.requirements = choice.requirements
    if not choice.plan.from_pypi:
        urls = tuple(opts.sources.index_urls)
        if not any(u.rstrip("/") == choice.plan.index_url.rstrip("/") for u in urls):
            opts.sources = replace(opts.sources, index_urls=urls + (choice.plan.index_url,))
    opts.cuda = record(choice)


def record(choice: TorchChoice) -> dict[str, Any]:
    """The manifest's ``cuda`` record: :func:`.check.manifest_record` plus the exact release and the pins."""
    plan = choice.plan
    return manifest_record(plan) | {
        "torch_version": choice.version,  # plan.torch may be a series ("2.13")
        "label": None if choice.label is None else plan.label,
        "pins": dict(choice.pins),
        "reason": plan.reason,
        "notes": list(dict.fromkeys([*plan.notes, *choice.notes])),
    }


# ------------------------------------------------------------------ planning for every target

def plan_targets(targets: list[Target], cuda: str, torch: str | None, index_base: str, *,
                 observed: Observed | None = None, custom_index: bool = False) -> CudaPlan:
    """One plan that serves every target; CudaBundleError when they need different builds."""
    plans = [plan_for_target(t, cuda, torch, index_base, observed=observed, custom_index=custom_index)
             for t in targets]
    return _one_plan(targets, plans)


def _one_plan(targets: list[Target], plans: list[CudaPlan]) -> CudaPlan:
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
    from .facts import parse_driver

    base = min(plans, key=lambda p: parse_driver(p.min_driver) if p.min_driver else (0,))
    return replace(base, from_pypi=all(p.from_pypi for p in plans),
                   uses_minor_version_compat=any(p.uses_minor_version_compat for p in plans),
                   notes=tuple(dict.fromkeys(n for p in plans for n in p.notes)),
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
        if req is not None and is_torch_family(req.name):
            fam.setdefault(canonicalize_name(req.name), []).append(req)
    return fam


def choose(requirements: list[str], targets: list[Target], cuda: str, torch: str | None, index_base: str, *,
           index_urls: tuple[str, ...], find_links: tuple[str, ...] = (), timeout: float = 30.0,
           lookup: _Lookup | None = None, observed: Observed | None = None, bases: list[str] | None = None,
           fallback: bool = False, custom_index: bool = False) -> TorchChoice:
    """The torch build, its exact release and the rewritten requirements for ``targets``.

    ``torch``: ``--torch`` (a release ``2.13`` or a version ``2.13.0``), else an exact
    ``torch==X.Y.Z`` among the requirements, else the newest release that fits and
    whose wheels are on the build's index. ``bases``: PyTorch index bases to try in
    order when one cannot be reached; ``fallback``: then take PyPI's default build
    where it runs on every target.
    """
    if not targets:
        raise UsageError("--cuda needs a target")
    lookup = lookup or _Lookup(find_links, timeout)
    bases = bases or [index_base]
    parsed = _parse_reqs(requirements)
    family = _family_specs(parsed)
    torch_reqs = family.get("torch", [])
    if torch is None:
        torch = _exact_pin(torch_reqs)
    tried = [torch.strip().lstrip("=").strip()] if torch is not None else list(reversed(torch_releases(observed)))
    notes: list[str] = []
    first_error: OffpkgError | None = None
    skipped: list[str] = []
    unreachable: list[str] = []
    dead: set[str] = set()
    for wanted in tried:
        try:
            plan = plan_targets(targets, cuda, wanted, bases[0], observed=observed, custom_index=custom_index)
        except CudaBundleError:
            raise
        except (CudaNoFitError, InputError) as exc:
            if len(tried) == 1:
                raise
            first_error = first_error or exc
            continue
        got = _pick_reachable(plan, wanted, torch_reqs, targets, index_urls, lookup, bases, cuda, observed,
                              custom_index, unreachable, dead)
        if got is None and fallback and not plan.from_pypi:
            got = _pypi_fallback(targets, wanted, torch_reqs, index_urls, lookup, bases[0], observed, unreachable)
        if got is None:
            if unreachable and not fallback:
                raise NetworkError(f"cannot look up torch for the {plan.variant} build: {unreachable[-1]}",
                                   hint="the build was chosen explicitly, so offpkg does not swap it: give a "
                                        "reachable mirror of the PyTorch index with --torch-index URL, or "
                                        "choose another build with --cuda")
            if unreachable:
                raise CudaBundleError(
                    f"cannot look up torch for the {plan.variant} build ({unreachable[-1]}), and PyPI's default "
                    f"build of torch {plan.torch_series} does not run on {' and '.join(t.describe() for t in targets)}",
                    hint="give a reachable mirror of the PyTorch index with --torch-index URL, or choose a build "
                         "that is reachable with --cuda cpu / --cuda cuXYZ (`offpkg cuda plan` shows what fits)")
            continue
        plan, (version, why_not, conflict) = got
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
        return TorchChoice(plan=plan, version=str(version), pins=pins,
                           requirements=_rewrite(parsed, pins, plan, version), notes=tuple(notes))
    if skipped:
        raise CudaBundleError("no torch release fits: " + _few(skipped),
                              hint="check the index (--torch-index / OFFPKG_TORCH_INDEX), or choose --torch X.Y")
    if first_error is not None:
        # The planner's own message for "no release at all" is the clearest: name what would fit.
        plan_targets(targets, cuda, None, bases[0], observed=observed, custom_index=custom_index)
        raise first_error
    raise CudaBundleError("no torch release fits the targets")  # pragma: no cover - tried is never empty


def _pick_reachable(plan: CudaPlan, wanted: str, torch_reqs: list[Requirement], targets: list[Target],
                    index_urls: tuple[str, ...], lookup: _Lookup, bases: list[str], cuda: str,
                    observed: Observed | None, custom_index: bool, unreachable: list[str], dead: set[str]
                    ) -> tuple[CudaPlan, tuple[Version | None, str, bool]] | None:
    """The plan's torch on the first reachable index base (the plan re-made for that base); None if none answers."""
    for i, base in enumerate(bases):
        p = plan if i == 0 else plan_targets(targets, cuda, wanted, base, observed=observed,
                                             custom_index=custom_index)
        if not p.from_pypi and p.index_url in dead:
            continue  # found unreachable for an earlier release in this run
        try:
            return p, _pick_torch(p, wanted, torch_reqs, targets, index_urls, lookup)
        except NetworkError as exc:
            if p.from_pypi:
                raise  # the user's own index: nothing to swap
            dead.add(p.index_url)
            unreachable.append(exc.message)
    return None


def _pypi_fallback(targets: list[Target], wanted: str, torch_reqs: list[Requirement], index_urls: tuple[str, ...],
                   lookup: _Lookup, base: str, observed: Observed | None, unreachable: list[str]
                   ) -> tuple[CudaPlan, tuple[Version | None, str, bool]] | None:
    """PyPI's default build when it runs on every target; None when it does not."""
    why = f"the PyTorch index could not be reached ({unreachable[-1]})" if unreachable else ""
    plans = [pypi_build_plan(t, wanted, base, observed=observed, why=why) for t in targets]
    if any(p is None for p in plans):
        return None
    plan = _one_plan(targets, plans)  # type: ignore[arg-type]
    return plan, _pick_torch(plan, wanted, torch_reqs, targets, index_urls, lookup)


def _rewrite(parsed: list[tuple[str, Requirement | None]], pins: dict[str, str], plan: CudaPlan,
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


