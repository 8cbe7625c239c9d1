"""Verify a bundle both ways before anything is installed from it.

Checks, and reports every problem found (not just the first):
- the manifest is well-formed and names only paths inside the bundle;
- every listed file is present, a regular file, with the listed size and sha256;
- no file is present that the manifest does not list (wheels/ holds exactly the lock);
- SHA256SUMS agrees with the manifest (and covers the manifest itself);
- requirements.txt and pylock.toml pin exactly the manifest's wheels, with their hashes;
- every wheel fits the tags of the target(s) it is listed for; no sdist is carried.

Works on a bundle directory, and on a bundle archive without extracting it.

A delta bundle (offpkg.updates.delta) is checked on its own: the entries its base
provides are not expected in it, everything it carries is checked as above, its
locks still pin the complete state, and the report says which base it needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


from .errors import InputError, OffpkgError
from .hashing import sha256_file, sha256_many
from .manifest import MANIFEST_NAME, SUMS_NAME, Manifest
from .target import Target
from .trust import SIG_NAME, TrustReport
from .trust.locks import check_layout, check_pip_conf, check_pylock, check_requirements

_MAX_SMALL = 64 << 20
_MAX_PROBLEMS = 200


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
        from .updates.delta import delta_info

        return {"bundle": str(self.bundle), "ok": self.ok, "problems": self.problems,
                "files_checked": self.files_checked, "bytes_checked": self.bytes_checked,
                "seconds": round(self.seconds, 3), "sha256": self.digest, "sha256_of": self.digest_of,
                "trust": self.trust.to_json() if self.trust else None,
                "delta": delta_info(self.manifest) if self.manifest is not None else None}


def _scan_dir(root: Path, problems: list[str]) -> dict[str, str]:
    """Every regular file under root by relative POSIX path; anything else is a problem.

    os.scandir's entry types come with the listing (no stat per file): linear and fast
    even for a directory of 300,000 files.
    """
    found: dict[str, str] = {}
    todo = [(str(root), "")]
    while todo:
        d, prefix = todo.pop()
        with os.scandir(d) as it:
            for e in it:
                rel = prefix + e.name
                if e.is_symlink():
                    problems.append(f"{rel}: is a symbolic link; a bundle holds only regular files")
                elif e.is_dir(follow_symlinks=False):
                    todo.append((e.path, rel + "/"))
                elif e.is_file(follow_symlinks=False):
                    found[rel] = e.path  # a str: no Path object per file
                else:
                    problems.append(f"{rel}: is not a regular file")
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
    if len(report.problems) > _MAX_PROBLEMS:  # a hostile bundle can have 300,000 of them
        more = len(report.problems) - _MAX_PROBLEMS
        report.problems = report.problems[:_MAX_PROBLEMS] + [f"... and {more} more problem(s)"]
    return report


def _verify_dir(bundle: Path, workers: int | None, progress: Callable[[int], None] | None) -> VerifyReport:
    problems: list[str] = []
    manifest = Manifest.read(bundle)
    present = _scan_dir(bundle, problems)
    expected = manifest.all_entries()
    to_hash: list[Path] = []
    for rel, (sha, size) in sorted(expected.items()):
        p = Path(present[rel]) if rel in present else None
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
        p = Path(present[rel]) if rel in present else None
        if p is None or p.stat().st_size > _MAX_SMALL:
            return None
        return p.read_text(encoding="utf-8", errors="replace")

    manifest_sha = sha256_file(bundle / MANIFEST_NAME)[0]
    _check_consistency(manifest, read, manifest_sha, problems, bundle)
    return VerifyReport(bundle, False, problems, len(hashes), sum(s for _, s in hashes.values()), manifest,
                        manifest_sha256=manifest_sha)


def _verify_archive(bundle: Path, progress: Callable[[int], None] | None) -> VerifyReport:
    from .archive import hash_members
    from .errors import UnsafeArchiveError
    from .trust.limits import bundle_limits, expectation, read_archive_manifest

    problems: list[str] = []
    offset = 0
    if bundle.name.endswith(".sh"):
        from .archive import payload_offset
        from .selfextract import check_header, check_payload

        # The header's own size/sha256 of the payload: what the target checks before unpacking.
        problems += check_payload(bundle)
        problems += check_header(bundle)
        offset = payload_offset(bundle)
    # Limits before work: the manifest first; it bounds every member after it.
    limits = bundle_limits()
    manifest, text = read_archive_manifest(bundle, offset, limits)
    small = {SUMS_NAME, "requirements.txt", "pylock.toml", "pip.conf"} | {
        p for p in manifest.all_entries() if p.startswith("requirements/") and p.endswith(".txt")}
    kept: dict[str, bytes] = {}
    try:
        members = hash_members(bundle, offset=offset,
                               expected=expectation(bundle, offset, manifest, len(text), limits),
                               max_members=limits.max_members, max_total_size=limits.max_size,
                               keep=small, kept=kept)
    except UnsafeArchiveError as exc:
        # Refused from a member's header, before its data was read: one problem, no more work.
        return VerifyReport(bundle, False, problems + [exc.message], 0, 0, manifest)
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
        data = kept.get(rel)
        return None if data is None or len(data) > _MAX_SMALL else data.decode("utf-8", errors="replace")

    manifest_sha = members.get(MANIFEST_NAME, ("", 0))[0]
    _check_consistency(manifest, read, manifest_sha, problems, bundle)
    return VerifyReport(bundle, False, problems, len(members), sum(s for _, s in members.values()), manifest,
                        manifest_sha256=manifest_sha)


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
        problems.extend(check_requirements(text, rel, (p for p in manifest.requirement_packages if ti in p.targets)))
    # pylock.toml: every package and every source against the manifest.
    text = read("pylock.toml")
    if text is None:
        problems.append("pylock.toml: missing")
    else:
        problems.extend(check_pylock(text, manifest))
    problems.extend(check_layout(manifest))
    conf = read("pip.conf") if "pip.conf" in expected else None
    if conf is not None:
        problems.extend(check_pip_conf(conf))
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
    locked = {p.path for p in manifest.requirement_packages}
    for rel in expected:
        if rel.startswith("wheels/") and rel not in locked:
            problems.append(f"{rel}: in wheels/ but not a locked wheel")
    if manifest.conda is not None:
        path = manifest.conda.get("path")
        if not isinstance(path, str) or path not in expected:
            problems.append(f"conda: the packed environment {path!r} is not a listed file of the bundle")
        if not manifest.conda.get("platform"):
            problems.append("conda: the manifest does not say which platform the environment is for")
    if manifest.cuda is not None:
        from .gpu.bundle import check_manifest

        # A delta's base wheels are not here to read: its runtime closure was checked on the
        # complete state when it was built, so only the records are checked here.
        problems.extend(check_manifest(manifest, None if manifest.delta and manifest.delta.provided else bundle))
