"""The approver's report: one self-contained HTML page about a bundle.

No network, no JavaScript, no external file: the styles are inline, the size chart is
inline SVG, and the page opens from a USB stick. Every string that comes from the
bundle (names, versions, licenses, requirements, paths) goes through Jinja2's
autoescaping; numbers are computed here.

What the page claims and on whose word: the integrity check is done now, by this
run (``verify_bundle``); the smoke test and its record are the builder's claim unless
the bundle is signed by a trusted key, and the page says which.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..manifest import Manifest
from .model import BundleView, Item, load, read_manifest

CHART_TOP = 12
TEMPLATE = "report.html.j2"


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


@dataclass
class Signatures:
    """What is known about signatures: ``state`` is unsigned | signed | trusted | invalid."""

    state: str = "unsigned"
    signers: tuple[str, ...] = ()
    detail: str = "the bundle carries no signature; its contents are as the builder says"

    @property
    def trusted(self) -> bool:
        return self.state == "trusted"


def signatures(bundle: Path, trust: Path | None = None, report: Any = None) -> Signatures:
    """The bundle's signatures, checked against the trust anchor ``trust`` (offpkg.trust) when given."""
    try:
        from ..trust import check_trust
    except ImportError:  # a build of offpkg without the trust work: nothing can be checked
        return Signatures(detail="this offpkg cannot check signatures; the contents are as the builder says")
    rep = check_trust(bundle, trust, report)
    if not rep.signatures:
        return Signatures(detail="the bundle carries no signature; its contents are as the builder says"
                          + ("; " + "; ".join(rep.problems) if rep.problems else ""))
    who = tuple(f"{s.principal} ({s.key})" if s.principal else s.key for s in rep.signatures)
    said = "; ".join(s.describe() for s in rep.signatures)
    if rep.trusted:
        return Signatures("trusted", who, said)
    if any(s.status == "invalid" for s in rep.signatures):
        return Signatures("invalid", who, "; ".join(rep.problems) or said)
    return Signatures("signed", who, said + ("" if trust else "; give --trust ALLOWED_SIGNERS to check who signed"))


def chart(items: list[Item], total: int, top: int = CHART_TOP) -> dict[str, Any]:
    """Geometry of a horizontal bar chart of the largest files (the rest as one bar)."""
    sized = sorted((i for i in items if i.size > 0), key=lambda i: (-i.size, i.name))
    bars = [(f"{i.name} {i.version}", i.size, i.role) for i in sized[:top]]
    rest = sum(i.size for i in sized[top:])
    others = total - sum(i.size for i in sized)
    if rest:
        bars.append((f"{len(sized) - top} other packages", rest, "rest"))
    if others > 0:
        has_conda = any(i.role == "conda" for i in items)
        bars.append(("conda environment, scripts, lock, SBOM" if has_conda else "scripts, lock, SBOM, notices",
                     others, "rest"))
    biggest = max((b[1] for b in bars), default=1) or 1
    row, label_w, bar_w = 26, 300, 420
    out = []
    for n, (label, size, role) in enumerate(bars):
        w = max(1.0, bar_w * size / biggest)
        out.append({"label": label if len(label) <= 44 else label[:43] + "…", "y": n * row, "w": round(w, 1),
                    "x": label_w, "tx": round(label_w + w + 6, 1), "size": human_size(size),
                    "pct": f"{100 * size / total:.1f}%" if total else "", "role": role})
    return {"bars": out, "height": max(row, len(out) * row), "width": label_w + bar_w + 140, "label_w": label_w}


