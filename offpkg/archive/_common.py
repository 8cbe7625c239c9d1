"""Constants and error helpers shared by the archive modules."""

from __future__ import annotations

import errno
import os
import tarfile

from ..errors import EnvironmentProblem


_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_HINT_UNSAFE = (
    "Nothing was extracted. The archive is corrupt or was built to attack the machine that unpacks it; "
    "obtain it again from a trusted source and compare its sha256 with the one you recorded."
)
_HINT_CORRUPT = "The file is damaged or incomplete (an interrupted copy?); copy it again and compare its sha256."


def _os_problem(e: OSError, what: str) -> EnvironmentProblem:
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return EnvironmentProblem(f"{what}: the disk is full", hint="Free some space and run the command again.")
    return EnvironmentProblem(f"{what}: {e.strerror or e}", hint="Check the permissions and free space there.")
