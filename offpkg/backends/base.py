"""What every backend shares: the sources, the pins, the Backend protocol and the output parsers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import NoWheelError, ResolutionError, SubprocessError
from ..target import Target


@dataclass(frozen=True)
class Sources:
    """Where packages come from: ordered indexes (first is primary) and find-links folders.

    ``fallbacks`` are alternate mirrors of the primary index, in order: used only
    when the primary fails (offpkg.resolve.lock, offpkg.net.index, offpkg.net.fetch).
    """

    index_urls: tuple[str, ...]
    find_links: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()

    def pip_args(self) -> list[str]:
        """The command-line form (for messages and tools that take no environment); may hold credentials.

        pip and uv get :meth:`env` instead: a URL's credentials must never reach argv,
        where every local user can read them in /proc/PID/cmdline.
        """
        args: list[str] = []
        if self.index_urls:
            args += ["--index-url", self.index_urls[0]]
            for u in self.index_urls[1:]:
                args += ["--extra-index-url", u]
        else:
            args.append("--no-index")
        for f in self.find_links:
            args += ["--find-links", f]
        return args

    def argv(self) -> list[str]:
        """The part of the sources safe for argv: ``--no-index`` and local find-links folders only."""
        args = [] if self.index_urls else ["--no-index"]
        for f in self.find_links:
            if not _is_url(f):
                args += ["--find-links", f]
        return args

    def env(self, tool: str) -> dict[str, str]:
        """Indexes (and URL find-links) as environment variables of ``tool`` ("pip" or "uv").

        The environment of a process is readable only by its user (/proc/PID/environ
        is mode 0400), unlike its command line.
        """
        remote_links = [f for f in self.find_links if _is_url(f)]
        env: dict[str, str] = {}
        if tool == "uv":
            if self.index_urls:
                env["UV_DEFAULT_INDEX"] = self.index_urls[0]
                if self.index_urls[1:]:
                    env["UV_INDEX"] = " ".join(self.index_urls[1:])
            if remote_links:
                env["UV_FIND_LINKS"] = ",".join(remote_links)
        else:
            if self.index_urls:
                env["PIP_INDEX_URL"] = self.index_urls[0]
                if self.index_urls[1:]:
                    env["PIP_EXTRA_INDEX_URL"] = " ".join(self.index_urls[1:])
            if remote_links:
                env["PIP_FIND_LINKS"] = " ".join(remote_links)
        return env


def _is_url(value: str) -> bool:
    return "://" in value and bool(urlsplit(value).scheme) and not value.startswith("file:")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str


class Backend(Protocol):
    """The whole surface callers use; nothing outside ``offpkg.backends`` touches a backend's internals."""

    name: str

    def resolve(self, requirements: Path, constraints: list[Path], target: Target, sources: Sources,
                workdir: Path) -> list[Pin]:
        """name==version pins for ``target`` (choosing files is offpkg.resolve's job)."""

    def build_wheel(self, sdist: Path, outdir: Path, sources: Sources, workdir: Path) -> Path:
        """Build one wheel from ``sdist`` into ``outdir``; its path."""

    def create_venv(self, python: Path, venv: Path, workdir: Path, *, pip_wheel: Path | None = None,
                    system_site_packages: bool = False) -> None:
        """A new venv at ``venv`` for ``python``, with pip (from ``pip_wheel`` when given), offline."""

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path, *,
                break_system_packages: bool = False) -> None:
        """Install the hash-pinned ``requirements`` from the ``wheels`` folder only, offline."""

    def check(self, python: Path, workdir: Path) -> None:
        """``pip check``: raise SubprocessError when installed requirements are inconsistent."""


def tool_home(workdir: Path) -> str:
    """A private HOME for one pip/uv run: nothing of the user's configuration or caches leaks in."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    return str(home)


def uv_cache_dir() -> str:
    """uv's cache: the caller's UV_CACHE_DIR (tests point it into a temp dir), else the user's own."""
    if "UV_CACHE_DIR" in os.environ:
        return os.environ["UV_CACHE_DIR"]
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uv")


def parse_pins(text: str) -> list[Pin]:
    """The ``name==version`` lines of a requirements file (pip-compile/uv output); hashes and options skipped."""
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or line.endswith("\\"):
            line = line.rstrip("\\").strip()
            if not line or line.startswith("-"):
                continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        spec = list(req.specifier)
        if len(spec) == 1 and spec[0].operator in ("==", "==="):
            pins.append(Pin(canonicalize_name(req.name), spec[0].version))
    return pins


# How pip and uv name the package they could not resolve (newest wording first where both exist).
NOT_FOUND = [
    re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)"),
    re.compile(r"Because ([A-Za-z0-9._-]+) was not found in the package registry"),
    re.compile(r"Because ([A-Za-z0-9._-]+)==\S+ has no wheels with a matching"),
    re.compile(r"Because there are no versions of ([A-Za-z0-9._-]+)"),
    re.compile(r"Because there is no version of ([A-Za-z0-9._-]+?)(?:[<>=!~]|\s|$)"),
    re.compile(r"([A-Za-z0-9._-]+) was not found in the package registry"),
    re.compile(r"Because ([A-Za-z0-9._-]+) ?(?:[<>=!~][^ ]*)? has no"),
]


class PackageResolutionError(ResolutionError):
    """Resolution failed on one named package; offpkg.resolve tells apart unknown / no wheel / conflict."""

    def __init__(self, message: str, package: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.package = package


def resolution_error(exc: SubprocessError, backend: str) -> ResolutionError:
    """A resolver's failure as a ResolutionError, naming the package when the output does."""
    text = exc.details or ""
    for pat in NOT_FOUND:
        m = pat.search(text)
        if m:
            name = m.group(1)
            return PackageResolutionError(
                f"cannot resolve the requirements: no version of {name} satisfies the requirements for the target ({backend})",
                name, hint="relax the version pins that conflict (see the resolver's output), or check the index",
                details=text)
    return ResolutionError(f"cannot resolve the requirements ({backend})",
                           hint="read the resolver's output above; relax the pins or fix the index options",
                           details=text)


def new_wheel(outdir: Path, before: set[Path], sdist: Path) -> Path:
    """The wheel a build added to ``outdir``."""
    new = sorted(set(outdir.glob("*.whl")) - before)
    if not new:
        raise NoWheelError(f"building {sdist.name} produced no wheel")
    return new[0]
