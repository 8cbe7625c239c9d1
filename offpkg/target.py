"""Targets: the host a bundle is for.

A target is Python (implementation, version, ABI), the ordered wheel tags it
accepts, its PEP 508 marker environment, OS/arch/libc and, when known, GPU facts.
It comes from a probe file (``--target FILE``), from ``--python-version`` and
``--platform`` options, or from this host.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from . import _probe
from .errors import InputError, UsageError


@dataclass(frozen=True)
class Target:
    implementation: str
    python_version: str  # "3.10"
    abi: str
    os: str  # linux | macos | windows
    arch: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    markers: dict[str, str] = field(hash=False, compare=False)
    libc: dict[str, str] | None = field(default=None, hash=False, compare=False)
    gpu: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    full_version: str | None = None
    source: str = "host"  # host | options | file name

    # ------------------------------------------------------------ construction
    @classmethod
    def from_probe(cls, data: dict[str, Any], source: str = "host") -> Target:
        _validate_probe(data, source)
        try:
            py = data["python"]
            return cls(
                implementation=py["implementation"],
                python_version=py["version"],
                abi=py["abi"],
                full_version=py.get("full_version"),
                os=data["os"],
                arch=data["arch"],
                platforms=tuple(data["platforms"]),
                tags=tuple(data["tags"]),
                markers=dict(data["markers"]),
                libc=data.get("libc"),
                gpu=data.get("gpu"),
                source=source,
            )
        except (KeyError, TypeError) as exc:
            raise InputError(
                f"target description {source} is missing {exc}",
                hint="write it with `offpkg probe -o target.json` (or `python3 probe.py`) on the target host",
            ) from None

    @classmethod
    def host(cls) -> Target:
        return cls.from_probe(_probe.probe(), source="host")

    @classmethod
    def from_file(cls, path: str | Path) -> Target:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"target file {p} does not exist",
                             hint="create it on the target host with `offpkg probe -o target.json`") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read target file {p}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"target file {p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"target file {p} does not hold a JSON object")
        # A bundle manifest can serve as a target file too.
        if "targets" in data and "python" not in data:
            data = data["targets"][0]
        return cls.from_probe(data, source=p.name)

    @classmethod
    def from_options(cls, python_version: str, platforms: list[str], implementation: str = "cpython",
                     abi: str | None = None) -> Target:
        m = re.fullmatch(r"(\d)\.(\d+)", python_version.strip())
        if not m:
            raise UsageError(f"--python-version {python_version!r} is not of the form X.Y (e.g. 3.10)")
        major, minor = int(m.group(1)), int(m.group(2))
        if not platforms:
            platforms = list(Target.host().platforms[:1])
        expanded: list[str] = []
        for tag in platforms:
            if not re.fullmatch(r"[A-Za-z0-9_]+", tag):
                raise UsageError(f"--platform {tag!r} is not a wheel platform tag (e.g. manylinux_2_28_x86_64)")
            for p in _probe.expand_platform(tag):
                if p not in expanded:
                    expanded.append(p)
        abi = abi or (f"cp{major}{minor}" if implementation == "cpython" else "none")
        os_name, arch, machine, libc = _describe_platform(expanded[0])
        tags = _probe.tags_for(implementation, major, minor, abi, expanded)
        sys_platform = {"linux": "linux", "macos": "darwin", "windows": "win32"}.get(os_name, os_name)
        markers = {
            "implementation_name": implementation,
            "implementation_version": f"{major}.{minor}.0",
            "os_name": "nt" if os_name == "windows" else "posix",
            "platform_machine": machine,
            "platform_python_implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(implementation, implementation),
            "platform_release": "",
            "platform_system": {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}.get(os_name, ""),
            "platform_version": "",
            "python_full_version": f"{major}.{minor}.0",
            "python_version": f"{major}.{minor}",
            "sys_platform": sys_platform,
        }
        return cls(implementation=implementation, python_version=f"{major}.{minor}", abi=abi, os=os_name,
                   arch=arch, platforms=tuple(expanded), tags=tuple(tags), markers=markers, libc=libc,
                   gpu=None, source="options")

    # ------------------------------------------------------------ queries
    def to_json(self) -> dict[str, Any]:
        return {
            "probe_format": _probe.PROBE_FORMAT,
            "python": {"implementation": self.implementation, "version": self.python_version,
                       "full_version": self.full_version, "abi": self.abi},
            "os": self.os,
            "arch": self.arch,
            "libc": self.libc,
            "platforms": list(self.platforms),
            "tags": list(self.tags),
            "markers": dict(self.markers),
            "gpu": self.gpu,
        }

    @property
    def id(self) -> str:
        """A short, stable name: ``cp310-manylinux_2_28_x86_64``."""
        return f"{self.abi if self.implementation == 'cpython' else self.implementation + self.python_version.replace('.', '')}-{self.platforms[0]}"

    @property
    def py_major_minor(self) -> tuple[int, int]:
        a, b = self.python_version.split(".")[:2]
        return int(a), int(b)

    def tag_rank(self) -> dict[Tag, int]:
        """{tag: priority}; lower is better, like pip's ordering. Shared: do not modify it.

        Computed once per target (a target accepts hundreds of tags, and file
        selection asks for the ranking thousands of times).
        """
        return self._tag_rank

    @functools.cached_property
    def _tag_rank(self) -> dict[Tag, int]:
        # cached_property writes to the instance __dict__ directly, so it works on a
        # frozen (non-slots) dataclass; it is no field, so equality and hashing ignore it.
        return _ranks_of(self.tags)

    def wheel_rank(self, filename: str, ranks: dict[Tag, int] | None = None) -> int | None:
        """The best rank of a wheel's tags for this target, or None if it does not fit."""
        ranks = ranks if ranks is not None else self._tag_rank
        wtags = wheel_tags(filename)
        if wtags is None:
            return None
        best = [ranks[t] for t in wtags if t in ranks]
        return min(best) if best else None

    def accepts_wheel(self, filename: str) -> bool:
        return self.wheel_rank(filename) is not None

    def evaluate(self, marker: str, extra: str = "") -> bool:
        env = dict(self.markers)
        env["extra"] = extra
        return Marker(marker).evaluate(env)  # type: ignore[arg-type]

    def uv_python_platform(self) -> str | None:
        """The closest ``uv pip compile --python-platform`` value, or None."""
        if self.os == "linux":
            if self.libc and self.libc.get("name") == "musl":
                return f"{self.arch}-unknown-linux-musl" if self.arch in ("x86_64", "aarch64") else "linux"
            if self.arch in ("x86_64", "aarch64"):
                glibc = self.glibc
                if glibc and glibc >= (2, 28):
                    return f"{self.arch}-manylinux_2_{min(glibc[1], 40)}" if glibc[1] not in (29, 30) else f"{self.arch}-manylinux_2_28"
                return f"{self.arch}-manylinux_2_17"
            return "linux"
        if self.os == "windows":
            return {"x86_64": "x86_64-pc-windows-msvc", "aarch64": "aarch64-pc-windows-msvc",
                    "arm64": "aarch64-pc-windows-msvc", "i686": "i686-pc-windows-msvc"}.get(self.arch, "windows")
        if self.os == "macos":
            return "aarch64-apple-darwin" if self.arch in ("arm64", "aarch64") else "x86_64-apple-darwin"
        return None

    @property
    def glibc(self) -> tuple[int, int] | None:
        if self.libc and self.libc.get("name") == "glibc":
            a, b = self.libc["version"].split(".")[:2]
            return int(a), int(b)
        return None

    def same_interpreter_as(self, other: Target) -> bool:
        return (self.implementation, self.python_version, self.abi) == (other.implementation, other.python_version, other.abi)

    def describe(self) -> str:
        libc = f" {self.libc['name']} {self.libc['version']}" if self.libc else ""
        return f"{self.implementation} {self.python_version} ({self.abi}) on {self.os} {self.arch}{libc}"


