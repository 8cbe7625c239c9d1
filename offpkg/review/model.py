"""A bundle's review data read back: every carried file with its license, and the dependency graph.

A bundle directory is read from its wheels themselves (their METADATA, as at bundle
time), so an old bundle without an SBOM works too. An archive is not unpacked: its
``sbom.cdx.json`` is read (bounded) and must match the sha256 the manifest lists for it.
Everything read here is untrusted text: callers escape it where they show it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ManifestError
from ..manifest import MANIFEST_NAME, Manifest
from ..target import Target
from .licenses import UNKNOWN, License, WheelFacts, read_wheel
from .sbom import SBOM_NAME, build_sbom

MAX_SBOM = 64 << 20


@dataclass(frozen=True)
class Item:
    """One carried file (a wheel or a conda package) as the report and `licenses` show it."""

    ref: str
    name: str
    version: str
    filename: str
    path: str
    size: int
    role: str  # requirement | tool | conda
    targets: tuple[str, ...]
    license: License

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "filename": self.filename, "path": self.path,
                "size": self.size, "role": self.role, "targets": list(self.targets), **self.license.to_json()}


@dataclass
class BundleView:
    manifest: Manifest
    items: list[Item]
    edges: dict[str, list[str]] = field(default_factory=dict)  # ref -> refs
    roots: dict[str, list[str]] = field(default_factory=dict)  # target id -> refs
    source: str = "wheels"  # wheels | sbom.cdx.json
    sbom_text: str = ""
    manifest_sha256: str = ""

    def by_ref(self) -> dict[str, Item]:
        return {i.ref: i for i in self.items}

    def closure(self, ref: str) -> list[str]:
        seen: list[str] = []
        todo = list(self.edges.get(ref, ()))
        while todo:
            r = todo.pop(0)
            if r != ref and r not in seen:
                seen.append(r)
                todo += self.edges.get(r, ())
        return seen


def read_manifest_bytes(bundle: Path) -> tuple[Manifest, bytes]:
    """The manifest of a bundle directory, archive or self-extracting file, and its exact bytes."""
    bundle = Path(bundle)
    if bundle.is_dir():
        m = Manifest.read(bundle)  # checks presence and size first
        return m, (bundle / MANIFEST_NAME).read_bytes()
    if not bundle.exists():
        raise InputError(f"{bundle} does not exist", hint="give the path of a bundle directory or archive")
    from ..archive import payload_offset, read_member

    offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
    data = read_member(bundle, MANIFEST_NAME, 64 << 20, offset=offset)
    return Manifest.loads(data, f"{bundle}:{MANIFEST_NAME}"), data


def read_manifest(bundle: Path) -> Manifest:
    return read_manifest_bytes(bundle)[0]


def _targets(m: Manifest) -> list[Target]:
    try:
        return [Target.from_probe(t, source=f"target {i}") for i, t in enumerate(m.targets)]
    except InputError as exc:
        raise ManifestError(f"manifest target: {exc.message}") from None


def _wheel_facts(bundle: Path, m: Manifest, strict: bool) -> dict[str, WheelFacts]:
    """Facts of every wheel; ``strict=False`` leaves out a missing or unreadable one (its license
    then shows as unknown) for callers that report the damage themselves (the report verifies first)."""
    facts: dict[str, WheelFacts] = {}
    root = bundle.resolve()
    for p in m.packages:
        path = bundle / p.path
        try:
            if path.is_symlink() or not path.is_file() or root not in path.resolve().parents:
                raise InputError(f"{bundle}: {p.path} is missing or not a regular file inside the bundle",
                                 hint="run `offpkg verify` on it; copy the bundle again")
            if path.stat().st_size != p.size:
                raise InputError(f"{bundle}: {p.path} is {path.stat().st_size} bytes, the manifest says {p.size}",
                                 hint="run `offpkg verify` on it; copy the bundle again")
            facts[p.filename] = read_wheel(path, p.filename)
        except InputError:
            if strict:
                raise
    return facts


def _sbom_from_archive(bundle: Path, m: Manifest) -> str:
    from ..archive import payload_offset, read_member

    entry = next((f for f in m.files if f.path == SBOM_NAME), None)
    if entry is None:
        raise InputError(f"{bundle} carries no {SBOM_NAME} (it was made before offpkg wrote SBOMs)",
                         hint="unpack it (`tar -xf`) and run the command on the directory: the wheels are read then")
    offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
    data = read_member(bundle, SBOM_NAME, MAX_SBOM, offset=offset)
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise InputError(f"{bundle}: {SBOM_NAME} does not match the sha256 in the manifest",
                         hint="the bundle was changed after it was made; run `offpkg verify` on it")
    return data.decode("utf-8", "replace")


def _props(c: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in c.get("properties") or []:
        if isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str):
            out.setdefault(p["name"], []).append(p["value"])
    return out


def _license(c: dict[str, Any], props: dict[str, list[str]]) -> License:
    expr = UNKNOWN
    for lic in c.get("licenses") or []:
        if isinstance(lic, dict) and isinstance(lic.get("expression"), str):
            expr = lic["expression"]
    return License(expr, (props.get("offpkg:license-source") or ["none"])[0],
                   (props.get("offpkg:license-raw") or [""])[0])


def parse_sbom(text: str, m: Manifest) -> tuple[list[Item], dict[str, list[str]], dict[str, list[str]]]:
    """(items, edges, roots) of an offpkg SBOM; sizes come from the manifest (what was hashed)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{SBOM_NAME} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise InputError(f"{SBOM_NAME} is not a CycloneDX document")
    sizes = m.all_entries()
    items: list[Item] = []
    for c in doc.get("components") or []:
        if not isinstance(c, dict) or c.get("type") != "library" or not isinstance(c.get("name"), str):
            continue
        props = _props(c)
        role = (props.get("offpkg:role") or ["requirement"])[0]
        path = (props.get("offpkg:path") or [""])[0]
        ref = str(c.get("bom-ref") or "")
        purl = str(c.get("purl") or "")
        filename = purl.split("file_name=", 1)[1] if "file_name=" in purl else (path.rsplit("/", 1)[-1])
        size = sizes.get(path, ("", 0))[1] if role != "conda" else 0
        items.append(Item(ref=ref, name=c["name"], version=str(c.get("version") or ""), filename=filename,
                          path=path, size=size, role=role, targets=tuple(props.get("offpkg:target") or ()),
                          license=_license(c, props)))
    edges: dict[str, list[str]] = {}
    for d in doc.get("dependencies") or []:
        if isinstance(d, dict) and isinstance(d.get("ref"), str):
            edges[d["ref"]] = [x for x in d.get("dependsOn") or [] if isinstance(x, str)]
    roots = {ref.split(":", 1)[1]: deps for ref, deps in edges.items() if ref.startswith("target:")}
    return items, edges, roots


