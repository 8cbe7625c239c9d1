"""Facts from the index itself: which build of torch PyPI serves, read from its wheels' metadata.

PyPI's default torch build changes with releases (CUDA 12.8 for 2.8-2.10, 13.0 for
2.11-2.14, 13.2 for 2.15; CPU-only on aarch64 before 2.11). Each wheel's METADATA says
which it is: torch <= 2.10 pins ``nvidia-cuda-runtime-cu1X==...``, torch >= 2.11 pins
``cuda-toolkit[...]==13.x.y``, a CPU-only build pins neither. :class:`PypiBuilds`
reads that (PEP 658 ``.metadata``, else a range read into the wheel: never the whole
wheel) through the network layer, lazily, one release at a time, and offers it to the
planner as ``observed`` facts (a Mapping: series -> {cpu arch: CUDA or None}).

An index that cannot be read leaves the planner with offpkg's data (a note says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from email.parser import HeaderParser
from typing import TYPE_CHECKING

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import NetworkError, OffpkgError
from .facts import CPU_ARCHES, norm_arch

if TYPE_CHECKING:  # pragma: no cover
    from ..net.index import DistFile, IndexClient

_RUNTIME = re.compile(r"nvidia-cuda-runtime(?:-cu(\d+))?$")


def cuda_of_metadata(metadata: str, arch: str = "x86_64") -> str | None:
    """The CUDA version ("13.0") a torch wheel's METADATA pins for Linux ``arch``; None for a CPU-only build.

    ``cuda-toolkit[...]==13.0.2`` gives 13.0; ``nvidia-cuda-runtime-cu12==12.8.90`` gives
    12.8; ``nvidia-cuda-runtime==13.0.96`` (torch 2.9/2.10's cu130) gives 13.0.
    """
    env = {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": norm_arch(arch),
           "os_name": "posix"}
    for line in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            r = Requirement(line)
            if r.marker is not None and not r.marker.evaluate({**env, "extra": ""}):
                continue
        except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue
        name = canonicalize_name(r.name)
        if name == "cuda-toolkit" or _RUNTIME.match(name):
            for s in r.specifier:
                m = re.match(r"(\d+)\.(\d+)", s.version)
                if s.operator in ("==", "===", "~=", ">=") and m:
                    return f"{int(m.group(1))}.{int(m.group(2))}"
    return None


def _wheel_arch(filename: str) -> str | None:
    tags = filename[:-4].split("-")[-1] if filename.endswith(".whl") else ""
    if "manylinux" not in tags and "linux" not in tags:
        return None
    for a in CPU_ARCHES:
        if tags.endswith(a) or f"{a}." in tags:
            return a
    return None


class PypiBuilds(Mapping[str, Mapping[str, "str | None"]]):
    """{torch series: {cpu arch: CUDA of PyPI's build or None}} read lazily from an index's torch wheels.

    ``client`` looks up the index's torch page (the user's index: PyPI or its mirror).
    Only the ``arches`` of the bundle's targets are read; a failure to read one
    release leaves it out (the planner uses its data) and is recorded in ``notes``.
    """

    def __init__(self, client: IndexClient, arches: tuple[str, ...] = ("x86_64",)) -> None:
        self.client = client
        self.arches = tuple(dict.fromkeys(norm_arch(a) for a in arches if norm_arch(a) in CPU_ARCHES))
        self.notes: list[str] = []
        self.metadata_reads = 0
        self._files: list[DistFile] | None = None
        self._seen: dict[str, dict[str, str | None]] = {}

    def files(self) -> list[DistFile]:
        if self._files is None:
            try:
                self._files = [f for f in self.client.files("torch") if f.is_wheel and not f.yanked]
            except NetworkError as exc:
                self.notes.append(f"PyPI's torch builds could not be read ({exc.message}); offpkg's data was used")
                self._files = []
        return self._files

    def _by_series(self) -> dict[str, list[tuple[Version, DistFile]]]:
        out: dict[str, list[tuple[Version, DistFile]]] = {}
        for f in self.files():
            nv = f.name_version()
            if nv is None or canonicalize_name(nv[0]) != "torch" or nv[1].local or nv[1].is_prerelease:
                continue
            out.setdefault(f"{nv[1].release[0]}.{nv[1].release[1]}", []).append((nv[1], f))
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_series(), key=Version))

    def __len__(self) -> int:
        return len(self._by_series())

    def __getitem__(self, s: str) -> Mapping[str, str | None]:
        if s in self._seen:
            return self._seen[s]
        group = self._by_series().get(s)
        if not group:
            raise KeyError(s)
        newest = max(v for v, _ in group)
        out: dict[str, str | None] = {}
        for arch in self.arches:
            wheels = sorted((f for v, f in group if v == newest and _wheel_arch(f.filename) == arch),
                            key=lambda f: f.filename)
            if not wheels:
                continue
            f = wheels[-1]
            try:
                out[arch] = cuda_of_metadata(self._metadata(f), arch)
            except OffpkgError as exc:
                self.notes.append(f"the metadata of {f.filename} could not be read ({exc.message}); "
                                  f"offpkg's data was used for torch {s}")
        self._seen[s] = out
        return out

    def _metadata(self, f: DistFile) -> str:
        from ..net.ranged import fetch_metadata

        local = f.local_path
        self.metadata_reads += 1
        if local is not None:
            from .check import zip_metadata

            return zip_metadata(local)
        return fetch_metadata(f.url, self.client.session, timeout=self.client.timeout, size=f.size)
