"""A bundle as an OCI artifact: push it to a registry, pull it back as a normal bundle.

Layout in the registry (one image manifest, OCI 1.1 ``artifactType``):

- ``config``: the bundle's offpkg.json (``application/vnd.offpkg.manifest.v1+json``);
- one layer per file of the bundle (``application/vnd.offpkg.file.v1``), its path in the
  ``org.opencontainers.image.title`` annotation, its digest the file's sha256 (the one the
  manifest already lists). Signatures (``offpkg.json.sig``) and SHA256SUMS travel as layers.

Registries deduplicate by digest, so a push uploads only the blobs the registry lacks and
pushing the same bundle twice uploads nothing. A pull treats the registry as hostile:
every layer's path must be one the bundle's own manifest lists (with the same digest and
size), every blob is checked against its digest while streaming, and the result is
verified like any bundle before it is renamed into place. Interrupted pulls resume from
their partial files (``OUT.offpkg-pull/``, offpkg's own, with a record of the manifest it
belongs to).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputExistsError, VerificationError
from ..hashing import sha256_file
from ..manifest import MANIFEST_NAME, Manifest
from .oci import MANIFEST_TYPE, Reference, Registry

ARTIFACT_TYPE = "application/vnd.offpkg.bundle.v1"
CONFIG_TYPE = "application/vnd.offpkg.manifest.v1+json"
FILE_TYPE = "application/vnd.offpkg.file.v1"
TITLE = "org.opencontainers.image.title"
MAX_LAYERS = 100_000
# Files a bundle may carry beside those its manifest lists.
_UNLISTED = re.compile(r"(offpkg\.json|SHA256SUMS|offpkg\.json\.sig(\.[A-Za-z0-9_-]+)?)")


@dataclass
class PushResult:
    reference: str
    digest: str
    blobs: int
    uploaded_blobs: int
    uploaded_bytes: int
    total_bytes: int
    manifest_uploaded: bool


@dataclass
class PullResult:
    reference: str
    digest: str
    output: Path
    blobs: int
    downloaded_bytes: int
    resumed: int
    problems: list[str] = field(default_factory=list)


def _bundle_files(bundle: Path) -> list[tuple[str, Path]]:
    out = []
    for p in sorted(bundle.rglob("*")):
        if p.is_symlink():
            raise InputError(f"{p} is a symbolic link; a bundle holds regular files only")
        if p.is_file():
            out.append((p.relative_to(bundle).as_posix(), p))
    return out


def push(bundle: Path, ref: Reference, *, plain_http: bool = False) -> PushResult:
    """Verify ``bundle`` (a directory or an archive), then push it; returns what was uploaded."""
    from ..install import opened_bundle
    from ..verify import verify_bundle

    report = verify_bundle(bundle)
    if not report.ok:
        raise VerificationError(f"{bundle} does not verify; it is not pushed", problems=report.problems)
    reg = Registry(ref, plain_http=plain_http)
    with opened_bundle(bundle) as d:
        m = Manifest.read(d)
        listed = m.all_entries()
        layers: list[dict[str, Any]] = []
        blobs: dict[str, tuple[Path, int]] = {}
        for rel, path in _bundle_files(d):
            if rel in listed:
                sha, size = listed[rel]
            else:
                sha, size = sha256_file(path)
            digest = f"sha256:{sha}"
            blobs.setdefault(digest, (path, size))
            layers.append({"mediaType": FILE_TYPE, "digest": digest, "size": size, "annotations": {TITLE: rel}})
        cfg_path = d / MANIFEST_NAME
        cfg_digest = "sha256:" + sha256_file(cfg_path)[0]
        blobs.setdefault(cfg_digest, (cfg_path, cfg_path.stat().st_size))
        manifest = {
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE, "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": cfg_digest, "size": cfg_path.stat().st_size},
            "layers": layers,
            "annotations": {"org.opencontainers.image.created": m.created, "dev.offpkg.version": m.offpkg_version},
        }
        uploaded = uploaded_bytes = 0
        for digest, (path, size) in blobs.items():
            if reg.has_blob(digest):
                continue
            reg.put_blob(digest, size, path)
            uploaded += 1
            uploaded_bytes += size
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    current = None
    try:
        current = reg.get_manifest(ref.tag)[1]
    except InputError:
        pass  # no manifest at that tag yet
    if current != digest:
        reg.put_manifest(body, ref.tag)
    return PushResult(str(ref), digest, len(blobs), uploaded, uploaded_bytes,
                      sum(s for _, s in blobs.values()), current != digest)


def _safe_title(title: Any) -> str:
    if not isinstance(title, str) or not title or len(title) > 1024 or title.startswith("/") or "\\" in title \
            or any(part in ("", ".", "..") for part in title.split("/")) or "\x00" in title:
        raise VerificationError(f"the artifact names a file with an unsafe path: {title!r}")
    return title


def _plan(manifest: dict, config: Manifest) -> list[tuple[str, str, int]]:
    """(path, digest, size) of every layer, each checked against the bundle's own manifest."""
    layers = manifest.get("layers")
    if manifest.get("artifactType") != ARTIFACT_TYPE or not isinstance(layers, list):
        raise VerificationError("the reference is not an offpkg bundle (no offpkg artifact type or no layers)")
    if len(layers) > MAX_LAYERS:
        raise VerificationError(f"the artifact lists {len(layers)} files; more than {MAX_LAYERS} is refused")
    listed = config.all_entries()
    out: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for layer in layers:
        if not isinstance(layer, dict):
            raise VerificationError("the artifact has a malformed layer")
        title = _safe_title((layer.get("annotations") or {}).get(TITLE))
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest) \
                or not isinstance(size, int) or size < 0:
            raise VerificationError(f"the artifact's layer for {title!r} has no valid digest and size")
        if title in seen:
            raise VerificationError(f"the artifact names {title!r} twice")
        seen.add(title)
        if title in listed:
            if listed[title] != (digest.split(":", 1)[1], size):
                raise VerificationError(f"the artifact's {title} differs from what the bundle's manifest lists")
        elif not _UNLISTED.fullmatch(title):
            raise VerificationError(f"the artifact carries {title!r}, which the bundle's manifest does not list")
        elif size > 64 << 20:
            raise VerificationError(f"the artifact's {title} is larger than such a file can be")
        out.append((title, digest, size))
    missing = set(listed) - seen
    if missing:
        raise VerificationError(f"the artifact lacks {len(missing)} file(s) its manifest lists, e.g. {sorted(missing)[0]}")
    return out


