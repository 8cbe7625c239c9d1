"""Terminal output: the only place (with cli/__init__.py and cli/commands/) that prints.

rich gives progress bars, spinners and tables that degrade to plain text when
stdout is not a terminal; it honours NO_COLOR. Progress is hidden when not on a
terminal, in CI (``CI`` set), with ``--quiet`` or ``--json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)
from rich import box as rich_box
from rich.table import Table

from ..redact import redact_text

SCHEMA_VERSION = 1


@dataclass
class UIState:
    quiet: bool = False
    verbose: int = 0
    json: bool = False
    # A JSON document was written to stdout: the boundary never adds a second one.
    emitted: bool = False


state = UIState()
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def interactive() -> bool:
    return err.is_terminal and not os.environ.get("CI") and not state.quiet and not state.json


def info(msg: str) -> None:
    if not state.quiet and not state.json:
        err.print(redact_text(msg), markup=False)


def detail(msg: str) -> None:
    if state.verbose and not state.json:
        err.print(redact_text(msg), markup=False, style="dim")


def warn(msg: str) -> None:
    err.print("[yellow]warning:[/] " + _esc(redact_text(msg)))


def result(msg: str) -> None:
    """Human-readable result text on stdout (suppressed under --json)."""
    if not state.json:
        out.print(redact_text(msg), markup=False)


def emit_json(command: str, payload: dict[str, Any]) -> None:
    doc = {"schema_version": SCHEMA_VERSION, "command": command, **payload}
    sys.stdout.write(redact_text(json.dumps(doc, indent=2, sort_keys=True, default=str)) + "\n")
    sys.stdout.flush()
    state.emitted = True


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    if state.json:
        return
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
              show_header=any(columns), box=None if not any(columns) else rich_box.SIMPLE_HEAD)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[redact_text(str(x)) for x in r])
    out.print(t)


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


class Reporter:
    """Progress events from the core (which never prints) rendered with rich."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}

    def start(self, key: str, description: str, total: int | None = None, *, bytes_: bool = False) -> None:
        if not interactive():
            detail(description)
            return
        if self._progress is None:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                      console=err, transient=True)
            self._progress.start()
        self._tasks[key] = self._progress.add_task(description, total=total)

    def advance(self, key: str, amount: int = 1) -> None:
        if self._progress is not None and key in self._tasks:
            self._progress.advance(self._tasks[key], amount)

    def total(self, key: str, total: int) -> None:
        if self._progress is not None and key in self._tasks:
            self._progress.update(self._tasks[key], total=total)

    def finish(self, key: str) -> None:
        if self._progress is not None and key in self._tasks:
            self._progress.remove_task(self._tasks.pop(key))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def reporter() -> Iterator[Reporter]:
    r = Reporter()
    try:
        yield r
    finally:
        r.close()


@contextmanager
def spinner(message: str) -> Iterator[None]:
    if interactive():
        with err.status(message):
            yield
    else:
        detail(message)
        yield


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
