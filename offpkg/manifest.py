"""The bundle manifest, ``offpkg.json``: frozen, validated dataclasses with a format version.

Reading a manifest validates everything before anything is trusted: every path
must be a plain relative path inside the bundle (a manifest naming ``../x`` or
``/etc/passwd`` is rejected, never followed), every digest a sha256, every size
sane. Errors name the dotted key that is wrong, like ``packaging.pylock``.

Coverage: the manifest lists every file of the bundle but itself and
``SHA256SUMS``; ``SHA256SUMS`` lists every file but itself (the manifest
included), so ``sha256sum -c SHA256SUMS`` checks everything on a host without offpkg.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from .errors import ManifestError

FORMAT = "offpkg-bundle"
FORMAT_VERSION = 1
# A delta bundle (offpkg.updates.delta) is written with format_version 2, so an offpkg
# that predates deltas refuses it clearly instead of reporting its missing wheels.
DELTA_FORMAT_VERSION = 2
MAX_FORMAT_VERSION = DELTA_FORMAT_VERSION
MANIFEST_NAME = "offpkg.json"
SUMS_NAME = "SHA256SUMS"
# No single file in a bundle is bigger than this; larger sizes are hostile or corrupt.
MAX_FILE_SIZE = 1 << 40

_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_relpath(path: str, where: str) -> str:
    """Validate a bundle-relative POSIX path; return it unchanged."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: path must be a non-empty string")
    if "\x00" in path or "\\" in path or any(ord(c) < 32 for c in path):
        raise ManifestError(f"{where}: path {path!r} contains a forbidden character")
    p = PurePosixPath(path)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"{where}: path {path!r} is absolute; a bundle only holds relative paths")
    if any(part in ("..", ".", "") for part in path.split("/")):
        raise ManifestError(f"{where}: path {path!r} leaves or is not normalised within the bundle")
    if unicodedata.normalize("NFC", path) != path:
        raise ManifestError(f"{where}: path {path!r} is not NFC-normalised")
    if len(path) > 1024:
        raise ManifestError(f"{where}: path is longer than 1024 characters")
    return path


def _check_sha(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ManifestError(f"{where}: sha256 must be 64 lowercase hex digits, got {str(value)[:80]!r}")
    return value


def _check_size(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_FILE_SIZE:
        raise ManifestError(f"{where}: size must be an integer between 0 and {MAX_FILE_SIZE}, got {str(value)[:40]!r}")
    return value


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise ManifestError(f"{where}.{key}: missing")
        return default
    v = d[key]
    if not isinstance(v, kind):
        raise ManifestError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(v).__name__}")
    return v


def _check_target(t: dict[str, Any], where: str) -> None:
    """A bundle target is a probe document from another host: every field checked before use."""
    from .errors import InputError
    from .target import _validate_probe

    try:
        _validate_probe(t, where)
    except InputError as exc:
        raise ManifestError(exc.message) from None


def _check_verification(v: dict[str, Any]) -> None:
    """The smoke-test record (offpkg.smoke): ``checks`` is a list of ``{name: str, ok: bool, ...}``."""
    checks = v.get("checks", [])
    if not isinstance(checks, list):
        raise ManifestError("manifest.verification.checks: expected a list")
    for i, c in enumerate(checks):
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("ok"), bool)):
            raise ManifestError(f"manifest.verification.checks[{i}]: expected an object with name (string) "
                                "and ok (true/false)")


@dataclass(frozen=True)
class FileEntry:
    """A file of the bundle other than a wheel: requirements.txt, install.sh, ..."""

    path: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        check_relpath(self.path, "file")
        _check_sha(self.sha256, f"file {self.path}")
        _check_size(self.size, f"file {self.path}")

    @classmethod
    def from_json(cls, d: Any, where: str) -> FileEntry:
        if not isinstance(d, dict):
            raise ManifestError(f"{where}: expected an object")
        return cls(path=check_relpath(_get(d, "path", str, where), where + ".path"),
                   sha256=_check_sha(_get(d, "sha256", str, where), where + ".sha256"),
                   size=_check_size(_get(d, "size", int, where), where + ".size"))


