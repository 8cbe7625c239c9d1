from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ...errors import InputError
from ...manifest import MANIFEST_NAME, Manifest
from ..options import json_option, trust_option


def _t(value: object, limit: int = 300) -> str:
    """Text from the bundle, safe for a terminal: control and format characters (escape sequences,
    bidi overrides) shown escaped, long values shortened."""
    import unicodedata

    s = str(value)
    if len(s) > limit:
        s = s[:limit] + "..."
    out = "".join(c if c == " " or unicodedata.category(c)[0] not in "CZ" else
                  c.encode("unicode_escape").decode("ascii") for c in s)
    return out


@click.command("inspect")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--top", default=10, show_default=True, help="How many of the largest files to list.")
@trust_option
@json_option
def inspect_(bundle: str, top: int, trust: str | None, as_json: bool) -> None:
    """Show a bundle's target, packages, size, largest files and requirements.

    Everything shown comes from the bundle's manifest: the builder's claims. The
    smoke-test record counts as verified only when a key from the trust anchor
    (--trust, OFFPKG_TRUST or the `trust` config key) signed the manifest.
    """
    ui.state.json = as_json
    from ...trust import check_trust, resolve_anchor
    from ._common import settings

    from ...trust.check import read_signed_parts

    if not Path(bundle).exists():
        raise InputError(f"{bundle} does not exist")
    # One read: what is shown is exactly what the signatures were checked over.
    parts = read_signed_parts(Path(bundle))
    m = Manifest.loads(parts[0], f"{bundle}:{MANIFEST_NAME}")
    tr = check_trust(Path(bundle), resolve_anchor(trust, settings()), parts=parts)
    entries = sorted(m.all_entries().items(), key=lambda kv: -kv[1][1])
    payload = {
        "ok": True, "bundle": bundle, "created": m.created, "offpkg_version": m.offpkg_version,
        "targets": [{"python": t.get("python"), "platforms": (t.get("platforms") or [])[:1], "os": t.get("os"),
                     "arch": t.get("arch"), "gpu": t.get("gpu")} for t in m.targets],
        "requirements": list(m.requirements), "packages": len(m.requirement_packages),
        "tools": [f"{p.name}=={p.version}" for p in m.tool_packages],
        "total_size": m.total_size(),
        "largest": [{"path": p, "size": s} for p, (_, s) in entries[:top]],
        "built_from_sdist": [p.filename for p in m.packages if p.built_from_sdist],
        "cuda": m.cuda, "verification": m.verification, "stack": m.extra.get("stack"),
        "indexes": list(m.indexes),
        # The verification record is the builder's claim unless a trusted key signed the manifest.
        "verification_status": "trusted" if tr.trusted else "claim",
        "trust": tr.to_json(),
    }
    if as_json:
        ui.emit_json("inspect", payload)
        return
    for i, t in enumerate(m.targets):
        py = t.get("python") or {}
        ui.result(f"target {i}: {_t(py.get('implementation'))} {_t(py.get('version'))} ({_t(py.get('abi'))}) "
                  f"{_t(t.get('os'))} {_t(t.get('arch'))} {_t((t.get('platforms') or ['?'])[0])}")
    ui.result(f"created: {_t(m.created)} by offpkg {_t(m.offpkg_version)}")
    ui.result(f"requirements: {', '.join(_t(r) for r in m.requirements)}")
    ui.result(f"packages: {len(m.requirement_packages)} wheels, {ui.human_size(m.total_size())} in all"
              + (f"; tools: {', '.join(_t(x) for x in payload['tools'])}" if payload["tools"] else ""))
    if m.cuda:
        ui.result(f"cuda: {_t(m.cuda.get('variant'))} (torch {_t(m.cuda.get('torch'))}, "
                  f"driver >= {_t(m.cuda.get('min_driver'))})")
    if payload["built_from_sdist"]:
        ui.result("built from sdist: " + ", ".join(_t(x) for x in payload["built_from_sdist"]))
    ui.result(f"signature: {_t(tr.summary())}")
    v = m.verification
    if v and isinstance(v, dict):
        from ...smoke import verified_label

        said = "verified" if tr.trusted else "the builder claims (not signed by a trusted key, so unchecked): verified"
        ui.result(f"{said}: {_t(verified_label(v))} ({_t(v.get('when'))}, "
                  f"{_t(v.get('network_isolation'))})")
        for c in v.get("checks", []) if isinstance(v.get("checks"), list) else []:
            if isinstance(c, dict):
                ui.result(f"  {'pass' if c.get('ok') is True else 'FAIL'}  {_t(c.get('name'))}")
        for t in _dicts(v.get("targets")):  # each target proven with its own python (or not at all)
            how = f"with {t.get('python')} (Python {t.get('python_version')})" if t.get("python") else t.get("reason", "")
            ui.result(f"  target {_t(t.get('target'))} {_t(t.get('id'))}: {_t(t.get('status'))}: {_t(how)}")
    else:
        ui.result("verified: not smoke-tested (bundle --verify or verify --smoke)")
    from rich.markup import escape

    # Table cells are rich markup: escape it too.
    ui.table("largest files", ["size", "path"], [[ui.human_size(s), escape(_t(p))] for p, (_, s) in entries[:top]])
    ui.result(f"review: `offpkg licenses {bundle}`, `offpkg report {bundle} -o report.html` (SBOM: sbom.cdx.json)")


def _dicts(value: object) -> list[dict]:
    """The dict items of a list from the manifest (a hostile bundle may put anything there)."""
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []
