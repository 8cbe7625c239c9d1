"""Verify a bundle both ways before anything is installed from it.

Checks, and reports every problem found (not just the first):
- the manifest is well-formed and names only paths inside the bundle;
- every listed file is present, a regular file, with the listed size and sha256;
- no file is present that the manifest does not list (wheels/ holds exactly the lock);
- SHA256SUMS agrees with the manifest (and covers the manifest itself);
- requirements.txt and pylock.toml pin exactly the manifest's wheels, with their hashes;
- every wheel fits the tags of the target(s) it is listed for; no sdist is carried.

Works on a bundle directory, and on a bundle archive without extracting it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from ._compat import tomllib
from .errors import InputError, OffpkgError
from .hashing import sha256_file, sha256_many
from .manifest import MANIFEST_NAME, SUMS_NAME, Manifest
from .target import Target
from .trust import SIG_NAME, TrustReport

_MAX_SMALL = 64 << 20


@dataclass
class VerifyReport:
    bundle: Path
    ok: bool
    problems: list[str]
    files_checked: int = 0
    bytes_checked: int = 0
    manifest: Manifest | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    # sha256 of the offpkg.json that was verified, and the digest to record out of band:
    # of the bundle file (archive) or of offpkg.json (directory).
    manifest_sha256: str = ""
    digest: str = ""
    digest_of: str = ""
    trust: TrustReport | None = None

    def to_json(self) -> dict:
        return {"bundle": str(self.bundle), "ok": self.ok, "problems": self.problems,
                "files_checked": self.files_checked, "bytes_checked": self.bytes_checked,
                "seconds": round(self.seconds, 3), "sha256": self.digest, "sha256_of": self.digest_of,
                "trust": self.trust.to_json() if self.trust else None}


def _scan_dir(root: Path, problems: list[str]) -> dict[str, Path]:
    """Every regular file under root by relative POSIX path; anything else is a problem."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        for name in dirnames + filenames:
            p = d / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                problems.append(f"{rel}: is a symbolic link; a bundle holds only regular files")
            elif name in filenames and not p.is_file():
                problems.append(f"{rel}: is not a regular file")
            elif name in filenames:
                found[rel] = p
    return found


def verify_bundle(bundle: Path, *, workers: int | None = None, progress: Callable[[int], None] | None = None,
                  trust: Path | None = None) -> VerifyReport:
    """Verify ``bundle``; with ``trust`` (an allowed_signers file) it must also be signed by a trusted key."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from .trust import check_trust
    from .trust.sshsig import check_anchor

    t0 = time.monotonic()
    bundle = Path(bundle)
    if not bundle.exists():
        raise InputError(f"{bundle} does not exist", hint="give the path of a bundle directory or archive")
    if trust is not None:
        check_anchor(trust)  # a missing anchor is bad input, found before any hashing
    if bundle.is_dir():
        report = _verify_dir(bundle, workers, progress)
        report.digest, report.digest_of = report.manifest_sha256, MANIFEST_NAME
    else:
        # The file's own digest, hashed alongside the members (hashlib releases the GIL).
        with ThreadPoolExecutor(1) as pool:
            whole = pool.submit(sha256_file, bundle)
            report = _verify_archive(bundle, progress)
            report.digest, report.digest_of = whole.result()[0], "bundle file"
    try:
        report.trust = check_trust(bundle, trust, report)
    except InputError as exc:  # e.g. offpkg.json.sig is a symlink: one more problem of this bundle
        report.trust = TrustReport(str(trust) if trust else None, [], [exc.message])
    report.problems += report.trust.problems
    report.seconds = time.monotonic() - t0
    report.ok = not report.problems
    return report


def _verify_dir(bundle: Path, workers: int | None, progress: Callable[[int], None] | None) -> VerifyReport:
    problems: list[str] = []
    manifest = Manifest.read(bundle)
    present = _scan_dir(bundle, problems)
    expected = manifest.all_entries()
    to_hash: list[Path] = []
    for rel, (sha, size) in sorted(expected.items()):
        p = present.get(rel)
        if p is None:
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        actual = p.stat().st_size
        if actual != size:
            problems.append(f"{rel}: size is {actual} bytes, the manifest says {size}")
            continue
        to_hash.append(p)
    hashes = sha256_many(to_hash, workers=workers, progress=progress)
    for p, (digest, _) in hashes.items():
        rel = p.relative_to(bundle).as_posix()
        if digest != expected[rel][0]:
            problems.append(f"{rel}: sha256 is {digest}, the manifest says {expected[rel][0]}")
    for rel in sorted(set(present) - set(expected) - {MANIFEST_NAME, SUMS_NAME, SIG_NAME}):
        problems.append(f"{rel}: present but not listed in the manifest")

    def read(rel: str) -> str | None:
        p = present.get(rel)
        if p is None or p.stat().st_size > _MAX_SMALL:
            return None
        return p.read_text(encoding="utf-8", errors="replace")

    manifest_sha = sha256_file(bundle / MANIFEST_NAME)[0]
    _check_consistency(manifest, read, manifest_sha, problems, bundle)
    return VerifyReport(bundle, False, problems, len(hashes), sum(s for _, s in hashes.values()), manifest,
                        manifest_sha256=manifest_sha)


def _verify_archive(bundle: Path, progress: Callable[[int], None] | None) -> VerifyReport:
    from .archive import hash_members, read_member

    problems: list[str] = []
    offset = 0
    if bundle.name.endswith(".sh"):
        from .archive import payload_offset
        from .selfextract import check_header, check_payload

        # The header's own size/sha256 of the payload: what the target checks before unpacking.
        problems += check_payload(bundle)
        problems += check_header(bundle)
        offset = payload_offset(bundle)
    text = read_member(bundle, MANIFEST_NAME, _MAX_SMALL, offset=offset)
    manifest = Manifest.loads(text, f"{bundle}:{MANIFEST_NAME}")
    members = hash_members(bundle, offset=offset)
    expected = manifest.all_entries()
    for rel, (sha, size) in sorted(expected.items()):
        if rel not in members:
            problems.append(f"{rel}: listed in the manifest but missing")
        elif members[rel][1] != size:
            problems.append(f"{rel}: size is {members[rel][1]} bytes, the manifest says {size}")
        elif members[rel][0] != sha:
            problems.append(f"{rel}: sha256 is {members[rel][0]}, the manifest says {sha}")
    for rel in sorted(set(members) - set(expected) - {MANIFEST_NAME, SUMS_NAME, SIG_NAME}):
        problems.append(f"{rel}: present but not listed in the manifest")

    def read(rel: str) -> str | None:
        if rel not in members or members[rel][1] > _MAX_SMALL:
            return None
        return read_member(bundle, rel, _MAX_SMALL, offset=offset).decode("utf-8", errors="replace")

    manifest_sha = members.get(MANIFEST_NAME, ("", 0))[0]
    _check_consistency(manifest, read, manifest_sha, problems, bundle)
    return VerifyReport(bundle, False, problems, len(members), sum(s for _, s in members.values()), manifest,
                        manifest_sha256=manifest_sha)


_REQ_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*\\?\s*$")


def _parse_requirements_txt(text: str) -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = _REQ_LINE.match(s)
        if m:
            current = canonicalize_name(m.group(1))
            out[current] = (m.group(2), set())
            continue
        h = re.match(r"^--hash=sha256:([0-9a-f]{64})\s*\\?$", s)
        if h and current:
            out[current][1].add(h.group(1))
    return out


def _check_consistency(manifest: Manifest, read: Callable[[str], str | None], manifest_sha: str,
                       problems: list[str], bundle: Path) -> None:
    expected = manifest.all_entries()
    # SHA256SUMS: the same digests, plus the manifest's own.
    sums = read(SUMS_NAME)
    if sums is None:
        problems.append(f"{SUMS_NAME}: missing")
    else:
        listed: dict[str, str] = {}
        for line in sums.splitlines():
            m = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
            if not m:
                problems.append(f"{SUMS_NAME}: malformed line {line[:80]!r}")
                continue
            listed[m.group(2)] = m.group(1)
        want = {p: s for p, (s, _) in expected.items()} | {MANIFEST_NAME: manifest_sha}
        for p in sorted(set(want) | set(listed)):
            if listed.get(p) != want.get(p):
                problems.append(f"{SUMS_NAME}: entry for {p} does not match the bundle")
    # requirements files: exactly the wheels of their target, with their hashes.
    targets = []
    for i, t in enumerate(manifest.targets):
        try:
            targets.append(Target.from_probe(t, source=f"target {i}"))
        except OffpkgError as exc:
            problems.append(f"manifest target {i}: {exc}")
            return
    req_files = [("requirements.txt", 0)]
    if len(targets) > 1:
        req_files += [(f"requirements/{t.id}.txt", i) for i, t in enumerate(targets)]
    for rel, ti in req_files:
        text = read(rel)
        if text is None:
            problems.append(f"{rel}: missing")
            continue
        pinned = _parse_requirements_txt(text)
        wheels = [p for p in manifest.requirement_packages if ti in p.targets]
        want_names = {p.name for p in wheels}
        for name in sorted(set(pinned) - want_names):
            problems.append(f"{rel}: pins {name}, which has no wheel in the bundle")
        for p in wheels:
            got = pinned.get(p.name)
            if got is None:
                problems.append(f"{rel}: does not pin {p.name}")
            elif got[0] != p.version:
                problems.append(f"{rel}: pins {p.name}=={got[0]}, the bundle holds {p.version}")
            elif p.sha256 not in got[1]:
                problems.append(f"{rel}: the hash of {p.filename} is not among {p.name}'s --hash values")
    # pylock.toml: the same wheels.
    text = read("pylock.toml")
    if text is None:
        problems.append("pylock.toml: missing")
    else:
        try:
            from packaging.pylock import Pylock

            lock = Pylock.from_dict(tomllib.loads(text))
            locked = {(w.path, (w.hashes or {}).get("sha256")) for pk in lock.packages for w in (pk.wheels or [])}
            want = {(p.path, p.sha256) for p in manifest.requirement_packages}
            if locked != want:
                problems.append("pylock.toml: its wheels and hashes differ from the manifest's")
        except Exception as exc:  # a malformed lock is a problem to report, not a crash
            problems.append(f"pylock.toml: invalid ({type(exc).__name__}: {str(exc)[:200]})")
    # Tools: only pip and uv, only in tools/ (offpkg never runs them; install.sh does, after these checks).
    from .trust.tools import check_tools

    problems.extend(check_tools(manifest))
    # Wheels fit their targets; the wheel folder holds only locked wheels.
    ranks = [t.tag_rank() for t in targets]
    for p in manifest.packages:
        if p.role == "requirement" and not p.path.startswith("wheels/"):
            problems.append(f"{p.path}: a locked wheel outside wheels/")
        for ti in p.targets:
            if p.role == "requirement" and targets[ti].wheel_rank(p.filename, ranks[ti]) is None:
                problems.append(f"{p.path}: does not fit the tags of target {targets[ti].describe()}")
    for rel in expected:
        if rel.startswith("wheels/") and rel not in {p.path for p in manifest.requirement_packages}:
            problems.append(f"{rel}: in wheels/ but not a locked wheel")
    if manifest.conda is not None:
        path = manifest.conda.get("path")
        if not isinstance(path, str) or path not in expected:
            problems.append(f"conda: the packed environment {path!r} is not a listed file of the bundle")
        if not manifest.conda.get("platform"):
            problems.append("conda: the manifest does not say which platform the environment is for")
    if manifest.cuda is not None:
        from .gpu.bundle import check_manifest

        problems.extend(check_manifest(manifest, bundle))
