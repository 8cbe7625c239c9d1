from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ...errors import InputError
from ...manifest import MANIFEST_NAME, Manifest
from ..options import json_option


def read_manifest(bundle: Path) -> Manifest:
    if bundle.is_dir():
        return Manifest.read(bundle)
    if not bundle.exists():
        raise InputError(f"{bundle} does not exist")
    from ...archive import payload_offset, read_member

    offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
    return Manifest.loads(read_member(bundle, MANIFEST_NAME, 64 << 20, offset=offset), f"{bundle}:{MANIFEST_NAME}")


@click.command("inspect")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--top", default=10, show_default=True, help="How many of the largest files to list.")
@json_option
def inspect_(bundle: str, top: int, as_json: bool) -> None:
    """Show a bundle's target, packages, size, largest files and requirements."""
    ui.state.json = as_json
    m = read_manifest(Path(bundle))
    entries = sorted(m.all_entries().items(), key=lambda kv: -kv[1][1])
    payload = {
        "ok": True, "bundle": bundle, "created": m.created, "offpkg_version": m.offpkg_version,
        "targets": [{"python": t["python"], "platforms": t["platforms"][:1], "os": t["os"], "arch": t["arch"],
                     "gpu": t.get("gpu")} for t in m.targets],
        "requirements": list(m.requirements), "packages": len(m.requirement_packages),
        "tools": [f"{p.name}=={p.version}" for p in m.tool_packages],
        "total_size": m.total_size(),
        "largest": [{"path": p, "size": s} for p, (_, s) in entries[:top]],
        "built_from_sdist": [p.filename for p in m.packages if p.built_from_sdist],
        "cuda": m.cuda, "verification": m.verification, "stack": m.extra.get("stack"),
        "indexes": list(m.indexes),
    }
    if as_json:
        ui.emit_json("inspect", payload)
        return
    for i, t in enumerate(m.targets):
        ui.result(f"target {i}: {t['python']['implementation']} {t['python']['version']} ({t['python']['abi']}) "
                  f"{t['os']} {t['arch']} {t['platforms'][0]}")
    ui.result(f"created: {m.created} by offpkg {m.offpkg_version}")
    ui.result(f"requirements: {', '.join(m.requirements)}")
    ui.result(f"packages: {len(m.requirement_packages)} wheels, {ui.human_size(m.total_size())} in all"
              + (f"; tools: {', '.join(payload['tools'])}" if payload["tools"] else ""))
    if m.cuda:
        ui.result(f"cuda: {m.cuda.get('variant')} (torch {m.cuda.get('torch')}, driver >= {m.cuda.get('min_driver')})")
    if payload["built_from_sdist"]:
        ui.result("built from sdist: " + ", ".join(payload["built_from_sdist"]))
    v = m.verification
    if v:
        ui.result(f"verified: {'yes' if v.get('verified') else 'NO'} ({v.get('when')}, {v.get('network_isolation')})")
        for c in v.get("checks", []):
            ui.result(f"  {'pass' if c['ok'] else 'FAIL'}  {c['name']}")
    else:
        ui.result("verified: not smoke-tested (bundle --verify or verify --smoke)")
    ui.table("largest files", ["size", "path"], [[ui.human_size(s), p] for p, (_, s) in entries[:top]])
    ui.result(f"review: `offpkg licenses {bundle}`, `offpkg report {bundle} -o report.html` (SBOM: sbom.cdx.json)")
