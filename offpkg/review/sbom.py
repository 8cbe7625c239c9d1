"""The bundle's SBOM: CycloneDX 1.6 JSON (``sbom.cdx.json``), built with cyclonedx-python-lib.

Built from the files the bundle carries: one component per file (a wheel, a tool
wheel, a conda package of a packed environment), with a purl
(``pkg:pypi/NAME@VERSION?file_name=FILE``, ``pkg:conda/NAME@VERSION?build=...``), its
sha256, its license and ``offpkg:*`` properties: the bundle path, the role
(requirement or tool), one ``offpkg:target`` per target it serves, where its license
came from. Each target is a ``platform`` component whose dependencies are its
top-level requirements; the edges below them come from the lock (see graph.py).
pip and uv are ``excluded``-scope components with ``offpkg:role=tool``: they install
the bundle and are not part of it. SBOMs that wheels carry (PEP 770,
``.dist-info/sboms/``) are merged as sub-components of their wheel when they are
CycloneDX JSON, and named by a property otherwise.

Deterministic: the timestamp is the manifest's ``created`` and the serial number a
UUID5 of the carried files' digests, so the same bundle gives the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from .. import __version__
from ..manifest import Package
from ..target import Target
from .graph import build_graph
from .licenses import UNKNOWN, License, WheelFacts, _short, _spdx, _tables

SBOM_NAME = "sbom.cdx.json"
MAX_EMBEDDED_COMPONENTS = 2000
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CondaPackage:
    """A conda package of a packed environment (from its conda-meta record)."""

    name: str
    version: str
    build: str
    channel: str
    subdir: str
    fn: str
    sha256: str | None
    md5: str | None
    license: License
    depends: tuple[str, ...]

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> CondaPackage | None:
        name, version = rec.get("name"), rec.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name:
            return None

        def s(key: str) -> str:
            v = rec.get(key)
            return v if isinstance(v, str) else ""

        lic_text = s("license").strip()
        expr = (_spdx(lic_text) or _tables()["names"].get(lic_text.lower())) if lic_text else None
        deps = rec.get("depends")
        return cls(name=name, version=version, build=s("build"), channel=s("channel"), subdir=s("subdir"),
                   fn=s("fn"), sha256=s("sha256") if _HEX64.fullmatch(s("sha256")) else None,
                   md5=s("md5") or None,
                   license=License(expr or UNKNOWN, "conda record" if lic_text else "none", _short(lic_text)),
                   depends=tuple(d for d in deps if isinstance(d, str)) if isinstance(deps, list) else ())


def _channel_name(channel: str) -> str:
    """``https://conda.anaconda.org/conda-forge/linux-64`` -> ``conda-forge`` (credentials never kept)."""
    c = re.sub(r"^[a-z]+://[^/]*/", "", channel.rstrip("/"))
    parts = [p for p in c.split("/") if p and not p.startswith("t/")]
    if parts and re.fullmatch(r"(noarch|(linux|osx|win)-[a-z0-9_]+)", parts[-1]):
        parts = parts[:-1]
    return parts[-1] if parts else ""


def _timestamp(created: str) -> _dt.datetime:
    try:
        return _dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _licenses(lic: License) -> list[Any]:
    from cyclonedx.model.license import LicenseExpression

    return [LicenseExpression(lic.expression)] if lic.known else []