def pull(ref: Reference, output: Path, *, plain_http: bool = False, force: bool = False) -> PullResult:
    """Pull ``ref`` into the bundle directory ``output`` (verified before it is renamed into place)."""
    from filelock import FileLock, Timeout

    from ..verify import verify_bundle

    output = output.absolute()
    if (output.exists() or output.is_symlink()) and not force:
        raise OutputExistsError(f"{output} already exists", hint="choose another output path, or pass --force")
    reg = Registry(ref, plain_http=plain_http)
    manifest, digest = reg.get_manifest(ref.tag)
    cfg = manifest.get("config") or {}
    work = output.with_name(output.name + ".offpkg-pull")
    if work.exists() and (work.is_symlink() or not work.is_dir()
                          or (any(work.iterdir()) and not (work / "state.json").exists())):
        raise OutputExistsError(f"{work} exists and is not a partial pull of offpkg's",
                                hint="move it away; offpkg keeps an interrupted pull there to resume it")
    work.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(str(work / "lock"), timeout=0)
        lock.acquire()
    except Timeout:
        raise InputError(f"another offpkg pull is writing {output}", hint="wait for it to finish") from None
    try:
        state = work / "state.json"
        data = work / "bundle"
        old = _read_state(state)
        if old != digest:
            if data.exists():
                shutil.rmtree(data)  # offpkg's own partial pull of another manifest (state.json says so)
            state.write_text(json.dumps({"manifest": digest, "reference": str(ref)}), encoding="utf-8")
        data.mkdir(exist_ok=True)
        cfg_digest, cfg_size = cfg.get("digest"), cfg.get("size")
        if not isinstance(cfg_digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", cfg_digest) \
                or not isinstance(cfg_size, int) or not 0 < cfg_size <= 64 << 20:
            raise VerificationError(f"{ref} has no valid bundle manifest (config)")
        cfg_file = work / "config.json"
        reg.get_blob(cfg_digest, cfg_file, cfg_size)
        config = Manifest.loads(cfg_file.read_bytes(), source=f"{ref} (config)")
        plan = _plan(manifest, config)
        downloaded = resumed = 0
        for title, blob, size in plan:
            dest = data / title
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            if dest.exists() and dest.stat().st_size == size and "sha256:" + sha256_file(dest)[0] == blob:
                continue
            if part.exists():
                resumed += 1
            downloaded += reg.get_blob(blob, part, size)
            os.replace(part, dest)
        report = verify_bundle(data)
        if not report.ok:
            raise VerificationError(f"the bundle pulled from {ref} does not verify", problems=report.problems)
        if output.exists() and force:
            shutil.rmtree(output) if output.is_dir() and not output.is_symlink() else output.unlink()
        os.replace(data, output)
    finally:
        lock.release()
    shutil.rmtree(work, ignore_errors=True)
    return PullResult(str(ref), digest, output, len(plan), downloaded, resumed)


def _read_state(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("manifest")
    except (OSError, ValueError, AttributeError):
        return None


def pull_to_temp(reference: str, *, plain_http: bool = False) -> tuple[Path, Any]:
    """Pull ``reference`` into a private temporary directory; returns (bundle path, cleanup)."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="offpkg-oci-"))
    try:
        res = pull(Reference.parse(reference), tmp / "bundle", plain_http=plain_http)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res.output, lambda: shutil.rmtree(tmp, ignore_errors=True)