def _minimal_diff(base: Manifest, new: Manifest) -> dict[str, Any]:
    """Added, removed and changed distributions between two manifests, by name (requirements only)."""
    def index(m: Manifest) -> dict[str, tuple[set[str], int]]:
        out: dict[str, tuple[set[str], int]] = {}
        for p in m.requirement_packages:
            versions, size = out.get(p.name, (set(), 0))
            out[p.name] = (versions | {p.version}, size + p.size)
        return out

    a, b = index(base), index(new)
    rows = []
    for n in sorted(set(a) | set(b)):
        old, new_ = a.get(n), b.get(n)
        if old and new_ and old[0] == new_[0]:
            continue
        kind = "added" if old is None else ("removed" if new_ is None else "changed")
        rows.append({"kind": kind, "name": n, "old": ", ".join(sorted(old[0])) if old else "",
                     "new": ", ".join(sorted(new_[0])) if new_ else "",
                     "size_delta": (new_[1] if new_ else 0) - (old[1] if old else 0)})
    return {"rows": rows, "size_delta": new.total_size() - base.total_size(), "notes": [],
            "source": "a minimal diff by distribution name (offpkg.updates is not part of this build)"}


def diff(base: Manifest, new: Manifest, base_label: str = "base", new_label: str = "bundle") -> dict[str, Any]:
    """What changed from ``base`` to ``new``: the updates work's ``diff_manifests`` when it is there."""
    try:
        from ..updates.diff import diff_manifests
    except ImportError:
        return _minimal_diff(base, new)
    d = diff_manifests(base, new, base_label, new_label).to_json()
    rows = [{"kind": c.get("change", ""), "name": c.get("name", ""), "old": c.get("old_version") or "",
             "new": c.get("new_version") or "", "size_delta": c.get("size_change") or 0} for c in d.get("changes", [])]
    notes = list(d.get("notes") or [])
    if d.get("cuda"):
        notes.append(f"GPU build {d['cuda'].get('old')} → {d['cuda'].get('new')}")
    for t in (d.get("targets") or {}).get("added", []):
        notes.append(f"target added: {t}")
    for t in (d.get("targets") or {}).get("removed", []):
        notes.append(f"target removed: {t}")
    total = (d.get("total_size") or {}).get("change")
    return {"rows": rows, "size_delta": total if total is not None else new.total_size() - base.total_size(),
            "notes": notes, "source": "offpkg.updates.diff_manifests"}


def _graph(view: BundleView) -> list[dict[str, Any]]:
    """Per target: each top-level requirement with what it pulled in (and their total size)."""
    refs = view.by_ref()
    out = []
    for tid, roots in view.roots.items():
        rows = []
        for r in roots:
            top = refs.get(r)
            if top is None:
                continue
            pulled = [refs[x] for x in view.closure(r) if x in refs]
            rows.append({"item": top, "pulled": pulled, "total": human_size(top.size + sum(p.size for p in pulled)),
                         "direct": [refs[x] for x in view.edges.get(r, []) if x in refs]})
        out.append({"target": tid, "rows": rows})
    return out


def _s(v: Any, limit: int = 300) -> str:
    """A manifest value as bounded text (the manifest is the builder's word, of any shape)."""
    text = v if isinstance(v, str) else ("" if v is None else str(v))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_s(x, 80)}" for k, x in list(v.items())[:8])
    return _s(v, 600)


def _smoke(v: Any) -> dict[str, Any] | None:
    """The smoke-test record, shaped for the page; a check's own sub-checks (the stack's script) one level down."""
    if not isinstance(v, dict):
        return None
    checks: list[dict[str, Any]] = []
    for c in (v.get("checks") if isinstance(v.get("checks"), list) else [])[:100]:
        if not isinstance(c, dict):
            continue
        inner = c.get("report").get("checks") if isinstance(c.get("report"), dict) else None
        subs = [{"name": _s(sub.get("name"), 120), "ok": sub.get("ok") is True,
                 "detail": _detail(sub.get("detail") or sub.get("output") or "")}
                for sub in (inner if isinstance(inner, list) else [])[:100] if isinstance(sub, dict)]
        checks.append({"name": _s(c.get("name"), 120), "ok": c.get("ok") is True, "subs": subs,
                       "failed": sum(1 for x in subs if not x["ok"]),
                       "detail": _detail(c.get("output") or c.get("detail") or c.get("backend") or "")})
    return {"verified": v.get("verified") is True, "when": _s(v.get("when"), 40),
            "network_isolation": _s(v.get("network_isolation"), 120), "checks": checks}


