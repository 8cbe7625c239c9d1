"""Limits before work: a bundle archive's manifest is read first, and bounds everything after it.

The manifest says how many files a bundle has and how large each one is, so before
any member's data is hashed or written offpkg knows the whole budget: a member that is
not listed, or declares another size, is refused from its header; the total and the
member count are capped (config keys ``max_bundle_size`` and ``max_bundle_members``);
and the total may not exceed the archive's own size times the ratio rule for
compressed streams. The decompressors enforce the ratio rule on every read too
(offpkg.archive.formats), so even the pass that finds the manifest is bounded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..archive import Expected, detect_format, read_member
from ..archive.rules import _MAX_RATIO, _RATIO_MIN_SIZE
from ..errors import UnsafeArchiveError
from ..manifest import MANIFEST_NAME, SUMS_NAME, Manifest
from .sshsig import SIG_NAME

MAX_MANIFEST = 64 << 20
MAX_SUMS = 16 << 20
MAX_SIG = 1 << 20  # offpkg.json.sig: armored sshsig signatures, a few hundred bytes each
_HINT = ("Nothing was extracted or installed. The bundle is corrupt or was built to exhaust this machine; "
         "obtain it again from a trusted source. Raise max_bundle_size / max_bundle_members (offpkg config) "
         "only for a bundle you trust.")


@dataclass(frozen=True)
class BundleLimits:
    max_members: int
    max_size: int


def bundle_limits() -> BundleLimits:
    """The configured limits (offpkg.toml, user config, OFFPKG_MAX_BUNDLE_* variables)."""
    from ..config import load

    cfg = load()
    return BundleLimits(int(cfg.get("max_bundle_members")), int(cfg.get("max_bundle_size")))


def read_archive_manifest(archive: Path, offset: int, limits: BundleLimits) -> tuple[Manifest, bytes]:
    """The manifest of a bundle archive, read first (the member count capped on the way)."""
    data = read_member(archive, MANIFEST_NAME, MAX_MANIFEST, offset=offset, max_members=limits.max_members,
                       scan_all=False)  # every member is checked by the pass that follows
    return Manifest.loads(data, f"{archive}:{MANIFEST_NAME}"), data


def check_manifest_limits(manifest: Manifest, bundle: Path, limits: BundleLimits) -> int:
    """The manifest's total size, after refusing a file count or total over the limits."""
    entries = manifest.all_entries()
    total = sum(size for _, size in entries.values())
    if len(entries) + 2 > limits.max_members:
        raise UnsafeArchiveError(f"bundle {bundle}: its manifest lists {len(entries)} files, over the limit of "
                                 f"{limits.max_members} (max_bundle_members)", hint=_HINT)
    if total > limits.max_size:
        raise UnsafeArchiveError(f"bundle {bundle}: its manifest lists {total} bytes, over the limit of "
                                 f"{limits.max_size} (max_bundle_size)", hint=_HINT)
    return total


def expectation(archive: Path, offset: int, manifest: Manifest, manifest_size: int,
                limits: BundleLimits) -> Expected:
    """What the archive may hold, after checking the manifest's totals against the limits.

    Raises UnsafeArchiveError when the manifest itself asks for more than the limits allow.
    """
    entries = manifest.all_entries()
    total = check_manifest_limits(manifest, archive, limits)
    fmt = detect_format(archive, offset=offset)
    stored = os.stat(archive).st_size - offset
    if fmt.startswith("tar.") and total > _RATIO_MIN_SIZE and total > _MAX_RATIO * max(stored, 1):
        raise UnsafeArchiveError(f"bundle {archive}: its manifest lists {total} bytes in a {stored}-byte {fmt} "
                                 f"file (more than {_MAX_RATIO}:1; a decompression bomb?)", hint=_HINT)
    return Expected.of({**{p: s for p, (_, s) in entries.items()}, MANIFEST_NAME: manifest_size},
                       at_most={SUMS_NAME: MAX_SUMS, SIG_NAME: MAX_SIG})
