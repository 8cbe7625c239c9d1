"""Serving a verified file: exactly the manifest's bytes, or nothing complete (``offpkg serve``).

``serve DIR`` verifies the bundle once, then answers requests for hours. A file can be
swapped or grown in the meantime; the HTTP response must still carry exactly the
verified bytes. So each file is opened component by component without following
symlinks (``O_NOFOLLOW`` under the bundle directory opened once at start), its size
checked with ``fstat``, at most the listed size is sent, and it is hashed while being
sent: the last chunk is held back until the sha256 matches. On any mismatch the
connection is closed short of ``Content-Length``, so a client sees a truncated
download, never a wrong file and never a smuggled second response.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable

from ..errors import InputError
from ..manifest import Manifest

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CHUNK = 1 << 20


def open_root(path: str) -> int:
    """The bundle directory, opened once: later swaps of the path do not change what is served."""
    return os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)


def open_in(root_fd: int, rel: str) -> int | None:
    """A regular file at the bundle-relative ``rel``, no symlink followed on the way; None if there is none."""
    parts = rel.split("/")
    fds: list[int] = []
    try:
        cur = root_fd
        for d in parts[:-1]:
            cur = os.open(d, os.O_RDONLY | _O_NOFOLLOW | _O_DIRECTORY | _O_CLOEXEC, dir_fd=cur)
            fds.append(cur)
        fd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=cur)
    except OSError:
        return None
    finally:
        for f in fds:
            os.close(f)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def send_exact(fd: int, size: int, sha256: str, write: Callable[[bytes], object]) -> str | None:
    """Send the file's first ``size`` bytes if they hash to ``sha256``; else the problem (the last chunk unsent)."""
    h = hashlib.sha256()
    held = b""
    total = 0
    while total <= size:
        chunk = os.read(fd, min(_CHUNK, size + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        h.update(chunk)
        if held:
            write(held)
        held = chunk
    if total != size:
        return f"is {'larger' if total > size else 'smaller'} than the {size} bytes that were verified"
    if h.hexdigest() != sha256:
        return "changed since it was verified (sha256 differs)"
    if held:
        write(held)
    return None


def changed_since_verified(kept: dict[str, bytes], manifest: Manifest) -> bool:
    """Whether the manifest or SHA256SUMS read for serving differ from what was verified."""
    data = kept.get("offpkg.json")
    try:
        if data is None or Manifest.loads(data) != manifest:
            return True
    except InputError:
        return True
    want = {p: sha for p, (sha, _) in manifest.all_entries().items()}
    want["offpkg.json"] = hashlib.sha256(data).hexdigest()
    sums = kept.get("SHA256SUMS")
    if sums is None:
        return False
    got = {}
    for line in sums.decode("utf-8", "replace").splitlines():
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if m is None:
            return True
        got[m.group(2)] = m.group(1)
    return got != want
