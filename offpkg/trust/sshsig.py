"""OpenSSH signatures (sshsig) of ``offpkg.json``, made and checked by ``ssh-keygen -Y``.

Why ``ssh-keygen`` rather than a Python library: the trust anchor is an OpenSSH
``allowed_signers`` file, whose format (quoted principal patterns,
``cert-authority``, ``namespaces=``, ``valid-after``/``valid-before``) only
OpenSSH interprets exactly; install.sh on a host without offpkg checks with the
same program, so both sides accept and refuse the same bundles; and signing with
a key held by ssh-agent, hardware keys (``sk-``) and certificates come for free.
Everything goes through the one subprocess helper, with argv lists and the
signed bytes passed on stdin unchanged.

A bundle's ``offpkg.json.sig`` holds one or more armored signatures, one after
the other, in the order they were made (builder first). Plain
``ssh-keygen -Y verify ... -s offpkg.json.sig`` reads the first one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .._subprocess import run
from ..errors import EnvironmentProblem, InputError

SIG_NAME = "offpkg.json.sig"
NAMESPACE = "offpkg"
# A signature is ~300 bytes armored (RSA-4096 ~1 kB): these bound a hostile file.
MAX_SIG_FILE = 256 << 10
MAX_SIGNATURES = 16
_BLOCK = re.compile(rb"-----BEGIN SSH SIGNATURE-----\r?\n([A-Za-z0-9+/=\r\n]{1,16384}?)-----END SSH SIGNATURE-----\r?\n?")


@dataclass(frozen=True)
class Signature:
    """One signature of offpkg.json and what checking it found."""

    key: str  # "ED25519 SHA256:..." from the signature itself
    status: str  # trusted | unknown-key | invalid | unchecked
    principal: str | None = None  # the allowed_signers principal that matched (trusted only)
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        who = f"{self.principal} ({self.key})" if self.principal else self.key
        return {"trusted": f"signed by {who}: trusted",
                "unknown-key": f"signed by {who}: this key is not in the trust anchor",
                "invalid": f"signature by {who} does not match offpkg.json" + (f" ({self.detail})" if self.detail else ""),
                "unchecked": f"signed by {who} (who that is was not checked: no trust anchor)"}[self.status]


def ssh_keygen() -> str:
    """The ssh-keygen to use; one too old for ``-Y`` (before OpenSSH 8.2) is an error, not a failed check."""
    exe = shutil.which("ssh-keygen")
    if not exe:
        raise EnvironmentProblem("ssh-keygen is not installed: it makes and checks bundle signatures",
                                 hint="install the OpenSSH client (Debian/Ubuntu: apt-get install openssh-client)")
    _check_version(exe)
    return exe


@functools.lru_cache(maxsize=4)
def _check_version(exe: str) -> None:
    probe = run([exe, "-Y", "find-principals", "-s", os.devnull, "-f", os.devnull], check=False, timeout=30,
                what="ssh-keygen -Y")
    if "usage: ssh-keygen" in probe.stderr or "illegal option" in probe.stderr:
        raise EnvironmentProblem(f"{exe} is too old for SSH signatures (it has no -Y; OpenSSH 8.2 or newer is needed)",
                                 hint="check the bundle on a host with a newer OpenSSH and compare the sha256 that "
                                      "`offpkg verify` prints (docs/trust.md)")


def split_signatures(data: bytes) -> tuple[list[bytes], list[str]]:
    """The armored signature blocks of an offpkg.json.sig, and what is wrong with the file."""
    if len(data) > MAX_SIG_FILE:
        return [], [f"{SIG_NAME}: {len(data)} bytes, over the {MAX_SIG_FILE}-byte limit for signatures"]
    blocks: list[bytes] = []
    problems: list[str] = []
    pos = 0
    for m in _BLOCK.finditer(data):
        if data[pos:m.start()].strip():
            problems.append(f"{SIG_NAME}: holds text that is not an SSH signature")
        blocks.append(m.group(0))
        pos = m.end()
    if data[pos:].strip():
        problems.append(f"{SIG_NAME}: holds text that is not an SSH signature")
    if not blocks:
        problems.append(f"{SIG_NAME}: holds no SSH signature")
    if len(blocks) > MAX_SIGNATURES:
        problems.append(f"{SIG_NAME}: {len(blocks)} signatures, more than the {MAX_SIGNATURES} offpkg checks")
        blocks = blocks[:MAX_SIGNATURES]
    return blocks, problems


def _string(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(buf):
        raise ValueError("truncated")
    (n,) = struct.unpack(">I", buf[pos:pos + 4])
    if pos + 4 + n > len(buf):
        raise ValueError("truncated")
    return buf[pos + 4:pos + 4 + n], pos + 4 + n


def signature_key(block: bytes) -> tuple[str, str]:
    """(key as "TYPE SHA256:fp", namespace) read from an armored sshsig (PROTOCOL.sshsig)."""
    body = b"".join(block.splitlines()[1:-1])
    raw = base64.b64decode(body, validate=False)
    if raw[:6] != b"SSHSIG" or len(raw) < 10:
        raise ValueError("not an sshsig blob")
    key, pos = _string(raw, 10)
    namespace, _ = _string(raw, pos)
    ktype, _ = _string(key, 0)
    fp = base64.b64encode(hashlib.sha256(key).digest()).decode().rstrip("=")
    kname = ktype.decode("ascii", "replace").replace("ssh-", "").replace("ecdsa-sha2-", "ecdsa-").upper()
    return f"{kname[:40]} SHA256:{fp}", namespace.decode("utf-8", "replace")


def key_fingerprint(key: Path) -> str:
    """``ssh-keygen -l`` of a key file (private or public): checks it is a key before a long build."""
    if not Path(key).is_file():
        raise InputError(f"signing key {key} does not exist or is not a file",
                         hint="give an SSH private key, or a public key whose private half ssh-agent holds")
    out = run([ssh_keygen(), "-l", "-f", str(key)], what=f"reading the key {key}", check=False, timeout=30)
    if out.returncode != 0:
        raise InputError(f"{key} is not an SSH key ({out.stderr.strip()[:200]})",
                         hint="make one with: ssh-keygen -t ed25519 -f offpkg-signing-key")
    return out.stdout.strip()


def sign(data: bytes, key: Path) -> bytes:
    """An armored sshsig of ``data`` with namespace ``offpkg``.

    ``key`` is a private key file, or a public key (``.pub``) whose private half is
    held by ssh-agent (then the agent signs and the private key never leaves it).
    """
    key_fingerprint(key)
    out = run([ssh_keygen(), "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE], input=data, check=False)
    if out.returncode != 0 or b"BEGIN SSH SIGNATURE" not in out.stdout.encode():
        hint = ("ssh-agent must hold the private key of this public key (ssh-add KEY; SSH_AUTH_SOCK set)"
                if str(key).endswith(".pub") else "check the key and its passphrase")
        raise InputError(f"signing with {key} failed: {out.stderr.strip()[-300:] or 'no signature written'}", hint=hint)
    text = out.stdout.strip() + "\n"
    return text.encode("ascii")


def allowed_principals(anchor: Path) -> list[str]:
    """The principals an allowed_signers file names (for messages; ssh-keygen does the real parsing)."""
    names: list[str] = []
    for line in anchor.read_text(encoding="utf-8", errors="replace").splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.match(r'"([^"]*)"|(\S+)', s)
        if m:
            names.append(m.group(1) if m.group(1) is not None else m.group(2))
    return names


def check_anchor(anchor: Path) -> Path:
    anchor = Path(anchor)
    if not anchor.is_file():
        raise InputError(f"trust anchor {anchor} does not exist or is not a file",
                         hint="give an OpenSSH allowed_signers file (--trust, OFFPKG_TRUST or the `trust` config key)")
    if not allowed_principals(anchor):
        raise InputError(f"trust anchor {anchor} names no signer",
                         hint='add lines like: builder@example.org ssh-ed25519 AAAA... (see docs/trust.md)')
    return anchor


def check(manifest: bytes, sig_file: bytes | None, anchor: Path | None) -> tuple[list[Signature], list[str]]:
    """Check every signature of ``manifest``; returns them and the file's own problems.

    With ``anchor`` (an allowed_signers file) a signature is ``trusted`` when
    ``ssh-keygen -Y verify`` accepts it for a principal of the anchor. Without one,
    signatures are only read (``unchecked``): a signature is proof only against a key
    the reader chose to trust.
    """
    if sig_file is None:
        return [], []
    blocks, problems = split_signatures(sig_file)
    sigs: list[Signature] = []
    with tempfile.TemporaryDirectory(prefix="offpkg-sig-") as tmp:
        for i, block in enumerate(blocks):
            try:
                key, namespace = signature_key(block)
            except (ValueError, TypeError, binascii.Error):
                problems.append(f"{SIG_NAME}: signature {i + 1} is malformed")
                continue
            if namespace != NAMESPACE:
                sigs.append(Signature(key, "invalid", detail=f"namespace {namespace[:40]!r}, not {NAMESPACE!r}"))
                continue
            path = Path(tmp) / f"sig{i}"
            path.write_bytes(block)
            if anchor is None:
                sigs.append(_check_unanchored(manifest, path, key))
                continue
            sigs.append(_check_one(manifest, path, key, anchor))
    return sigs, problems


def _check_unanchored(manifest: bytes, sig: Path, key: str) -> Signature:
    """Without an anchor: whether the signature matches (said, never required), where ssh-keygen runs."""
    try:
        exe = ssh_keygen()
    except EnvironmentProblem:
        return Signature(key, "unchecked")
    valid = run([exe, "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], input=manifest, check=False,
                timeout=60, what="ssh-keygen -Y check-novalidate").returncode == 0
    return Signature(key, "unchecked") if valid else Signature(
        key, "invalid", detail="offpkg.json was changed after it was signed; no trust anchor given")


def _check_one(manifest: bytes, sig: Path, key: str, anchor: Path) -> Signature:
    exe = ssh_keygen()
    found = run([exe, "-Y", "find-principals", "-s", str(sig), "-f", str(anchor)], check=False, timeout=60,
                what="ssh-keygen -Y find-principals")
    principals = [p.strip() for line in found.stdout.splitlines() for p in line.split(",") if p.strip()]
    for principal in principals if found.returncode == 0 else []:
        out = run([exe, "-Y", "verify", "-f", str(anchor), "-I", principal, "-n", NAMESPACE, "-s", str(sig)],
                  input=manifest, check=False, timeout=60, what="ssh-keygen -Y verify")
        if out.returncode == 0:
            return Signature(key, "trusted", principal)
    valid = run([exe, "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], input=manifest, check=False,
                timeout=60, what="ssh-keygen -Y check-novalidate").returncode == 0
    if not valid:
        return Signature(key, "invalid", principals[0] if principals else None,
                         "offpkg.json was changed after it was signed")
    if principals:
        # The key is listed, the signature is good, yet verify refused: the anchor limits it
        # (namespaces=, valid-after/valid-before, an expired certificate).
        return Signature(key, "unknown-key", principals[0], "the trust anchor does not allow this key here and now")
    return Signature(key, "unknown-key")


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
