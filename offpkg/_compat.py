"""Shims for the Python versions offpkg runs on (3.9 and newer; see README "Where offpkg runs").

Only what the standard library lacks on the oldest supported version lives here,
each with the version that made it unnecessary, so the shim can go when that
version is dropped. Import from here, never guess with try/except elsewhere.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # 3.9, 3.10: the same parser as a package (the tomli dependency in pyproject.toml)
    import tomli as tomllib

__all__ = ["tomllib"]
