"""Is this bundle signed by a key the reader trusts? The trust half of ``verify``.

``verify`` alone proves a bundle is *consistent*: every file matches the
manifest, the locks match the wheels. Anyone who can edit a bundle can also make
it consistent again (a "resealed" bundle), so consistency proves nothing against
an attacker. A signature of ``offpkg.json`` by a key from a trust anchor the
reader chose (an OpenSSH allowed_signers file) ties every file to that key:
the manifest lists each file's sha256, and ``verify`` checks the files against
exactly the manifest bytes whose signature was checked.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..manifest import MANIFEST_NAME, Manifest
from .sshsig import SIG_NAME, Signature, allowed_principals, check, check_anchor

if TYPE_CHECKING:
    from ..verify import VerifyReport

_MAX_MANIFEST = 64 << 20


@dataclass
class TrustReport:
    """What the signatures of a bundle say, checked against ``anchor`` (None: no trust anchor given)."""

    anchor: str | None
    signatures: list[Signature] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    @property
    def trusted(self) -> bool:
        return self.anchor is not None and not self.problems and any(s.status == "trusted" for s in self.signatures)

    @property
    def trusted_by(self) -> list[str]:
        return [s.principal or s.key for s in self.signatures if s.status == "trusted"]

    def to_json(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "signed": self.signed, "trusted": self.trusted,
                "signatures": [s.to_json() for s in self.signatures], "problems": self.problems}

    def summary(self) -> str:
        if not self.signatures:
            return "unsigned" + ("" if self.anchor else " (no trust anchor given)")
        if self.trusted:
            return "signed by " + ", ".join(self.trusted_by) + " (trusted)"
        return "; ".join(s.describe() for s in self.signatures)


def _read_nofollow(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes (None when absent); a symlink or oversized file is an error."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror} (a bundle holds only regular files)") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path} is over the {limit}-byte limit")
    return data


def read_signed_parts(bundle: Path) -> tuple[bytes, bytes | None]:
    """(offpkg.json bytes, offpkg.json.sig bytes or None) of a bundle directory or archive."""
    from .sshsig import MAX_SIG_FILE

    if bundle.is_dir():
        manifest = _read_nofollow(bundle / MANIFEST_NAME, _MAX_MANIFEST)
        if manifest is None:
            raise InputError(f"{bundle} has no {MANIFEST_NAME}")
        return manifest, _read_nofollow(bundle / SIG_NAME, MAX_SIG_FILE)
    from ..archive import payload_offset, read_member

    offset = payload_offset(bundle) if bundle.name.endswith(".sh") else 0
    manifest = read_member(bundle, MANIFEST_NAME, _MAX_MANIFEST, offset=offset)
    try:
        sig = read_member(bundle, SIG_NAME, MAX_SIG_FILE, offset=offset)
    except InputError as exc:
        if "has no member" not in exc.message:
            raise
        sig = None
    return manifest, sig


def check_trust(bundle: Path, anchor: Path | None, report: VerifyReport | None = None,
                parts: tuple[bytes, bytes | None] | None = None) -> TrustReport:
    """Check the bundle's signatures against ``anchor``; with ``anchor``, anything short of one
    trusted signature over the very manifest ``report`` verified is a problem.

    ``parts``: (offpkg.json, offpkg.json.sig) already read by the caller, who then shows
    exactly the manifest bytes whose signatures were checked.
    """
    bundle = Path(bundle)
    if anchor is not None:
        anchor = check_anchor(Path(anchor))
    manifest, sig = parts if parts is not None else read_signed_parts(bundle)
    sigs, problems = check(manifest, sig, anchor)
    result = TrustReport(str(anchor) if anchor else None, sigs, problems)
    if anchor is None:
        return result
    if report is not None:
        # The signature must cover exactly what verify checked the files against.
        digest = hashlib.sha256(manifest).hexdigest()
        if report.manifest_sha256 and digest != report.manifest_sha256:
            problems.append(f"{MANIFEST_NAME} changed while the bundle was being verified")
        elif report.manifest is not None and Manifest.loads(manifest) != report.manifest:
            problems.append(f"{MANIFEST_NAME} changed while the bundle was being verified")
    if not any(s.status == "trusted" for s in sigs):
        who = ", ".join(allowed_principals(anchor)[:5])
        found = "the bundle is unsigned (no offpkg.json.sig)" if sig is None else (
            "; ".join(s.describe() for s in sigs) or "no usable signature")
        problems.append(f"not signed by a trusted key: expected a valid signature of {MANIFEST_NAME} by one of "
                        f"the signers in {anchor} ({who}); found: {found}")
    return result
