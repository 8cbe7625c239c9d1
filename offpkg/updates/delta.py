"""Delta bundles: carry only what the base lacks, and still the complete lock.

A base (``--base OLD``) is read from a bundle directory, a bundle archive
(.tar, .tar.zst, .sh), a bare ``offpkg.json``, or the receipt of a venv installed
from a bundle (``offpkg-receipt.json`` or the venv directory holding it). What the
delta needs from it is small: the sha256 of its manifest (the identity a venv's
receipt records) and the entries of its complete state, ``{path: (sha256, size)}``.

The delta is the new bundle, built in full in its staging directory (so the smoke
test of ``--verify`` runs on the complete state), then stripped of every entry the
base holds with the same path and the same bytes. Its manifest lists everything and
says which entries the base provides (:class:`offpkg.manifest.Delta`); SHA256SUMS
covers only what it carries, so ``sha256sum -c`` still works on it.

A delta installs only as an upgrade of a venv whose receipt names its base: the
unchanged packages are already installed there, the delta brings the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError, ManifestError
from ..manifest import DELTA_FORMAT_VERSION, MANIFEST_NAME, Delta, Manifest

RECEIPT = "offpkg-receipt.json"
_MAX_JSON = 64 << 20
BIG_FILE = 1 << 20


@dataclass(frozen=True)
class BaseState:
    """What a delta needs to know about its base."""

    source: str  # where it was read from, for messages
    kind: str  # bundle | archive | manifest | receipt
    manifest_sha256: str
    created: str
    entries: dict[str, tuple[str, int]]  # every entry of its complete state
    manifest: Manifest | None = None  # None for a receipt


def _read_small(path: Path) -> bytes:
    if path.stat().st_size > _MAX_JSON:
        raise InputError(f"{path} is implausibly large ({path.stat().st_size} bytes) for a manifest or receipt")
    return path.read_bytes()


def _from_manifest_bytes(data: bytes, source: str, kind: str) -> BaseState:
    m = Manifest.loads(data, source)
    return BaseState(source, kind, hashlib.sha256(data).hexdigest(), m.created, m.locked_entries(), m)


def _from_receipt(data: bytes, source: str) -> BaseState:
    try:
        r = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(r, dict) or not isinstance(r.get("bundle_manifest_sha256"), str):
        raise InputError(f"{source} is not an offpkg receipt (no bundle_manifest_sha256)")
    locked = r.get("locked")
    if not isinstance(locked, list):
        raise InputError(f"{source} predates delta support: it does not record the sha256 of each installed wheel",
                         hint="use the base bundle (or its offpkg.json) as --base instead of the venv's receipt")
    entries: dict[str, tuple[str, int]] = {}
    for i, e in enumerate(locked):
        if not (isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
                and isinstance(e.get("size"), int)):
            raise InputError(f"{source}: locked[{i}] is malformed")
        entries[e["path"]] = (e["sha256"], e["size"])
    return BaseState(source, "receipt", r["bundle_manifest_sha256"], str(r.get("bundle_created", "")), entries)


def load_base(path: Path) -> BaseState:
    """Read the base of a delta from any of the forms ``--base`` accepts."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--base {path} does not exist",
                         hint="give the previous bundle (directory or archive), its offpkg.json, or a venv's receipt")
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return _from_manifest_bytes(_read_small(path / MANIFEST_NAME), str(path / MANIFEST_NAME), "bundle")
        if (path / RECEIPT).is_file():
            return _from_receipt(_read_small(path / RECEIPT), str(path / RECEIPT))
        raise InputError(f"--base {path} holds neither {MANIFEST_NAME} nor {RECEIPT}",
                         hint="give the previous bundle, its offpkg.json, or a venv installed from it")
    if path.name == RECEIPT:
        return _from_receipt(_read_small(path), str(path))
    if path.suffix == ".json":
        return _from_manifest_bytes(_read_small(path), str(path), "manifest")
    from ..archive import payload_offset, read_member

    offset = payload_offset(path) if path.name.endswith(".sh") else 0
    return _from_manifest_bytes(read_member(path, MANIFEST_NAME, _MAX_JSON, offset=offset),
                                f"{path}:{MANIFEST_NAME}", "archive")


def make_delta(stage: Path, manifest: Manifest, base: BaseState) -> tuple[Manifest, list[str]]:
    """Strip ``stage`` (a complete bundle) of what ``base`` holds; returns the delta's manifest and the removed paths.

    The caller writes the manifest (offpkg.bundle.write_manifest) afterwards.
    """
    # Wheels, and large files such as a packed conda environment; the small files (locks,
    # pip.conf, install.sh, tools/*.py) are always carried: a delta stays readable on its own.
    wheels = {p.path for p in manifest.packages}
    provided = sorted(path for path, (sha, size) in manifest.locked_entries().items()
                      if base.entries.get(path) == (sha, size) and (path in wheels or size >= BIG_FILE))
    for rel in provided:
        (stage / rel).unlink()
    delta = Delta(base_manifest_sha256=base.manifest_sha256, base_created=base.created, provided=tuple(provided))
    try:
        return replace(manifest, delta=delta, format_version=max(manifest.format_version, DELTA_FORMAT_VERSION)), \
            provided
    except ManifestError as exc:  # pragma: no cover - a bug: make_delta only names the manifest's own entries
        raise InputError(f"cannot make the delta: {exc.message}") from None


def delta_info(manifest: Manifest) -> dict[str, Any] | None:
    """The delta facts for reports (verify, inspect): None for a full bundle."""
    if manifest.delta is None:
        return None
    entries = manifest.locked_entries()
    provided = manifest.delta.provided
    return {"base_manifest_sha256": manifest.delta.base_manifest_sha256,
            "base_created": manifest.delta.base_created,
            "carried_files": len(entries) - len(provided), "provided_files": len(provided),
            "carried_bytes": manifest.total_size(),
            "provided_bytes": sum(entries[p][1] for p in provided)}
