"""Torch index lookups: the exact torch release of a build, and its companions (torchvision, torchaudio ...).

Every page and metadata request goes through the network layer (:mod:`offpkg.net`),
with the index's credentials; a wheel's METADATA comes from PEP 658 or a range read,
never from downloading the wheel.

This module never prints; it returns data and raises offpkg errors.
"""

from __future__ import annotations

import re
from email.parser import HeaderParser
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import NetworkError, TargetMismatchError
from ..redact import redact_url
from .check import LABELLED, zip_metadata
from .plan import CudaPlan

if TYPE_CHECKING:  # pragma: no cover
    from ..net.cache import Cache
    from ..net.index import DistFile, IndexClient
    from ..target import Target

# How many releases of torchvision/torchaudio to try when matching them to torch by metadata.
_COMPANION_TRIES = 6


class CudaBundleError(TargetMismatchError):
    """The targets of one bundle need different torch builds, or the build is not on its index."""


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


def _source_urls(plan: CudaPlan, index_urls: tuple[str, ...]) -> tuple[str, ...]:
    """Where the torch-family wheels of ``plan`` are looked up: the variant index, or the user's indexes for PyPI's build."""
    return tuple(index_urls) if plan.from_pypi else (plan.index_url,)


def _no_release_hint(plan: CudaPlan, index_urls: tuple[str, ...]) -> str:
    if plan.from_pypi:
        return ("PyPI's default build is taken from the package index (" + ", ".join(redact_url(u) for u in index_urls)
                + "); check it carries torch, or choose another release with --torch X.Y")
    return (f"check that {redact_url(plan.index_url)} mirrors the PyTorch index (--torch-index / OFFPKG_TORCH_INDEX), "
            "or choose another release with --torch X.Y")


def _pick_torch(plan: CudaPlan, wanted: str, torch_reqs: list[Requirement], targets: list[Target],
                index_urls: tuple[str, ...], lookup: _Lookup) -> tuple[Version | None, str, bool]:
    """The newest torch of the plan's release on its index that fits every target and the requirements."""
    label = plan.local_label
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


def _refuse_labelled_twin(files: list[DistFile], plan: CudaPlan, wanted: str) -> None:
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


def wheel_metadata(f: DistFile, client: IndexClient) -> str:
    """A wheel's METADATA: PEP 658 ``<url>.metadata`` where the index serves it, else a range read into the wheel.

    Through the network layer with the index's credentials; never the whole wheel.
    """
    local = f.local_path
    if local is not None:
        return zip_metadata(local)
    from ..net.ranged import fetch_metadata

    return fetch_metadata(f.url, client.session, timeout=client.timeout, size=f.size)


def _companion(name: str, reqs: list[Requirement], plan: CudaPlan, torch_version: Version,
               targets: list[Target], index_urls: tuple[str, ...], lookup: _Lookup) -> Version:
    """The release of ``name`` (torchvision, torchaudio ...) of the plan's build that goes with ``torch_version``."""
    label = plan.local_label
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
        ok = _requires_torch(wheel_metadata(f, client), torch_full)
        if ok or ok is None:  # None: it names no torch (torchcodec): the newest of the build goes
            return v
    raise CudaBundleError(
        f"no {name} release of the {plan.variant} build on {where} requires torch {torch_full}"
        + (f" (tried {', '.join(_labelled(v, label) for v in cands[:_COMPANION_TRIES])})" if cands else ""),
        hint=f"pin {name} yourself, e.g. {name}==X.Y.Z, to the release made for torch {torch_version}")


def _pins(plan: CudaPlan, torch_version: Version, family: dict[str, list[Requirement]],
          targets: list[Target], index_urls: tuple[str, ...], lookup: _Lookup) -> dict[str, str]:
    label = plan.local_label
    pins = {"torch": _labelled(torch_version, label)}
    for name, reqs in family.items():
        if name == "torch" or name not in LABELLED:
            continue  # triton & co.: torch's own requirement picks the release
        pins[name] = _labelled(_companion(name, reqs, plan, torch_version, targets, index_urls, lookup), label)
    return pins




def _few(reasons: list[str], n: int = 3) -> str:
    return "; ".join(reasons[:n]) + (f"; and {len(reasons) - n} older releases likewise" if len(reasons) > n else "")
