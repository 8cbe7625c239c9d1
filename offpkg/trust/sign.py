"""Add a signature to a bundle: ``offpkg bundle --sign`` and ``offpkg sign``.

The signature file ``offpkg.json.sig`` sits next to ``offpkg.json``. It is not in
the manifest's file list (a manifest cannot list its own signature) nor in
SHA256SUMS, so signing changes no other file and signatures can be added later.
In an archive it is an ordinary member; archives are rewritten with the same
deterministic writer (sorted members, the bundle's own mtime), so a bundle built
with ``--sign KEY`` is byte-identical to the same bundle built unsigned and then
signed with ``offpkg sign`` (for deterministic signature schemes: Ed25519, RSA).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, VerificationError
from ..manifest import MANIFEST_NAME
from .sshsig import SIG_NAME, fsync_write, sign, signature_key, split_signatures


@dataclass
class SignResult:
    bundle: Path
    key: str  # "ED25519 SHA256:..." of the new signature
    added: bool  # False: this key had signed already
    signatures: int

    def to_json(self) -> dict[str, object]:
        return {"bundle": str(self.bundle), "key": self.key, "added": self.added, "signatures": self.signatures}


def sign_dir(root: Path, key: Path) -> SignResult:
    """Append a signature of ``root/offpkg.json`` by ``key`` to ``root/offpkg.json.sig``."""
    from .check import read_signed_parts

    manifest, old = read_signed_parts(root)
    blocks, problems = split_signatures(old) if old else ([], [])
    if problems:
        raise VerificationError(f"{root / SIG_NAME} is damaged; not adding a signature to it", problems,
                                hint=f"remove {SIG_NAME} and sign again")
    new = sign(manifest, key)
    fp = signature_key(new)[0]
    if any(signature_key(b)[0] == fp for b in blocks):
        return SignResult(root, fp, False, len(blocks))
    fsync_write(root / SIG_NAME, b"".join(blocks) + new)
    return SignResult(root, fp, True, len(blocks) + 1)


def sign_bundle(bundle: Path, key: Path) -> SignResult:
    """Sign a bundle directory in place, or rewrite an archive with the signature added.

    The bundle is verified first: a signature says "this is what I built/reviewed",
    so a bundle with problems is never signed.
    """
    bundle = Path(bundle)
    if not bundle.exists():
        raise InputError(f"{bundle} does not exist", hint="give the path of a bundle directory or archive")
    with _signing_lock(bundle):
        return _sign_locked(bundle, key)


@contextlib.contextmanager
def _signing_lock(bundle: Path) -> Iterator[None]:
    """One signer at a time per folder: signing reads, extends and rewrites offpkg.json.sig.

    flock on the folder itself leaves no lock file behind (the bundle's own folder for a
    directory bundle, the archive's folder for an archive, whose file is replaced).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no concurrent signers assumed
        yield
        return
    target = bundle if bundle.is_dir() else bundle.absolute().parent
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sign_locked(bundle: Path, key: Path) -> SignResult:
    from ..verify import verify_bundle

    kind = next((k for k in ("tar.zst", "tar", "sh") if bundle.name.endswith("." + k)), "dir")
    if kind == "dir" and bundle.exists() and not bundle.is_dir():
        raise InputError(f"{bundle}: offpkg signs bundle directories and .tar, .tar.zst and .sh bundles",
                         hint="unpack other archives and sign the directory")
    report = verify_bundle(bundle)
    if not report.ok:
        raise VerificationError(f"{bundle} failed verification; it was not signed", report.problems,
                                hint="sign only a bundle that verifies; copy it again or rebuild it")
    if bundle.is_dir():
        return sign_dir(bundle, key)
    from ..archive import payload_offset, safe_extract, write_tar

    with tempfile.TemporaryDirectory(prefix=f".{bundle.name[:80]}.offpkg-sign-", dir=bundle.parent) as tmp:
        stage = Path(tmp) / "bundle"
        offset = payload_offset(bundle) if kind == "sh" else 0
        safe_extract(bundle, stage, offset=offset)
        # Every member carries the bundle's build time (write_tar): keep it, so signing
        # adds one member and changes nothing else.
        mtime = int(os.stat(stage / MANIFEST_NAME).st_mtime)
        result = sign_dir(stage, key)
        if not result.added:
            return SignResult(bundle, result.key, False, result.signatures)
        out = Path(tmp) / bundle.name
        if kind == "sh":
            from ..selfextract import write_self_extracting

            write_self_extracting(stage, out, mtime=mtime)
        else:
            write_tar(stage, out, compression="zst" if kind == "tar.zst" else None, mtime=mtime)
        os.replace(out, bundle)
    return SignResult(bundle, result.key, True, result.signatures)
