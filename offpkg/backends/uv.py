"""The uv backend: ``uv pip compile`` to resolve, ``uv build``, ``uv pip install --offline``, ``uv pip check``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .._subprocess import isolated_env, run
from ..errors import EnvironmentProblem, SubprocessError
from ..target import Target
from .base import Pin, Sources, new_wheel, parse_pins, resolution_error, tool_home, uv_cache_dir


def uv_binary() -> str | None:
    """The uv executable that ships with offpkg (the ``uv`` package), or one on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return find_uv_bin()
    except (ImportError, OSError):  # the uv package is missing, or its binary is: PATH is the fallback
        return shutil.which("uv")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


class UvBackend:
    name = "uv"

    def __init__(self, uv: str | None = None) -> None:
        found = uv or uv_binary()
        if not found:
            raise EnvironmentProblem("uv is not available", hint="install offpkg with its dependencies, or use --backend pip")
        self.uv = found

    def _env(self, workdir: Path, sources: Sources | None = None) -> dict[str, str]:
        # uv keeps its own cache; share the user's so repeated resolutions are fast.
        extra = {"UV_CACHE_DIR": uv_cache_dir(), **(sources.env("uv") if sources else {})}
        return isolated_env(extra, home=tool_home(workdir))

    def _source_args(self, sources: Sources) -> list[str]:
        args = sources.argv()
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
            run(argv, env=self._env(workdir, sources), what="resolving with uv")
        except SubprocessError as exc:
            raise resolution_error(exc, "uv") from None
        return parse_pins((workdir / "uv-lock.txt").read_text(encoding="utf-8"))

    def build_wheel(self, sdist: Path, outdir: Path, sources: Sources, workdir: Path) -> Path:
        before = set(outdir.glob("*.whl"))
        run([self.uv, "build", "--wheel", "--out-dir", str(outdir), "--python", sys.executable, str(sdist),
             *sources.argv()], env=self._env(workdir, sources), what=f"building a wheel from {sdist.name}",
            hint="the sdist needs build tools this machine lacks; build its wheel yourself and pass --find-links")
        return new_wheel(outdir, before, sdist)

    def create_venv(self, python: Path, venv: Path, workdir: Path, *, pip_wheel: Path | None = None,
                    system_site_packages: bool = False) -> None:
        """``python -m venv --without-pip``, then pip from the bundle's wheel, installed by uv.

        ensurepip spends seconds (4.5 s for the gpu-ml benchmark) installing the pip it
        bundles; uv installs the bundle's pip wheel in a fraction of that, and needs no ensurepip.
        Without a pip wheel, the venv is made by ``python -m venv`` with ensurepip.
        """
        if pip_wheel is None or not pip_wheel.is_file():
            from .pip import make_venv

            make_venv(python, venv, with_pip=True, system_site_packages=system_site_packages)
            return
        from .pip import make_venv

        make_venv(python, venv, with_pip=False, system_site_packages=system_site_packages)
        # The wheel's path, not tools/ as a find-links folder: tools/ holds the uv wheel too.
        run([self.uv, "pip", "install", "--offline", "--no-index", "--no-deps", "--python", str(venv_python(venv)),
             str(pip_wheel)], env=self._env(workdir), what="installing pip from the bundle with uv")

    def install(self, python: Path, wheels: Path, requirements: Path, workdir: Path, *,
                break_system_packages: bool = False) -> None:
        # uv installs into a non-venv interpreter named with --python without --system.
        run([self.uv, "pip", "install", "--offline", "--no-index", "--find-links", str(wheels), "--require-hashes",
             "--only-binary", ":all:", *(["--break-system-packages"] if break_system_packages else []),
             "--python", str(python), "-r", str(requirements)],
            env=self._env(workdir), what="installing with uv")

    def check(self, python: Path, workdir: Path) -> None:
        # The same check as `pip check`; uv's takes 0.06 s where pip's takes 0.7 s.
        run([self.uv, "pip", "check", "--python", str(python)], env=self._env(workdir), what="pip check",
            hint="the bundle's requirements are inconsistent; rebuild it")
