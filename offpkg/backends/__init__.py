"""pip and uv behind one small interface: resolve for a target, build an sdist, install offline.

Both backends only *resolve* (name==version pins); choosing the exact file for
the target's tags, downloading and hashing is offpkg's own job (offpkg.resolve),
so both give bundles of the same shape. Every run is isolated from the user's
pip/uv configuration (``isolated_env``): indexes come only from offpkg's options.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .._subprocess import isolated_env, run
from ..errors import EnvironmentProblem, NoWheelError, ResolutionError, SubprocessError, UsageError
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


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str


class Backend(Protocol):
    name: str

    def resolve(self, requirements: Path, constraints: list[Path], target: Target, sources: Sources,
                workdir: Path) -> list[Pin]: ...

    def build_wheel(self, sdist: Path, outdir: Path, sources: Sources, workdir: Path) -> Path: ...

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path) -> None: ...


def _parse_pins(text: str) -> list[Pin]:
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


_NOT_FOUND = [
    re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)"),
    re.compile(r"Because ([A-Za-z0-9._-]+) was not found in the package registry"),
    re.compile(r"Because ([A-Za-z0-9._-]+)==\S+ has no wheels with a matching"),
    re.compile(r"Because there are no versions of ([A-Za-z0-9._-]+)"),
    re.compile(r"([A-Za-z0-9._-]+) was not found in the package registry"),
    re.compile(r"Because ([A-Za-z0-9._-]+) ?(?:[<>=!~][^ ]*)? has no"),
]


class PackageResolutionError(ResolutionError):
    """Resolution failed on one named package; offpkg.resolve tells apart unknown / no wheel / conflict."""

    def __init__(self, message: str, package: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.package = package


def _resolution_error(exc: SubprocessError, backend: str) -> ResolutionError:
    text = exc.details or ""
    for pat in _NOT_FOUND:
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


# ---------------------------------------------------------------------- uv


def uv_binary() -> str | None:
    """The uv executable that ships with offpkg (the ``uv`` package), or one on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return find_uv_bin()
    except Exception:
        return shutil.which("uv")


class UvBackend:
    name = "uv"

    def __init__(self, uv: str | None = None) -> None:
        found = uv or uv_binary()
        if not found:
            raise EnvironmentProblem("uv is not available", hint="install offpkg with its dependencies, or use --backend pip")
        self.uv = found

    def _env(self, workdir: Path) -> dict[str, str]:
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        # uv keeps its own cache; share the user's so repeated resolutions are fast,
        # unless the caller set one (tests point it into a temp dir).
        extra = {"UV_CACHE_DIR": os.environ["UV_CACHE_DIR"]} if "UV_CACHE_DIR" in os.environ else {
            "UV_CACHE_DIR": str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uv")}
        return isolated_env(extra, home=str(home))

    def _source_args(self, sources: Sources) -> list[str]:
        args = sources.pip_args()
        if len(sources.index_urls) > 1:
            # Torch variants live on their own index; let uv see all of them.
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def resolve(self, requirements: Path, constraints: list[Path], target: Target, sources: Sources,
                workdir: Path) -> list[Pin]:
        argv = [self.uv, "pip", "compile", str(requirements), "--no-header", "--no-annotate", "--quiet",
                "--python-version", target.python_version, "--output-file", str(workdir / "uv-lock.txt")]
        plat = target.uv_python_platform()
        if plat:
            argv += ["--python-platform", plat]
        for c in constraints:
            argv += ["--constraint", str(c)]
        argv += self._source_args(sources)
        try:
            run(argv, env=self._env(workdir), what="resolving with uv")
        except SubprocessError as exc:
            raise _resolution_error(exc, "uv") from None
        return _parse_pins((workdir / "uv-lock.txt").read_text(encoding="utf-8"))

    def build_wheel(self, sdist: Path, outdir: Path, sources: Sources, workdir: Path) -> Path:
        before = set(outdir.glob("*.whl"))
        run([self.uv, "build", "--wheel", "--out-dir", str(outdir), "--python", sys.executable, str(sdist),
             *sources.pip_args()], env=self._env(workdir), what=f"building a wheel from {sdist.name}",
            hint="the sdist needs build tools this machine lacks; build its wheel yourself and pass --find-links")
        return _new_wheel(outdir, before, sdist)

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path) -> None:
        # Every door closed: no index, no network, no builds (--no-build is --only-binary :all:), no uv.toml (the env is scrubbed of UV_* too).
        run([self.uv, "pip", "install", "--offline", "--no-index", "--no-build", "--no-config", "--find-links",
             str(wheels), "--require-hashes", "--python", str(python), "-r",
             str(requirements)],
            env=self._env(workdir), what="installing with uv")


# ---------------------------------------------------------------------- pip


