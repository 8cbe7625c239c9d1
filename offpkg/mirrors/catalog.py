"""The mirror catalog, the user's own mirrors, and choosing index URLs.

The catalog (``offpkg/data/mirrors.json``) lists PyPI, conda and PyTorch mirrors.
Users add their own in the ``mirrors`` table of offpkg's configuration, or ad hoc
with ``--mirror NAME=URL``. :func:`index_urls` is what downloads use to pick an
index and the mirrors to fall back to. Probing lives in :mod:`.probe`, the
pip.conf/.condarc edits of ``offpkg mirror use`` in :mod:`.use`. Nothing here prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..redact import redact_text, redact_url, register_secret, secrets_in_url

if TYPE_CHECKING:
    from ..config import Config

KINDS = ("pypi", "conda", "pytorch")
OFFICIAL = "official"
OFFICIAL_PYPI = "https://pypi.org/simple"
OFFICIAL_TORCH = "https://download.pytorch.org/whl"


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Mirror:
    name: str
    kind: str
    url: str
    region: str = ""
    notes: str = ""
    checked: bool = False
    # pytorch: "pep503" (<url>/<variant>/ is a simple index), "find-links" or "unknown".
    layout: str = "pep503"
    # False: never tried automatically as a fallback (unreliable or a redirect).
    fallback: bool = True
    default_channels: tuple[str, ...] = ()
    custom_channels: tuple[tuple[str, str], ...] = ()
    origin: str = "catalog"  # catalog | config | command line

    def public(self) -> dict[str, Any]:
        """A JSON-ready, redacted view."""
        d = asdict(self)
        d["url"] = redact_url(self.url)
        d["default_channels"] = [redact_url(u) for u in self.default_channels]
        d["custom_channels"] = {k: redact_url(v) for k, v in self.custom_channels}
        if self.kind != "conda":
            del d["default_channels"], d["custom_channels"]
        if self.kind != "pytorch":
            del d["layout"]
        return d


def _register(url: str) -> None:
    for s in secrets_in_url(url):
        register_secret(s)


@lru_cache(maxsize=1)
def catalog() -> tuple[Mirror, ...]:
    """The mirrors shipped with offpkg, in catalog order (official first per kind)."""
    from importlib.resources import files

    data = json.loads(files("offpkg").joinpath("data/mirrors.json").read_text(encoding="utf-8"))
    out = []
    for e in data["mirrors"]:
        out.append(Mirror(name=e["name"], kind=e["kind"], url=e["url"], region=e.get("region", ""),
                          notes=e.get("notes", ""), checked=bool(e.get("checked", False)),
                          layout=e.get("layout", "pep503"), fallback=bool(e.get("fallback", True)),
                          default_channels=tuple(e.get("default_channels", ())),
                          custom_channels=tuple(e.get("custom_channels", {}).items())))
    return tuple(out)


def _tuna_layout(url: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    base = url.rstrip("/")
    return (tuple(f"{base}/pkgs/{c}" for c in ("main", "r", "msys2")),
            (("conda-forge", f"{base}/cloud"), ("pytorch", f"{base}/cloud")))


def user_mirror(name: str, url: str, kind: str = "pypi", *, origin: str = "config",
                default_channels: Sequence[str] | None = None,
                custom_channels: dict[str, str] | None = None) -> Mirror:
    """A mirror the user defined (config ``mirrors`` table or ``--mirror``)."""
    _register(url)
    dc: tuple[str, ...] = ()
    cc: tuple[tuple[str, str], ...] = ()
    if kind == "conda":
        dc, cc = _tuna_layout(url)
        if default_channels is not None:
            dc = tuple(default_channels)
        if custom_channels is not None:
            cc = tuple(custom_channels.items())
        for u in (*dc, *(v for _, v in cc)):
            _register(u)
    return Mirror(name=name, kind=kind, url=url, region="", notes=f"defined in {origin}", checked=False,
                  default_channels=dc, custom_channels=cc, origin=origin)


def parse_mirror_option(value: str) -> Mirror:
    """``NAME=URL`` (a PyPI mirror) or ``NAME=conda:URL`` / ``NAME=pytorch:URL``."""
    name, sep, url = value.partition("=")
    name = name.strip()
    kind = "pypi"
    m = re.match(r"(pypi|conda|pytorch):(?=\w+://)", url)
    if m:
        kind, url = m.group(1), url[m.end():]
    if not sep or not name or not re.match(r"(https?|file)://\S+$", url):
        raise UsageError(f"--mirror expects NAME=URL (an http(s) URL), got {redact_text(value)!r}",
                         hint="e.g. --mirror corp=https://nexus.example.com/repository/pypi/simple")
    return user_mirror(name, url, kind, origin="command line")


def known_mirrors(config: Config | None = None, extra: Iterable[Mirror] = ()) -> list[Mirror]:
    """Catalog, then the config's ``mirrors`` table, then ``extra``; a later entry
    with the same name and kind replaces an earlier one in place."""
    out: dict[tuple[str, str], Mirror] = {(m.name, m.kind): m for m in catalog()}
    if config is not None:
        for name, entry in (config.get("mirrors") or {}).items():
            m = user_mirror(name, entry["url"], entry.get("kind", "pypi"),
                            origin=config.source("mirrors"),
                            default_channels=entry.get("default_channels"),
                            custom_channels=entry.get("custom_channels"))
            out[(m.name, m.kind)] = m
    for m in extra:
        out[(m.name, m.kind)] = m
    return list(out.values())


def find(mirrors: Sequence[Mirror], name: str, kind: str | None = None) -> list[Mirror]:
    """The mirrors called ``name`` (of ``kind``); UsageError naming the choices if none."""
    found = [m for m in mirrors if m.name == name and (kind is None or m.kind == kind)]
    if not found:
        names = sorted({m.name for m in mirrors if kind is None or m.kind == kind})
        what = f"{kind} mirror" if kind else "mirror"
        raise UsageError(f"unknown {what} {name!r}", hint="known: " + ", ".join(names) +
                         " (see `offpkg mirror list`; add your own with --mirror NAME=URL or in the config)")
    return found


# --------------------------------------------------------------------------- choosing indexes


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def index_urls(config: Config, index_url: str | None = None) -> list[str]:
    """The ranked list of PyPI-style index base URLs a download should try, in order.

    - ``index_url`` given (``--index-url``): ``[index_url]`` alone, no fallback.
    - Else the primary is the config's ``index_url``, else the mirror named by
      ``mirror`` (catalog or the user's ``mirrors`` table), else official PyPI.
    - Fallbacks follow when ``fallback`` is true, or ``auto`` and the primary is a
      catalog mirror (or nothing was configured). A private index (not in the
      catalog) gets no public fallback under ``auto``, so a private package name can
      never be fetched from a public index. Fallbacks are catalog PyPI mirrors
      not marked ``"fallback": false``: ordered by the last ``offpkg mirror test``
      (if under 7 days old; working mirrors first) and then in catalog order,
      official PyPI first.

    URLs are returned with any credentials (the caller must redact before showing).
    Raises UsageError for an unknown ``mirror`` name.
    """
    if index_url:
        return [index_url]
    pypi = [m for m in known_mirrors(config) if m.kind == "pypi"]
    primary: str | None = config.get("index_url")
    public_primary = True
    if primary:
        public_primary = any(_same(primary, m.url) for m in catalog() if m.kind == "pypi")
    elif config.get("mirror"):
        m = find(pypi, config.get("mirror"), "pypi")[0]
        primary, public_primary = m.url, m.origin == "catalog"
    fallback = config.get("fallback")
    use_fallback = fallback is True or (fallback in ("auto", None) and public_primary)
    out: list[str] = [primary] if primary else []
    if not use_fallback:
        return out or [OFFICIAL_PYPI]
    candidates = [m for m in catalog() if m.kind == "pypi" and m.fallback]
    from .probe import load_ranking

    ranking = load_ranking(config.get("cache_dir")) if config.get("cache_dir") else []
    if ranking:
        # Working mirrors in tested order, then failed ones, then untested ones in catalog order.
        urls = {m.name: redact_url(m.url) for m in candidates}
        ranked = [e for e in ranking if e["name"] in urls and _same(str(e.get("url", "")), urls[e["name"]])]
        pos = {e["name"]: i for i, e in enumerate(sorted(ranked, key=lambda e: not e.get("ok")))}
        catalog_pos = {m.name: i for i, m in enumerate(candidates)}
        candidates.sort(key=lambda m: pos.get(m.name, len(pos) + catalog_pos[m.name]))
    for m in candidates:
        if not any(_same(m.url, u) for u in out):
            out.append(m.url)
    return out


def torch_index_base(config: Config) -> str:
    """Base of the PyTorch wheel index; ``<base>/<variant>`` (cpu, cu126, ...) is a PEP 503 index.

    ``torch_index_url`` from the config wins; else a pytorch mirror of the same name as
    the configured ``mirror`` if its layout is a simple index (user-defined pytorch
    mirrors are assumed to be); else https://download.pytorch.org/whl.
    """
    url = config.get("torch_index_url")
    if url:
        return url.rstrip("/")
    name = config.get("mirror")
    if name:
        for m in known_mirrors(config):
            if m.kind == "pytorch" and m.name == name and m.layout == "pep503":
                return m.url.rstrip("/")
    return OFFICIAL_TORCH


def __getattr__(name: str) -> Any:
    """The names of :mod:`.probe` and :mod:`.use` (``ProbeResult``, ``test_mirrors``, ``plan_use``...),
    for callers that import this module as the pre-split ``mirrors``; resolved lazily (no import cycle)."""
    from . import probe, use

    for module in (probe, use):
        if name in getattr(module, "__all__", ()) or (not name.startswith("_") and hasattr(module, name)):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