def load(bundle: Path, *, strict: bool = True) -> BundleView:
    """Review data of a bundle directory (from its wheels) or archive (from its hash-checked SBOM)."""
    bundle = Path(bundle)
    m, raw = read_manifest_bytes(bundle)
    if bundle.is_dir():
        text = build_sbom(targets=_targets(m), packages=list(m.packages), facts=_wheel_facts(bundle, m, strict),
                          requirements=list(m.requirements), created=m.created, bundle_name=bundle.name)
        items, edges, roots = parse_sbom(text, m)
        source = "wheels"
        carried = bundle / SBOM_NAME
        if m.conda and carried.is_file() and not carried.is_symlink() and carried.stat().st_size <= MAX_SBOM:
            # conda packages are inside the packed environment: the SBOM made at bundle time names them
            entry = next((f for f in m.files if f.path == SBOM_NAME), None)
            data = carried.read_bytes()
            if entry is not None and hashlib.sha256(data).hexdigest() == entry.sha256:
                citems, cedges, _ = parse_sbom(data.decode("utf-8", "replace"), m)
                items += [i for i in citems if i.role == "conda"]
                edges.update({k: v for k, v in cedges.items() if k.startswith("pkg:conda/") or k == "conda-env"})
    else:
        text = _sbom_from_archive(bundle, m)
        items, edges, roots = parse_sbom(text, m)
        source = SBOM_NAME
    return BundleView(m, items, edges, roots, source, text, hashlib.sha256(raw).hexdigest())