def _props(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    from cyclonedx.model import Property

    return [Property(name=n, value=v) for n, v in pairs if v]


def _embedded_licenses(c: dict[str, Any]) -> list[dict[str, str]]:
    """An embedded component's license, kept only where it is valid SPDX (several are joined with AND)."""
    found: list[str] = []
    for entry in c.get("licenses") if isinstance(c.get("licenses"), list) else []:
        if not isinstance(entry, dict):
            continue
        lic = entry.get("license") if isinstance(entry.get("license"), dict) else {}
        text = entry.get("expression") if isinstance(entry.get("expression"), str) else lic.get("id")
        spdx = _spdx(text) if isinstance(text, str) and len(text) < 500 else None
        if spdx and spdx not in found:
            found.append(spdx)
    joined = _spdx(" AND ".join(f"({f})" if " " in f else f for f in found)) if found else None
    return [{"expression": joined}] if joined else []


def _embedded(facts: WheelFacts, parent_ref: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(sub-components, properties) for the SBOMs a wheel carries (PEP 770).

    The sub-components are plain CycloneDX 1.6 component objects with only the fields
    checked here (type, name, version, purl, SHA-256 hashes, SPDX licenses), added to the
    document after the library serialised it: the library's model sorts and compares
    every component on each insertion, which took tens of seconds for the ~1,000
    components that uv, hf-xet and pydantic-core carry (its own output stays the frame).
    """
    from cyclonedx.model.component import ComponentType
    from packageurl import PackageURL

    comps: list[dict[str, Any]] = []
    props: list[tuple[str, str]] = []
    for path, data in facts.sboms:
        props.append(("offpkg:embedded-sbom", f"{path} sha256:{hashlib.sha256(data).hexdigest()}"))
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            continue
        if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
            continue  # SPDX and others are named above, not merged
        items = [c for c in doc.get("components") or [] if isinstance(c, dict)] if isinstance(
            doc.get("components"), list) else []
        for c in items[: MAX_EMBEDDED_COMPONENTS - len(comps)]:
            name = c.get("name")
            if not isinstance(name, str) or not name.strip():
                continue
            try:
                ctype = ComponentType(c.get("type")).value
            except ValueError:
                ctype = ComponentType.LIBRARY.value
            out: dict[str, Any] = {"bom-ref": f"{parent_ref}#embedded-{len(comps)}"}
            hashes = [{"alg": "SHA-256", "content": h["content"]} for h in c.get("hashes") or []
                      if isinstance(h, dict) and h.get("alg") == "SHA-256" and isinstance(h.get("content"), str)
                      and _HEX64.fullmatch(h["content"])] if isinstance(c.get("hashes"), list) else []
            if hashes:
                out["hashes"] = hashes[:4]
            licenses = _embedded_licenses(c)
            if licenses:
                out["licenses"] = licenses
            out["name"] = name[:200]
            out["properties"] = [{"name": "offpkg:embedded-in", "value": path}]
            if isinstance(c.get("purl"), str) and len(c["purl"]) < 1000:
                try:
                    out["purl"] = PackageURL.from_string(c["purl"]).to_string()
                except ValueError:
                    pass
            out["type"] = ctype
            if isinstance(c.get("version"), str) and c["version"]:
                out["version"] = c["version"][:100]
            comps.append(out)
    return comps, props


def build_sbom(*, targets: list[Target], packages: list[Package], facts: dict[str, WheelFacts],
               requirements: list[str], created: str, bundle_name: str = "offpkg bundle",
               conda: list[CondaPackage] | None = None, conda_path: str | None = None) -> str:
    """The CycloneDX 1.6 JSON text of a bundle (see the module docstring)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom()
    seed = "\n".join(sorted(p.sha256 for p in packages) + sorted(c.fn for c in conda or []))
    bom.serial_number = uuid.uuid5(uuid.NAMESPACE_URL, "offpkg-sbom:" + seed)
    bom.metadata.timestamp = _timestamp(created)
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="offpkg", version=__version__,
                                                bom_ref="offpkg-tool"))
    root = Component(type=ComponentType.APPLICATION, name=bundle_name, bom_ref="bundle",
                     description="an offpkg bundle: wheels (and a packed conda environment) for offline install",
                     properties=_props([("offpkg:requirement", r) for r in requirements]))
    bom.metadata.component = root
    tcomps = []
    for t in targets:
        tc = Component(type=ComponentType.PLATFORM, name=t.id, bom_ref=f"target:{t.id}", description=t.describe(),
                       properties=_props([("offpkg:python", f"{t.implementation} {t.python_version}"),
                                          ("offpkg:platform-tag", t.platforms[0] if t.platforms else "")]))
        bom.components.add(tc)
        tcomps.append(tc)
    by_file: dict[str, Any] = {}
    embedded: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(packages, key=lambda p: p.path):
        f = facts.get(p.filename)
        lic = f.license if f else License(UNKNOWN, "none")
        ref = f"pkg:pypi/{canonicalize_name(p.name)}@{p.version}?file_name={p.filename}"
        subs, extra_props = _embedded(f, ref) if f else ([], [])
        if subs:
            embedded[ref] = subs
        props = [("offpkg:path", p.path), ("offpkg:role", p.role),
                 *[("offpkg:target", targets[i].id) for i in p.targets if i < len(targets)],
                 ("offpkg:license-source", lic.source), ("offpkg:license-raw", lic.raw),
                 ("offpkg:built-from-sdist", "true" if p.built_from_sdist else ""),
                 ("offpkg:license-files", str(len(f.license_files)) if f else ""), *extra_props]
        comp = Component(
            type=ComponentType.LIBRARY, name=canonicalize_name(p.name), version=p.version, bom_ref=ref,
            purl=PackageURL(type="pypi", name=canonicalize_name(p.name), version=p.version,
                            qualifiers={"file_name": p.filename}),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=p.sha256)], licenses=_licenses(lic),
            scope=ComponentScope.EXCLUDED if p.role == "tool" else ComponentScope.REQUIRED,
            description=(f.summary or None) if f else None,
            external_references=[ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(p.url))]
            if p.url else [],
            properties=_props(props))
        bom.components.add(comp)
        by_file[p.filename] = comp
    reqs = [p for p in packages if p.role == "requirement"]
    graph = build_graph(targets, [(p.filename, p.name, p.targets) for p in reqs],
                        {fn: f.requires_dist for fn, f in facts.items()}, requirements)
    for ti, tc in enumerate(tcomps):
        bom.register_dependency(tc, [by_file[f] for f in graph.roots.get(ti, []) if f in by_file])
    for f, deps in graph.edges.items():
        if f in by_file:
            bom.register_dependency(by_file[f], [by_file[d] for d in deps if d in by_file])
    tools = [by_file[p.filename] for p in packages if p.role == "tool"]
    top: list[Any] = [*tcomps, *tools]
    if conda:
        env = Component(type=ComponentType.APPLICATION, name="conda environment", bom_ref="conda-env",
                        properties=_props([("offpkg:path", conda_path or "")]))
        bom.components.add(env)
        top.append(env)
        by_name: dict[str, Any] = {}
        for c in sorted(conda, key=lambda c: (c.name, c.fn)):
            ext = "conda" if c.fn.endswith(".conda") else "tar.bz2"
            q = {k: v for k, v in {"build": c.build, "channel": _channel_name(c.channel), "subdir": c.subdir,
                                   "type": ext}.items() if v}
            purl = PackageURL(type="conda", name=c.name, version=c.version, qualifiers=q)
            hashes = [HashType(alg=HashAlgorithm.SHA_256, content=c.sha256)] if c.sha256 else []
            if c.md5 and re.fullmatch(r"[0-9a-f]{32}", c.md5):
                hashes.append(HashType(alg=HashAlgorithm.MD5, content=c.md5))
            comp = Component(type=ComponentType.LIBRARY, name=c.name, version=c.version, bom_ref=purl.to_string(),
                             purl=purl, hashes=hashes, licenses=_licenses(c.license), scope=ComponentScope.REQUIRED,
                             properties=_props([("offpkg:path", conda_path or ""), ("offpkg:role", "conda"),
                                                ("offpkg:license-source", c.license.source),
                                                ("offpkg:license-raw", c.license.raw),
                                                *[("offpkg:target", t.id) for t in targets]]))
            bom.components.add(comp)
            by_name.setdefault(c.name, comp)
        bom.register_dependency(env, list(by_name.values()))
        for c in conda:
            deps = {d.split()[0] for d in c.depends if d.split()}
            bom.register_dependency(by_name[c.name], [by_name[d] for d in sorted(deps) if d in by_name and d != c.name])
    bom.register_dependency(root, top)
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    if embedded:
        doc = json.loads(text)
        for c in doc.get("components", []):
            if c.get("bom-ref") in embedded:
                c["components"] = embedded[c["bom-ref"]]
        text = json.dumps(doc, indent=2, sort_keys=True)  # the library's output is in sorted order too
    return text + "\n"


def validate_sbom(text: str) -> list[str]:
    """Schema errors of a CycloneDX 1.6 JSON document (empty when it validates); the library's strict validator."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(e) for e in errors or []]
