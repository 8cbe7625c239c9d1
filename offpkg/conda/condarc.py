"""The ``.condarc`` offpkg writes into an environment it unpacked offline.

Written whole from a template (the values are JSON strings, which are valid YAML): the
environment's own file is offpkg's, the user's previous one is kept as a backup. The
user's configuration files are edited by :mod:`offpkg.mirrors.confedit` instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


OFFLINE_CONDARC = """\
# Written by offpkg when it unpacked this environment on a host without internet.
# conda reads $CONDA_PREFIX/.condarc while this environment is active.
# offline: conda uses only packages already in its package cache, never the network.
# channels/default_channels empty: no channel is configured, so nothing is ever fetched.
offline: true
channels: {channels}
default_channels: []
custom_channels: {{}}
custom_multichannels: {{}}
auto_update_conda: false
notify_outdated_conda: false
report_errors: false
"""


def write_offline_condarc(prefix: Path, channels: list[str] | tuple[str, ...] = ()) -> tuple[Path, Path | None]:
    """Write ``prefix/.condarc`` for offline use; return (its path, backup of an existing one or None).

    ``channels`` (local ``file://`` channels, e.g. from ``offpkg mirror``) are the only
    ones conda may use; by default there are none.
    """
    from ..fsutil import write_text_atomic

    prefix = Path(prefix)
    rc = prefix / ".condarc"
    backup = None
    if rc.exists() or rc.is_symlink():
        backup = prefix / ".condarc.before-offpkg"
        os.replace(rc, backup)
    chan = "[" + ", ".join(json.dumps(c) for c in channels) + "]"  # JSON strings are valid YAML
    write_text_atomic(rc, OFFLINE_CONDARC.format(channels=chan), mode=0o644)
    return rc, backup
