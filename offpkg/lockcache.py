"""Reusing a resolution when nothing it depends on changed (the warm bundle).

Resolving (uv or pip, then one index page per pin) is most of a warm
``offpkg bundle``'s time once the files are cached. The resolver's answer, the
pins, depends only on:

- the inputs: the requirement strings, the constraint files' bytes, the target,
  the sources (indexes, find-links, fallbacks), the backend and offpkg's version;
- the index state: what the project pages of those pins list.

The inputs make the key of a record in ``CACHE/locks/``. The index state is
checked, not assumed: the record holds a digest of each pinned project's page
(every file's name, hash, requires-python and yanked flag), and a reuse reads
the same pages again (through the page cache, which revalidates with the index
once its ``max-age`` runs out) and compares. A new release of any pinned
project, or of any top-level requirement (each is pinned too), changes its page
and so forces a fresh resolution. ``--refresh`` skips the record.

A record never decides which *file* is used: selection runs again on the pages
just read, exactly as after a fresh resolution.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import __version__

SCHEMA = 1


def key(requirements: Sequence[str], constraints: Iterable[Path], target_json: dict, sources: object,
        backend: str) -> str | None:
    """The record's key, or None when an input cannot be read (then nothing is reused)."""
    h = hashlib.sha256()
    try:
        parts: list[object] = [SCHEMA, __version__, list(requirements), target_json, backend, repr(sources)]
        for c in constraints:
            parts.append([str(c), hashlib.sha256(Path(c).read_bytes()).hexdigest()])
    except OSError:
        return None
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()


def page_digest(files: Iterable[object]) -> str:
    """What a project page says, in a digest: the files' names, hashes, requires-python, yanked."""
    rows = sorted((f.filename, f.sha256 or "", f.requires_python or "", bool(f.yanked))  # type: ignore[attr-defined]
                  for f in files)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


class LockCache:
    """``CACHE/locks/<key>.json``: ``{"pins": [[name, version], ...], "pages": {name: digest}}``."""

    def __init__(self, root: Path) -> None:
        self.root = root / "locks"
        self.hits = 0  # resolutions reused in this run (reported as ``reused_locks``)
        self._pending: list[tuple[str, list[tuple[str, str]], dict[str, str]]] = []

    def load(self, k: str | None) -> tuple[list[tuple[str, str]], dict[str, str]] | None:
        if not k:
            return None
        try:
            data = json.loads((self.root / f"{k}.json").read_text(encoding="utf-8"))
            pins = [(str(n), str(v)) for n, v in data["pins"]]
            pages = {str(n): str(d) for n, d in data["pages"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or unreadable: resolve as if it never existed
        return pins, pages

    def store(self, k: str | None, pins: Sequence[tuple[str, str]], pages: dict[str, str]) -> None:
        """Remember a record; :meth:`commit` writes it once the bundle it belongs to is complete
        (a run that fails later leaves nothing behind)."""
        if k:
            self._pending.append((k, list(pins), pages))

    def commit(self) -> None:
        """Write the remembered records atomically; never raises (a record is an optimisation)."""
        for k, pins, pages in self._pending:
            tmp = self.root / f".{k}.{os.getpid()}.tmp"
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps({"pins": [list(p) for p in pins], "pages": pages}), encoding="utf-8")
                os.replace(tmp, self.root / f"{k}.json")
            except OSError:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
        self._pending = []
