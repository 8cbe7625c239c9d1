"""pip and uv behind one small interface (the :class:`Backend` protocol in ``base``).

Both backends only *resolve* (name==version pins); choosing the exact file for
the target's tags, downloading and hashing is offpkg's own job (offpkg.resolve),
so both give bundles of the same shape. Every run is isolated from the user's
pip/uv configuration (``isolated_env``): indexes come only from offpkg's options,
and reach the tools through their environment, never their command line.

Modules: ``base`` (Sources, Pin, the protocol, output parsers), ``uv``, ``pip``.
"""

from __future__ import annotations

from .._subprocess import run
from ..errors import OffpkgError, UsageError
from .base import Backend, PackageResolutionError, Pin, Sources, parse_pins, resolution_error
from .pip import PipBackend
from .uv import UvBackend, uv_binary

__all__ = ["Backend", "PackageResolutionError", "Pin", "PipBackend", "Sources", "UvBackend", "get_backend",
           "parse_pins", "resolution_error", "uv_binary"]


def get_backend(name: str | None) -> Backend:
    """``uv`` when it runs (the default), else ``pip``; ``name`` forces one."""
    if name in (None, "auto"):
        uv = uv_binary()
        if uv:
            try:
                run([uv, "--version"], what="uv --version", timeout=30)
                return UvBackend(uv)
            except OffpkgError:
                pass  # a uv that does not run here (wrong arch, noexec mount): pip works everywhere
        return PipBackend()
    if name == "uv":
        return UvBackend()
    if name == "pip":
        return PipBackend()
    raise UsageError(f"unknown backend {name!r}: use uv or pip")