class PipBackend:
    name = "pip"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    def _env(self, workdir: Path) -> dict[str, str]:
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        return isolated_env(home=str(home))

    def resolve(self, requirements: Path, constraints: list[Path], target: Target, sources: Sources,
                workdir: Path) -> list[Pin]:
        host = Target.host()
        cross = tuple(target.tags) != tuple(host.tags)
        if not cross and self.python == sys.executable and _has_piptools():
            # pip-tools is the pip-side lock for host targets (pip-compile --generate-hashes).
            return self._pip_compile(requirements, constraints, sources, workdir)
        prebuilt = workdir / "prebuilt"
        prebuilt.mkdir(exist_ok=True)
        tried: set[str] = set()
        # pip cannot use sdists for another platform (pip#4289): build pure-Python ones
        # here into a local folder and resolve again, a few rounds at most.
        for _round in range(20):
            report = workdir / "pip-report.json"
            argv = [self.python, "-Im", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    "--report", str(report), "-r", str(requirements), "--no-input"]
            for c in constraints:
                argv += ["-c", str(c)]
            argv += sources.pip_args() + ["--find-links", str(prebuilt)]
            if cross:
                argv += ["--target", str(workdir / "pip-target"), "--only-binary", ":all:",
                         "--python-version", target.python_version,
                         "--implementation", {"cpython": "cp", "pypy": "pp"}.get(target.implementation, "cp"),
                         "--abi", target.abi]
                for p in target.platforms:  # every tag the host accepts (pip#10760)
                    argv += ["--platform", p]
            try:
                run(argv, env=self._env(workdir), what="resolving with pip")
            except SubprocessError as exc:
                m = _NOT_FOUND[0].search(exc.details or "")
                if cross and m and m.group(1) not in tried:
                    name = m.group(1)
                    tried.add(name)
                    if self._prebuild(name, sources, prebuilt, workdir):
                        continue
                raise _resolution_error(exc, "pip") from None
            data = json.loads(report.read_text(encoding="utf-8"))
            return [Pin(canonicalize_name(i["metadata"]["name"]), i["metadata"]["version"]) for i in data["install"]]
        raise ResolutionError("pip kept failing after building sdists for the target")

    def _pip_compile(self, requirements: Path, constraints: list[Path], sources: Sources, workdir: Path) -> list[Pin]:
        out = workdir / "pip-compile.txt"
        argv = [self.python, "-m", "piptools", "compile", "--generate-hashes", "--no-header", "--no-annotate",
                "--strip-extras", "--quiet", "--no-emit-index-url", "--output-file", str(out), str(requirements)]
        for c in constraints:
            argv += ["--constraint", str(c)]
        argv += sources.pip_args()
        try:
            run(argv, env=self._env(workdir), what="resolving with pip-compile (pip-tools)")
        except SubprocessError as exc:
            raise _resolution_error(exc, "pip") from None
        return _parse_pins(out.read_text(encoding="utf-8"))

    def _prebuild(self, name: str, sources: Sources, outdir: Path, workdir: Path) -> bool:
        """Download the newest sdist of ``name`` and build it; True if a pure-Python wheel came out."""
        dl = workdir / f"sdist-{canonicalize_name(name)}"
        dl.mkdir(exist_ok=True)
        try:
            run([self.python, "-Im", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl), name,
                 *sources.pip_args()], env=self._env(workdir), what=f"downloading the sdist of {name}")
        except SubprocessError:
            return False
        for sdist in dl.iterdir():
            try:
                wheel = self.build_wheel(sdist, outdir, sources, workdir)
            except SubprocessError:
                return False
            if not wheel.name.endswith("-none-any.whl"):
                wheel.unlink()
                return False
            return True
        return False

    def build_wheel(self, sdist: Path, outdir: Path, sources: Sources, workdir: Path) -> Path:
        before = set(outdir.glob("*.whl"))
        run([self.python, "-Im", "pip", "wheel", "--no-deps", "--wheel-dir", str(outdir), str(sdist),
             *sources.pip_args()], env=self._env(workdir), what=f"building a wheel from {sdist.name}",
            hint="the sdist needs build tools this machine lacks; build its wheel yourself and pass --find-links")
        return _new_wheel(outdir, before, sdist)

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path) -> None:
        # --isolated: no PIP_* variables or user config (PIP_CONFIG_FILE=/dev/null drops every config file).
        run([str(python), "-Im", "pip", "install", "--isolated", "--no-index", "--find-links", str(wheels),
             "--require-hashes", "--only-binary", ":all:", "--no-build-isolation", "--no-cache-dir", "--no-input",
             "-r", str(requirements)],
            env=self._env(workdir), what="installing with pip")


def _has_piptools() -> bool:
    import importlib.util

    return importlib.util.find_spec("piptools") is not None


def _new_wheel(outdir: Path, before: set[Path], sdist: Path) -> Path:
    new = sorted(set(outdir.glob("*.whl")) - before)
    if not new:
        raise NoWheelError(f"building {sdist.name} produced no wheel")
    return new[0]


def get_backend(name: str | None) -> Backend:
    """``uv`` when it runs (the default), else ``pip``; ``name`` forces one."""
    if name in (None, "auto"):
        uv = uv_binary()
        if uv:
            try:
                run([uv, "--version"], what="uv --version", timeout=30)
                return UvBackend(uv)
            except Exception:
                pass
        return PipBackend()
    if name == "uv":
        return UvBackend()
    if name == "pip":
        return PipBackend()
    raise UsageError(f"unknown backend {name!r}: use uv or pip")


