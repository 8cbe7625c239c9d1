"""What changes between two states: packages added, removed, upgraded, downgraded; sizes; targets; CUDA.

``diff_manifests(a, b)`` compares two manifests and is what other reports reuse
(the review report shows the same changes). ``diff_paths`` reads either side from a
bundle directory, an archive, an ``offpkg.json``, or a venv's receipt (or the venv),
so a change board can compare "what is installed" with "what is proposed".

Versions are compared with PEP 440 (``packaging.version``); a package whose version
is the same but whose wheel differs (another build, another sha256) is "rebuilt".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import InputError
from ..manifest import MANIFEST_NAME, Manifest
from .delta import RECEIPT, _read_small


@dataclass(frozen=True)
class PackageState:
    name: str
    version: str
    size: int | None  # bytes of its wheel(s); None where the source does not say (an old receipt)
    sha256: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Side:
    """One side of a diff: the requirement packages, targets and CUDA variant of a state."""

    label: str
    packages: dict[str, PackageState]
    targets: tuple[str, ...]
    cuda: str | None
    delta_of: str | None = None  # base manifest sha256 when the side is a delta bundle

    @classmethod
    def from_manifest(cls, m: Manifest, label: str = "") -> Side:
        from ..target import Target

        pkgs: dict[str, PackageState] = {}
        for p in m.requirement_packages:
            old = pkgs.get(p.name)
            if old is None:
                pkgs[p.name] = PackageState(p.name, p.version, p.size, frozenset({p.sha256}))
            else:  # several wheels (targets) of one package: sizes add up, the newest version names it
                version = max(old.version, p.version, key=_vkey)
                pkgs[p.name] = PackageState(p.name, version, (old.size or 0) + p.size, old.sha256 | {p.sha256})
        targets = []
        for i, t in enumerate(m.targets):
            try:
                targets.append(Target.from_probe(t, source=f"target {i}").id)
            except Exception:  # a malformed target still shows, by index
                targets.append(f"target-{i}")
        return cls(label, pkgs, tuple(targets), _variant(m.cuda),
                   m.delta.base_manifest_sha256 if m.delta else None)

    @classmethod
    def from_receipt(cls, r: dict[str, Any], label: str = "") -> Side:
        pkgs: dict[str, PackageState] = {}
        locked = r.get("locked")
        if isinstance(locked, list):
            for e in locked:
                if isinstance(e, dict) and e.get("role", "requirement") == "requirement" and "name" in e:
                    name = canonicalize_name(str(e["name"]))
                    pkgs[name] = PackageState(name, str(e.get("version", "")), e.get("size"),
                                              frozenset({str(e.get("sha256", ""))}))
        else:  # a receipt from before deltas: name==version only
            for spec in r.get("packages") or []:
                name, _, version = str(spec).partition("==")
                pkgs[canonicalize_name(name)] = PackageState(canonicalize_name(name), version, None)
        target = r.get("target_id") or (f"target-{r['target']}" if r.get("target") is not None else "")
        return cls(label, pkgs, (target,) if target else (), _variant(r.get("cuda")))


def _variant(cuda: Any) -> str | None:
    return str(cuda.get("variant")) if isinstance(cuda, dict) and cuda.get("variant") else None


def _vkey(v: str) -> Any:
    try:
        return (1, Version(v), "")
    except InvalidVersion:
        return (0, Version("0"), v)


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # added | removed | upgraded | downgraded | rebuilt
    old_version: str | None
    new_version: str | None
    old_size: int | None
    new_size: int | None

    def to_json(self) -> dict[str, Any]:
        delta = None if self.old_size is None and self.new_size is None else (self.new_size or 0) - (self.old_size or 0)
        return {"name": self.name, "change": self.kind, "old_version": self.old_version,
                "new_version": self.new_version, "old_size": self.old_size, "new_size": self.new_size,
                "size_change": delta}


@dataclass(frozen=True)
class Diff:
    a: str
    b: str
    changes: tuple[Change, ...]
    unchanged: int
    total_a: int | None
    total_b: int | None
    targets_added: tuple[str, ...] = ()
    targets_removed: tuple[str, ...] = ()
    cuda: tuple[str | None, str | None] | None = None  # (old, new) variant when it changed
    notes: tuple[str, ...] = field(default=())

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def empty(self) -> bool:
        return not (self.changes or self.targets_added or self.targets_removed or self.cuda)

    def to_json(self) -> dict[str, Any]:
        counts = {k: len(self.of_kind(k)) for k in ("added", "removed", "upgraded", "downgraded", "rebuilt")}
        return {"a": self.a, "b": self.b, "changes": [c.to_json() for c in self.changes],
                "counts": counts | {"unchanged": self.unchanged},
                "total_size": {"a": self.total_a, "b": self.total_b,
                               "change": None if self.total_a is None or self.total_b is None
                               else self.total_b - self.total_a},
                "targets": {"added": list(self.targets_added), "removed": list(self.targets_removed)},
                "cuda": None if self.cuda is None else {"old": self.cuda[0], "new": self.cuda[1]},
                "notes": list(self.notes)}


def diff_sides(a: Side, b: Side) -> Diff:
    changes: list[Change] = []
    unchanged = 0
    for name in sorted(set(a.packages) | set(b.packages)):
        pa, pb = a.packages.get(name), b.packages.get(name)
        if pa is None and pb is not None:
            changes.append(Change(name, "added", None, pb.version, None, pb.size))
        elif pb is None and pa is not None:
            changes.append(Change(name, "removed", pa.version, None, pa.size, None))
        elif pa is not None and pb is not None:
            ka, kb = _vkey(pa.version), _vkey(pb.version)
            if ka < kb:
                kind = "upgraded"
            elif ka > kb:
                kind = "downgraded"
            elif pa.sha256 and pb.sha256 and pa.sha256 != pb.sha256 and "" not in pa.sha256 | pb.sha256:
                kind = "rebuilt"
            else:
                unchanged += 1
                continue
            changes.append(Change(name, kind, pa.version, pb.version, pa.size, pb.size))
    notes = []
    if a.delta_of or b.delta_of:
        notes.append("a delta bundle lists its complete state; the packages its base provides are compared too")
    total = (lambda s: None if any(p.size is None for p in s.packages.values())
             else sum(p.size or 0 for p in s.packages.values()))
    if total(a) is None or total(b) is None:
        notes.append("a receipt from before offpkg recorded wheel sizes: sizes are unknown on that side")
    return Diff(a.label, b.label, tuple(changes), unchanged, total(a), total(b),
                tuple(t for t in b.targets if t not in a.targets), tuple(t for t in a.targets if t not in b.targets),
                (a.cuda, b.cuda) if a.cuda != b.cuda else None, tuple(notes))


def diff_manifests(a: Manifest, b: Manifest, label_a: str = "a", label_b: str = "b") -> Diff:
    """The changes from manifest ``a`` to manifest ``b`` (reused by the review report)."""
    return diff_sides(Side.from_manifest(a, label_a), Side.from_manifest(b, label_b))


def load_side(path: Path) -> Side:
    """A bundle directory or archive, an offpkg.json, a receipt, or a venv/prefix holding a receipt."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise InputError(f"{path} does not exist",
                         hint="give a bundle (directory or archive), an offpkg.json, a receipt, or a venv")
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return Side.from_manifest(Manifest.loads(_read_small(path / MANIFEST_NAME), str(path)), label)
        if (path / RECEIPT).is_file():
            return _receipt_side(path / RECEIPT, label)
        raise InputError(f"{path} holds neither {MANIFEST_NAME} nor {RECEIPT}",
                         hint="give a bundle, an offpkg.json, a receipt, or a venv installed by offpkg")
    if path.suffix == ".json":
        data = _read_small(path)
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(doc, dict) and "bundle_manifest_sha256" in doc:
            return Side.from_receipt(doc, label)
        return Side.from_manifest(Manifest.from_json(doc), label)
    from ..archive import payload_offset, read_member

    offset = payload_offset(path) if path.name.endswith(".sh") else 0
    return Side.from_manifest(Manifest.loads(read_member(path, MANIFEST_NAME, 64 << 20, offset=offset),
                                             f"{path}:{MANIFEST_NAME}"), label)


def _receipt_side(path: Path, label: str) -> Side:
    try:
        doc = json.loads(_read_small(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path} is not an offpkg receipt")
    return Side.from_receipt(doc, label)


def diff_paths(a: Path, b: Path) -> Diff:
    return diff_sides(load_side(a), load_side(b))