def _gpu_build(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or not v.get("variant"):
        return {}
    archs = v.get("archs") if isinstance(v.get("archs"), list) else []
    return {"variant": _s(v.get("variant"), 40), "torch": _s(v.get("torch"), 40), "rocm": _s(v.get("rocm"), 40),
            "min_driver": _s(v.get("min_driver"), 40), "archs": [_s(a, 20) for a in archs[:64]],
            "reason": _s(v.get("reason"), 400)}


@functools.lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    # ChainableUndefined: a key the builder's manifest lacks renders as nothing, never a crash.
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = human_size
    return env


def render(view: BundleView, *, bundle: Path, verification: dict[str, Any], sigs: Signatures,
           base: Manifest | None = None, base_name: str = "") -> str:
    """The HTML text of the report."""
    m = view.manifest
    total = m.total_size()
    items = sorted(view.items, key=lambda i: (-i.size, i.name))
    lic = Counter(i.license.expression for i in view.items)
    smoke = _smoke(m.verification)
    targets = []
    for i, t in enumerate(m.targets):
        py = t.get("python") or {}
        gpu = t.get("gpu") or {}
        py = py if isinstance(py, dict) else {}
        gpu = gpu if isinstance(gpu, dict) else {}
        libc = t.get("libc") if isinstance(t.get("libc"), dict) else {}
        plats = t.get("platforms") if isinstance(t.get("platforms"), list) else []
        devices = gpu.get("devices") if isinstance(gpu.get("devices"), list) else []
        targets.append({"n": i, "python": _s(f"{py.get('implementation', '')} {py.get('version', '')} ({py.get('abi', '')})"),
                        "platform": _s(plats[0] if plats else ""), "os": _s(f"{t.get('os', '')} {t.get('arch', '')}"),
                        "libc": _s(" ".join(str(v) for v in libc.values())),
                        "gpu": _s(", ".join(str(d.get("name", "")) for d in devices[:16] if isinstance(d, dict))),
                        "driver": _s(gpu.get("driver_version"), 40)})
    template = (resources.files("offpkg.review") / TEMPLATE).read_text(encoding="utf-8")
    return _env().from_string(template).render(
        name=bundle.name, m=m, total=total, items=items, targets=targets, cuda=_gpu_build(m.cuda),
        rocm=_gpu_build(m.extra.get("rocm")), stack=_s(m.extra.get("stack"), 80) or None, verification=verification, smoke=smoke, sigs=sigs, licenses=lic.most_common(),
        unknown=lic.get("unknown", 0), chart=chart(view.items, total), graph=_graph(view),
        diff=diff(base, m, base_name or "base", bundle.name) if base is not None else None, base_name=base_name, version=__version__,
        source=view.source, manifest_sha=view.manifest_sha256,
        conda={k: _s((m.conda or {}).get(k), 200) for k in ("path", "platform", "packages", "python")} if m.conda else None,
        tools=[i for i in view.items if i.role == "tool"], conda_items=[i for i in view.items if i.role == "conda"])


def build_report(bundle: Path, base: Path | None = None, trust: Path | None = None) -> tuple[str, dict[str, Any]]:
    """(HTML, summary) for ``bundle``: verified now, read, rendered."""
    from ..verify import verify_bundle

    rep = verify_bundle(bundle)
    verification = {"ok": rep.ok, "problems": rep.problems[:50], "more": max(0, len(rep.problems) - 50),
                    "files": rep.files_checked, "bytes": rep.bytes_checked}
    view = load(bundle, strict=rep.ok)  # a damaged wheel is already named among the problems
    sigs = signatures(bundle, trust, rep)
    base_m = read_manifest(base) if base is not None else None
    html = render(view, bundle=bundle, verification=verification, sigs=sigs, base=base_m,
                  base_name=base.name if base else "")
    summary = {"verified": rep.ok, "problems": rep.problems, "signatures": sigs.state, "signers": list(sigs.signers),
               "packages": sum(1 for i in view.items if i.role == "requirement"), "total_size": view.manifest.total_size(),
               "unknown_licenses": sum(1 for i in view.items if not i.license.known), "source": view.source}
    return html, summary
