"""The bundle's tools/: what may be there, and why offpkg itself never runs it.

tools/ carries pip and uv wheels (and bootstrap.py, probe.py) for install.sh on a
host without offpkg. offpkg installs with its own uv and pip, so nothing from
tools/ runs under offpkg. install.sh runs them only after checking every file
against the manifest, and, with ``--trust``, the manifest against a signature.
The tool wheels are fetched from the index at bundle time, so no offpkg release
can know their hashes in advance: the signature is what ties them to the builder.
"""

from __future__ import annotations

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..manifest import Manifest

TOOL_NAMES = ("pip", "uv")
ROLES = ("requirement", "tool")


def check_tools(manifest: Manifest) -> list[str]:
    """Problems with the manifest's tool entries: only pip and uv wheels, only in tools/, named for what they are."""
    problems: list[str] = []
    for p in manifest.packages:
        if p.role not in ROLES:
            problems.append(f"{p.path}: role {p.role[:40]!r} is neither a requirement nor a tool")
            continue
        if p.role != "tool":
            continue
        if p.name not in TOOL_NAMES:
            problems.append(f"{p.path}: {p.name[:60]!r} is not a tool offpkg carries (only {', '.join(TOOL_NAMES)})")
        if p.path != f"tools/{p.filename}":
            problems.append(f"{p.path}: a tool wheel outside tools/")
        try:
            project = canonicalize_name(parse_wheel_filename(p.filename)[0])
        except InvalidWheelFilename:
            problems.append(f"{p.path}: not a valid wheel file name")
            continue
        if project != p.name:
            problems.append(f"{p.path}: the wheel is {project}, the manifest calls it {p.name[:60]!r}")
    return problems
