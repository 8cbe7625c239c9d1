"""The pip backend: ``pip install --dry-run --report`` to resolve, ``pip wheel``, ``pip install --no-index``.

One resolution path: pip's own resolver, asked for a report of what it would install.
For a target other than this host (another Python or platform) the same command gets
``--python-version/--platform/--abi --only-binary :all:``; pip cannot build sdists for
another platform (pip#4289), so when it names a package with no wheel, the newest sdist
of it is built here and, if the wheel is pure Python, offered through a local folder on
the next round. That loop is part of the one path, not a second resolver.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from .._subprocess import isolated_env, run
from ..errors import InstallError, ResolutionError, SubprocessError
from ..target import Target
from .base import NOT_FOUND, Pin, Sources, new_wheel, resolution_error, tool_home

# Rounds of "build the sdist pip named, resolve again" before giving up.
_MAX_PREBUILD_ROUNDS = 20


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def make_venv(python: Path, venv: Path, *, with_pip: bool, system_site_packages: bool = False) -> None:
    """``python -m venv`` (``--without-pip`` unless ``with_pip``); SubprocessError when it fails."""
    extra = (["--system-site-packages"] if system_site_packages else []) + ([] if with_pip else ["--without-pip"])
    run([str(python), "-m", "venv", *extra, str(venv)], env=isolated_env(), what="creating the venv")


def has_ensurepip(python: Path) -> bool:
    """Debian/Ubuntu pythons without python3-venv cannot import ensurepip."""
    try:
        run([str(python), "-c", "import ensurepip"], env=isolated_env(), what="checking ensurepip", timeout=60)
        return True
    except SubprocessError:
        return False


def parse_report(text: str) -> list[Pin]:
    """The pins of a ``pip install --report`` document (``install[].metadata.{name,version}``)."""
    try:
        data = json.loads(text)
        return [Pin(canonicalize_name(i["metadata"]["name"]), i["metadata"]["version"]) for i in data["install"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ResolutionError(f"pip's resolution report is not what offpkg expects ({type(exc).__name__}: {exc})",
                              hint="use --backend uv, or a pip of version 23 or newer") from None


class PipBackend:
    name = "pip"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    def _env(self, workdir: Path, sources: Sources | None = None) -> dict[str, str]:
        return isolated_env(sources.env("pip") if sources else None, home=tool_home(workdir))

    def resolve(self, requirements: Path, constraints: list[Path], target: Target, sources: Sources,
                workdir: Path) -> list[Pin]:
        cross = tuple(target.tags) != tuple(Target.host().tags)
        prebuilt = workdir / "prebuilt"
        prebuilt.mkdir(exist_ok=True)
        tried: set[str] = set()
        for _round in range(_MAX_PREBUILD_ROUNDS):
            report = workdir / "pip-report.json"
            argv = [self.python, "-Im", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    "--report", str(report), "-r", str(requirements), "--no-input"]
            for c in constraints:
                argv += ["-c", str(c)]
            argv += sources.argv() + ["--find-links", str(prebuilt)]
            if cross:
                argv += ["--target", str(workdir / "pip-target"), "--only-binary", ":all:",
                         "--python-version", target.python_version,
                         "--implementation", {"cpython": "cp", "pypy": "pp"}.get(target.implementation, "cp"),
                         "--abi", target.abi]
                for p in target.platforms:  # every tag the host accepts (pip#10760)
                    argv += ["--platform", p]
            try:
                run(argv, env=self._env(workdir, sources), what="resolving with pip")
            except SubprocessError as exc:
                m = NOT_FOUND[0].search(exc.details or "")
                if cross and m and m.group(1) not in tried:
                    tried.add(m.group(1))
                    if self._prebuild(m.group(1), sources, prebuilt, workdir):
                        continue
                raise resolution_error(exc, "pip") from None
            return parse_report(report.read_text(encoding="utf-8"))
        raise ResolutionError(f"pip kept failing after building {_MAX_PREBUILD_ROUNDS} sdists for the target")

    def _prebuild(self, name: str, sources: Sources, outdir: Path, workdir: Path) -> bool:
        """Download the newest sdist of ``name`` and build it; True if a pure-Python wheel came out.

        False (and the resolver's own error is shown) when there is no sdist or it does not
        build: that error names the package, which says more than the build's.
        """
        dl = workdir / f"sdist-{canonicalize_name(name)}"
        dl.mkdir(exist_ok=True)
        try:
            run([self.python, "-Im", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl), name,
                 *sources.argv()], env=self._env(workdir, sources), what=f"downloading the sdist of {name}")
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
             *sources.argv()], env=self._env(workdir, sources), what=f"building a wheel from {sdist.name}",
            hint="the sdist needs build tools this machine lacks; build its wheel yourself and pass --find-links")
        return new_wheel(outdir, before, sdist)

    def create_venv(self, python: Path, venv: Path, workdir: Path, *, pip_wheel: Path | None = None,
                    system_site_packages: bool = False) -> None:
        """``python -m venv`` with pip from the interpreter's own ensurepip.

        Hosts without ensurepip need the uv backend: it installs the bundle's pip wheel as a
        package, where this backend would have to run it, and no code from a bundle runs.
        """
        try:
            make_venv(python, venv, with_pip=True, system_site_packages=system_site_packages)
            return
        except SubprocessError:
            # `python -m venv` hides ensurepip's own error: find the cause ourselves.
            if has_ensurepip(python):
                raise
        raise InstallError(f"{python} has no ensurepip, so the pip backend cannot create a venv with it",
                           hint="install python3-venv on this host; or install with offpkg's own uv (--backend uv) "
                                "a bundle that carries tools/ (its pip wheel is installed, not run)")

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path, *,
                break_system_packages: bool = False) -> None:
        run([str(python), "-Im", "pip", "install", "--no-index", "--find-links", str(wheels), "--require-hashes",
             "--only-binary", ":all:", "--no-cache-dir", "--no-input",
             *(["--break-system-packages"] if break_system_packages else []), "-r", str(requirements)],
            env=self._env(workdir), what="installing with pip")

    def check(self, python: Path, workdir: Path) -> None:
        run([str(python), "-Im", "pip", "check"], env=self._env(workdir), what="pip check",
            hint="the bundle's requirements are inconsistent; rebuild it")
