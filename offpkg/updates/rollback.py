"""``offpkg rollback --venv V``: put back the state before the last upgrade, exactly.

The newest generation is the venv directory as it was before that upgrade (the
same directory, renamed aside by the swap), so the rollback is one atomic exchange
of the two names; the state rolled back from is then removed. Nothing is
reinstalled and no file is rewritten, so the result is the earlier state bit for bit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..events import Events
from . import state
from .state import Layout, crash_point
from .sync import read_receipt, recover, state_id


@dataclass
class RollbackResult:
    venv: Path
    restored_from: Path
    bundle: str | None
    bundle_manifest_sha256: str | None
    generations_left: list[Path]
    kept_bytes: int
    recovered: list[str]
    seconds_swap: float = 0.0  # the exchange itself
    seconds_cleanup: float = 0.0  # removing the state rolled back from

    def to_json(self) -> dict[str, Any]:
        return {"venv": str(self.venv), "restored_from": str(self.restored_from), "bundle": self.bundle,
                "bundle_manifest_sha256": self.bundle_manifest_sha256,
                "generations_left": [str(g) for g in self.generations_left], "kept_bytes": self.kept_bytes,
                "recovered": self.recovered, "seconds_swap": round(self.seconds_swap, 4),
                "seconds_cleanup": round(self.seconds_cleanup, 4)}


def generations_info(venv: Path) -> dict[str, Any]:
    """The kept generations of a venv and what keeping them costs on disk."""
    layout = Layout.of(venv)
    gens = layout.generations() if layout.parent.is_dir() else []
    items = []
    for n, p in gens:
        r = read_receipt(p) or {}
        items.append({"generation": n, "path": str(p), "bundle": r.get("bundle"),
                      "bundle_manifest_sha256": r.get("bundle_manifest_sha256"), "installed": r.get("installed"),
                      "unique_bytes": state.unique_bytes(p)})
    return {"venv": str(layout.venv), "generations": items, "kept_bytes": sum(i["unique_bytes"] for i in items)}


def rollback(venv: Path, *, keep: int | None = None, events: Events | None = None) -> RollbackResult:
    events = events or Events()
    layout = Layout.of(venv)
    if not (layout.venv / "pyvenv.cfg").is_file():
        raise InputError(f"{venv} is not a virtual environment (no pyvenv.cfg)")
    if layout.venv.is_symlink():
        raise InputError(f"{venv} is a symbolic link; roll it back by its real path ({venv.resolve()})")
    with state.VenvLock(layout):
        recovered = recover(layout)
        gens = layout.generations()
        if not gens:
            raise InputError(f"{venv} has no earlier state to roll back to",
                             hint="offpkg keeps the state before each `install --upgrade` (see --keep); "
                                  "none is kept for this venv")
        _, gen = gens[-1]
        undone = state_id(layout.venv)
        state.write_journal(layout, op="rollback", gen=gen.name, undone_id=undone)
        events.stage("rollback", f"restoring {gen.name}")
        t0 = time.monotonic()
        if state.exchange(gen, layout.venv):
            state.fsync_dir(layout.parent)
            t1 = time.monotonic()
            crash_point("rollback-swapped")
            state.discard(gen, layout)  # now holds the state rolled back from
        else:
            aside = layout.trash()
            os.rename(layout.venv, aside)
            os.rename(gen, layout.venv)
            state.fsync_dir(layout.parent)
            t1 = time.monotonic()
            state.discard(aside, layout)
        t2 = time.monotonic()
        state.clear_journal(layout)
        events.done("rollback")
        left = [p for _, p in layout.generations()]
        if keep is not None:
            for p in left[:max(0, len(left) - keep)]:
                state.discard(p, layout)
            left = [p for _, p in layout.generations()]
        r = read_receipt(layout.venv) or {}
        return RollbackResult(layout.venv, gen, r.get("bundle"), r.get("bundle_manifest_sha256"), left,
                              sum(state.unique_bytes(p) for p in left), recovered, t1 - t0, t2 - t1)
