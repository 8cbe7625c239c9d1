"""The binary prefix scan: is an old prefix (or a placeholder) left in a file after conda-unpack?

Streams the file in chunks (a 1 GB library is never read whole), and ignores occurrences
that lie inside the new prefix (the old one may be a prefix of the new one: /opt/env, /opt/env2).
"""

from __future__ import annotations

from pathlib import Path

_CHUNK = 1 << 20


def leftover(path: Path, needles: list[str], new_prefix: str) -> str | None:
    """The first of ``needles`` found in ``path`` outside occurrences of ``new_prefix`` (streamed)."""
    mask = new_prefix.encode()
    bneedles = [n.encode() for n in needles if len(n) > 1]
    if not bneedles:
        return None
    keep = max(len(mask), *(len(n) for n in bneedles))
    with open(path, "rb") as f:
        buf = b""
        base = 0  # absolute offset of buf[0]
        judged = 0  # absolute offset up to which needle starts have been judged
        while True:
            chunk = f.read(_CHUNK)
            buf += chunk
            # Only judge starts that leave `keep` bytes after them (unless at EOF), so a
            # needle and any new-prefix occurrence covering it are both fully in buf.
            limit = len(buf) if not chunk else len(buf) - keep
            for n in bneedles:
                i = buf.find(n, judged - base)
                while 0 <= i < limit:
                    if not _masked(buf, i, len(n), mask):
                        return n.decode(errors="replace")
                    i = buf.find(n, i + 1)
            judged = max(judged, base + limit)
            if not chunk:
                return None
            drop = max(0, judged - base - keep)
            buf, base = buf[drop:], base + drop


def _masked(buf: bytes, i: int, n: int, mask: bytes) -> bool:
    """Whether buf[i:i+n] lies inside an occurrence of ``mask`` (the new prefix)."""
    if len(mask) < n:
        return False
    lo = max(0, i + n - len(mask))
    j = buf.find(mask, lo, i + len(mask))
    while j != -1 and j <= i:
        if j + len(mask) >= i + n:
            return True
        j = buf.find(mask, j + 1, i + len(mask))
    return False