@dataclass(frozen=True)
class Package:
    """One locked distribution file (a wheel) in ``wheels/``."""

    name: str
    version: str
    filename: str
    path: str
    sha256: str
    size: int
    url: str | None = None  # credentials stripped
    built_from_sdist: bool = False
    requires_python: str | None = None
    targets: tuple[int, ...] = (0,)
    role: str = "requirement"  # requirement | tool

    def __post_init__(self) -> None:
        where = f"package {self.filename}"
        check_relpath(self.path, where)
        _check_sha(self.sha256, where)
        _check_size(self.size, where)
        if PurePosixPath(self.path).name != self.filename:
            raise ManifestError(f"{where}: path {self.path!r} does not end in its filename")
        if not self.filename.endswith(".whl"):
            raise ManifestError(f"{where}: only wheels are carried; sdists are never installed offline")
        try:
            parse_wheel_filename(self.filename)
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise ManifestError(f"{where}: not a valid wheel file name ({exc})") from None

    @classmethod
    def from_json(cls, d: Any, where: str) -> Package:
        if not isinstance(d, dict):
            raise ManifestError(f"{where}: expected an object")
        targets = _get(d, "targets", list, where, [0])
        if not all(isinstance(t, int) and t >= 0 for t in targets):
            raise ManifestError(f"{where}.targets: expected a list of target indexes")
        return cls(
            name=_get(d, "name", str, where), version=_get(d, "version", str, where),
            filename=_get(d, "filename", str, where),
            path=check_relpath(_get(d, "path", str, where), where + ".path"),
            sha256=_check_sha(_get(d, "sha256", str, where), where + ".sha256"),
            size=_check_size(_get(d, "size", int, where), where + ".size"),
            url=_get(d, "url", (str, type(None)), where, None),
            built_from_sdist=_get(d, "built_from_sdist", bool, where, False),
            requires_python=_get(d, "requires_python", (str, type(None)), where, None),
            targets=tuple(targets), role=_get(d, "role", str, where, "requirement"),
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d


@dataclass(frozen=True)
class Delta:
    """What makes a bundle a delta: the base it applies to and the entries the base provides.

    ``provided`` lists paths of the manifest's own entries (packages or files) that
    the delta does not carry because the base holds the very same bytes (same path,
    same sha256). The lock files still pin everything: the delta describes the
    complete new state, and carries only what the base lacks.
    """

    base_manifest_sha256: str
    base_created: str = ""
    provided: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_sha(self.base_manifest_sha256, "delta.base_manifest_sha256")
        for p in self.provided:
            check_relpath(p, "delta.provided")
        if len(set(self.provided)) != len(self.provided):
            raise ManifestError("delta.provided: lists a path twice")

    @classmethod
    def from_json(cls, d: Any) -> Delta:
        if not isinstance(d, dict):
            raise ManifestError("manifest.delta: expected an object")
        provided = _get(d, "provided", list, "manifest.delta", [])
        return cls(base_manifest_sha256=_check_sha(_get(d, "base_manifest_sha256", str, "manifest.delta"),
                                                   "manifest.delta.base_manifest_sha256"),
                   base_created=_get(d, "base_created", str, "manifest.delta", ""),
                   provided=tuple(check_relpath(p, "manifest.delta.provided") for p in provided))

    def to_json(self) -> dict[str, Any]:
        return {"base_manifest_sha256": self.base_manifest_sha256, "base_created": self.base_created,
                "provided": sorted(self.provided)}


@dataclass(frozen=True)
class Manifest:
    offpkg_version: str
    created: str
    targets: tuple[dict[str, Any], ...]
    requirements: tuple[str, ...]
    packages: tuple[Package, ...]
    files: tuple[FileEntry, ...]
    indexes: tuple[str, ...] = ()
    cuda: dict[str, Any] | None = field(default=None, hash=False)
    conda: dict[str, Any] | None = field(default=None, hash=False)
    verification: dict[str, Any] | None = field(default=None, hash=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    format_version: int = FORMAT_VERSION
    delta: Delta | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        folded: set[str] = set()
        for path in [p.path for p in self.packages] + [f.path for f in self.files]:
            if path in (MANIFEST_NAME, SUMS_NAME):
                raise ManifestError(f"manifest lists {path}, which it cannot cover")
            if path in seen:
                raise ManifestError(f"manifest lists {path} twice")
            # Names that collide on case-insensitive filesystems change meaning when carried.
            if path.casefold() in folded:
                raise ManifestError(f"manifest lists two paths that differ only in case: {path}")
            seen.add(path)
            folded.add(path.casefold())
        if not self.targets:
            raise ManifestError("manifest has no target")
        if self.delta is not None:
            unknown = set(self.delta.provided) - seen
            if unknown:
                raise ManifestError(f"manifest.delta.provided: {sorted(unknown)[0]} is not an entry of the manifest")
            if self.format_version < DELTA_FORMAT_VERSION:
                raise ManifestError(f"manifest: a delta needs format_version {DELTA_FORMAT_VERSION}")

    # ------------------------------------------------------------ queries
    @property
    def requirement_packages(self) -> list[Package]:
        return [p for p in self.packages if p.role == "requirement"]

    @property
    def tool_packages(self) -> list[Package]:
        return [p for p in self.packages if p.role == "tool"]

    def all_entries(self) -> dict[str, tuple[str, int]]:
        """{path: (sha256, size)} of every file the bundle carries (a delta's provided entries excluded)."""
        out = self.locked_entries()
        for p in self.delta.provided if self.delta else ():
            out.pop(p, None)
        return out

    def locked_entries(self) -> dict[str, tuple[str, int]]:
        """{path: (sha256, size)} of every entry of the complete state, carried or provided by a base."""
        out = {p.path: (p.sha256, p.size) for p in self.packages}
        out.update({f.path: (f.sha256, f.size) for f in self.files})
        return out

    @property
    def is_delta(self) -> bool:
        return self.delta is not None

    def total_size(self) -> int:
        return sum(s for _, s in self.all_entries().values())

    # ------------------------------------------------------------ (de)serialise
    def to_json(self) -> dict[str, Any]:
        # "delta" appears only in deltas: a full bundle's manifest is byte-for-byte what it was.
        return ({"delta": self.delta.to_json()} if self.delta is not None else {}) | {
            "format": FORMAT,
            "format_version": self.format_version,
            "offpkg_version": self.offpkg_version,
            "created": self.created,
            "targets": list(self.targets),
            "requirements": list(self.requirements),
            "indexes": list(self.indexes),
            "cuda": self.cuda,
            "conda": self.conda,
            "packages": [p.to_json() for p in sorted(self.packages, key=lambda p: p.path)],
            "files": [asdict(f) for f in sorted(self.files, key=lambda f: f.path)],
            "verification": self.verification,
            "extra": self.extra,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, d: Any) -> Manifest:
        if not isinstance(d, dict):
            raise ManifestError("manifest: expected a JSON object")
        if d.get("format") != FORMAT:
            raise ManifestError(f"manifest: format is {str(d.get('format'))[:40]!r}, expected {FORMAT!r}")
        version = _get(d, "format_version", int, "manifest")
        if version > MAX_FORMAT_VERSION:
            raise ManifestError(
                f"manifest: format_version {version} is newer than this offpkg understands ({MAX_FORMAT_VERSION})",
                hint="install a newer offpkg on this host, or rebuild the bundle with this version",
            )
        targets = _get(d, "targets", list, "manifest")
        if not all(isinstance(t, dict) for t in targets):
            raise ManifestError("manifest.targets: expected a list of objects")
        for i, t in enumerate(targets):
            _check_target(t, f"manifest.targets[{i}]")
        reqs = _get(d, "requirements", list, "manifest")
        packages = tuple(Package.from_json(p, f"manifest.packages[{i}]")
                         for i, p in enumerate(_get(d, "packages", list, "manifest")))
        for p in packages:
            if any(t >= len(targets) for t in p.targets):
                raise ManifestError(f"package {p.filename}: refers to a target that does not exist")
        files = tuple(FileEntry.from_json(f, f"manifest.files[{i}]")
                      for i, f in enumerate(_get(d, "files", list, "manifest")))
        opt_dict = (dict, type(None))
        verification = _get(d, "verification", opt_dict, "manifest", None)
        if verification is not None:
            _check_verification(verification)
        return cls(
            offpkg_version=_get(d, "offpkg_version", str, "manifest"),
            created=_get(d, "created", str, "manifest"),
            targets=tuple(targets),
            requirements=tuple(str(r) for r in reqs),
            packages=packages,
            files=files,
            indexes=tuple(str(i) for i in _get(d, "indexes", list, "manifest", [])),
            cuda=_get(d, "cuda", opt_dict, "manifest", None),
            conda=_get(d, "conda", opt_dict, "manifest", None),
            verification=verification,
            extra=_get(d, "extra", dict, "manifest", {}),
            format_version=version,
            delta=Delta.from_json(d["delta"]) if d.get("delta") is not None else None,
        )

    @classmethod
    def loads(cls, text: str | bytes, source: str = MANIFEST_NAME) -> Manifest:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ManifestError(f"{source} is not valid JSON: {exc}",
                                hint="the bundle is corrupt or truncated; copy it again") from None
        return cls.from_json(data)

    @classmethod
    def read(cls, bundle_dir: Path) -> Manifest:
        path = bundle_dir / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"{bundle_dir} has no {MANIFEST_NAME}: it is not an offpkg bundle (or it is incomplete)",
                                hint="check the path; a bundle is the directory or archive written by `offpkg bundle`")
        if path.stat().st_size > 64 << 20:
            raise ManifestError(f"{path} is implausibly large ({path.stat().st_size} bytes)")
        return cls.loads(path.read_bytes(), str(path))
