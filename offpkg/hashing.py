"""Streaming sha256: never a whole file in memory; files hashed in parallel threads.

hashlib releases the GIL for large updates, so threads give real parallelism.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 << 20  # 4 MiB: hashlib releases the GIL for the whole buffer; few Python-level iterations
PROGRESS_EVERY = 32 << 20  # progress callbacks cost a lock and a redraw: report in 32 MiB steps


def sha256_file(path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Return (hex sha256, size) of ``path``.

    One preallocated buffer, ``readinto`` and a memoryview: no per-chunk allocation or copy.
    """
    h = hashlib.sha256()
    size = 0
    pending = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n] if n < CHUNK else view)
            size += n
            if progress:
                pending += n
                if pending >= PROGRESS_EVERY:
                    progress(pending)
                    pending = 0
    if progress and pending:
        progress(pending)
    return h.hexdigest(), size


def default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 2)))


def sha256_many(
    paths: Iterable[Path], *, workers: int | None = None, progress: Callable[[int], None] | None = None
) -> dict[Path, tuple[str, int]]:
    """Hash many files in parallel; returns {path: (sha256, size)} in the order given."""
    paths = list(paths)
    # Largest first (LPT scheduling): a bundle's few huge wheels (torch, cudnn) hashed
    # last would leave the other threads idle; one file is hashed by one thread only.
    order = sorted(paths, key=_size, reverse=True)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        done = dict(zip(order, pool.map(lambda p: sha256_file(p, progress), order)))
    return {p: done[p] for p in paths}


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # hashing it raises the real error