@functools.lru_cache(maxsize=64)
def _ranks_of(tags: tuple[str, ...]) -> dict[Tag, int]:
    """The ranking of an ordered tag list (targets with the same tags share one)."""
    ranks: dict[Tag, int] = {}
    for i, t in enumerate(tags):
        ranks.setdefault(Tag(*t.split("-")), i)
    return ranks


@functools.lru_cache(maxsize=8192)
def wheel_tags(filename: str) -> frozenset[Tag] | None:
    """The tags of a wheel file name, or None when it is no valid wheel name (memoised:
    the same torch-family names are ranked during CUDA planning and again in file selection)."""
    try:
        return parse_wheel_filename(filename)[3]
    except Exception:
        return None


_TAG = re.compile(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+")


def _validate_probe(data: Any, source: str) -> None:
    """A target description is input from another host: check every type before trusting it."""
    def bad(what: str) -> InputError:
        return InputError(f"target description {source}: {what}",
                          hint="write it with `offpkg probe -o target.json` (or `python3 probe.py`) on the target host")

    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    py = data.get("python")
    if not isinstance(py, dict) or not all(isinstance(py.get(k), str) for k in ("implementation", "version", "abi")):
        raise bad("python.implementation, python.version and python.abi must be strings")
    if not re.fullmatch(r"\d+\.\d+", py["version"]):
        raise bad(f"python.version {py['version'][:20]!r} is not of the form X.Y")
    for key in ("os", "arch"):
        if not isinstance(data.get(key), str):
            raise bad(f"{key} must be a string")
    for key in ("platforms", "tags"):
        value = data.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise bad(f"{key} must be a non-empty list of strings")
    if not all(_TAG.fullmatch(t) for t in data["tags"]):
        raise bad("tags must be wheel tags of the form interpreter-abi-platform")
    markers = data.get("markers")
    if not isinstance(markers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in markers.items()):
        raise bad("markers must be an object of strings")
    libc = data.get("libc")
    if libc is not None and not (isinstance(libc, dict) and isinstance(libc.get("name"), str)
                                 and re.fullmatch(r"\d+\.\d+", str(libc.get("version", "")))):
        raise bad("libc must be null or {name, version: X.Y}")
    if data.get("gpu") is not None and not isinstance(data.get("gpu"), dict):
        raise bad("gpu must be null or an object")


def _describe_platform(tag: str) -> tuple[str, str, str, dict[str, str] | None]:
    """(os, arch, platform_machine, libc) of a platform tag."""
    m = re.match(r"^manylinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return "linux", m.group(3), m.group(3), {"name": "glibc", "version": f"{m.group(1)}.{m.group(2)}"}
    m = re.match(r"^musllinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return "linux", m.group(3), m.group(3), {"name": "musl", "version": f"{m.group(1)}.{m.group(2)}"}
    m = re.match(r"^linux_(.+)$", tag)
    if m:
        return "linux", m.group(1), m.group(1), None
    m = re.match(r"^macosx_\d+_\d+_(.+)$", tag)
    if m:
        return "macos", m.group(1), m.group(1), None
    if tag.startswith("win"):
        arch = {"win_amd64": "x86_64", "win32": "i686", "win_arm64": "arm64"}.get(tag, tag[4:])
        machine = {"x86_64": "AMD64", "i686": "x86", "arm64": "ARM64"}.get(arch, arch)
        return "windows", arch, machine, None
    return "linux", "unknown", "unknown", None


def resolve_target(target_file: str | None, python_version: str | None, platforms: tuple[str, ...] | list[str]) -> Target:
    """The target from CLI options: a file, or --python-version/--platform, or this host."""
    if target_file and (python_version or platforms):
        raise UsageError("use either --target FILE or --python-version/--platform, not both")
    if target_file:
        return Target.from_file(target_file)
    if python_version or platforms:
        if not python_version:
            host = Target.host()
            python_version = host.python_version
        return Target.from_options(python_version, list(platforms))
    return Target.host()


