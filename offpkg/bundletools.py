"""The bundle's tools/: the newest pip and uv wheels that fit each target, for hosts without offpkg.

offpkg itself never runs them (offpkg.trust.tools); install.sh does, after checking them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from .errors import AuthError, NetworkError
from .net.index import DistFile, IndexClient
from .target import Target

if TYPE_CHECKING:
    from .bundle import BundleOptions


def _tool_selection(name: str, target: Target, client: IndexClient) -> DistFile | None:
    """The newest wheel of a tool (pip, uv) that fits the target, from the indexes."""
    try:
        files = client.files(name)
    except AuthError:
        raise  # a 401 is an auth error to report, not "no pip wheel found"
    except NetworkError as exc:
        # tools/ is optional: say why it is missing, with the real cause, and go on.
        client.notes.append(f"cannot look up {name} for the bundle's tools/: {exc.message}")
        return None
    ranks = target.tag_rank()
    best: tuple[Version, DistFile] | None = None
    pyver = Version(target.markers.get("python_full_version") or target.python_version + ".0")
    for f in files:
        if not f.is_wheel or f.yanked:
            continue
        nv = f.name_version()
        if not nv or nv[1].is_prerelease or target.wheel_rank(f.filename, ranks) is None:
            continue
        if f.requires_python:
            try:
                if pyver not in SpecifierSet(f.requires_python):
                    continue
            except InvalidSpecifier:
                continue  # a file whose metadata is broken is not a candidate
        if best is None or nv[1] > best[0]:
            best = (nv[1], f)
    return best[1] if best else None


def _ensurepip_wheel(target: Target) -> DistFile | None:
    """pip's wheel bundled with this interpreter's ensurepip: a fallback when the index has no pip
    (only where its Requires-Python admits the target's python: an old target gets none)."""
    try:
        import ensurepip

        from .pythons import wheel_requires_python

        bundled = Path(ensurepip.__file__).parent / "_bundled"
        for f in sorted(bundled.glob("pip-*.whl")):
            spec = wheel_requires_python(f)
            if spec and Version(target.python_version + ".0") not in SpecifierSet(spec):
                return None
            return DistFile(f.name, str(f), None, spec, False, f.stat().st_size, "ensurepip")
    except Exception:  # noqa: BLE001 - no usable ensurepip wheel here: tools/ goes without pip
        return None
    return None


def tool_selections(opts: BundleOptions, client: IndexClient) -> list[tuple[Target, DistFile | None, DistFile | None]]:
    """(target, pip wheel, uv wheel) for each target: the files of tools/ (looked up while the resolver runs)."""
    if not opts.tools:
        return []
    return [(t, _tool_selection("pip", t, client) or _ensurepip_wheel(t), _tool_selection("uv", t, client))
            for t in opts.targets]
