"""What a run made, so that only that is ever removed; one run at a time per venv or prefix.

Every install into a destination (a venv, a conda prefix) runs under a file lock
beside it (``.NAME.offpkg-lock``), so a second run waits up to a bound
(``OFFPKG_LOCK_TIMEOUT`` seconds, default 60) and then exits 9 with a clear message.

Under the lock the run writes a *run record* beside the destination
(``.NAME.offpkg-run.json``: run id, pid, host, action, bundle, and for an upgrade the
packages before it). A destination the run creates also gets a marker inside
(``.offpkg-incomplete``) holding the same run id. On success both are removed.

A record found while holding the lock belongs to a run that was killed (the kernel
released its lock). Only then, and only when the marker inside names that record's
run id, is the destination removed: a venv that merely holds a file called
``.offpkg-incomplete``, or one an interrupted *upgrade* was writing into, is never
deleted. Venvs cannot be built in a temporary sibling and renamed (their scripts
hold absolute paths), hence the marker instead.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import LockError
from .fsutil import write_text_atomic

MARKER = ".offpkg-incomplete"
LOCK_TIMEOUT_ENV = "OFFPKG_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0


def lock_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.offpkg-lock"


def record_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.offpkg-run.json"


def lock_timeout() -> float:
    """Seconds a run waits for another run's lock (``OFFPKG_LOCK_TIMEOUT``; 0 = do not wait)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        value = DEFAULT_LOCK_TIMEOUT
    return max(0.0, value)


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """Hold the lock of ``dest`` (a venv or prefix path) for the block; LockError (exit 9) after the bound."""
    from filelock import FileLock, Timeout

    dest.parent.mkdir(parents=True, exist_ok=True)
    timeout = lock_timeout()
    lock = FileLock(str(lock_path(dest)), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        holder = read_record(dest)
        who = f" (pid {holder.pid} on {holder.host}, {holder.action} from {holder.bundle})" if holder else ""
        raise LockError(f"{dest} is in use by another offpkg run{who}; waited {timeout:.0f} s",
                        hint=f"wait for that run to finish and try again, or set {LOCK_TIMEOUT_ENV}=SECONDS "
                             "to wait longer") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class RunRecord:
    """What one run is doing to a destination; written before it touches it."""

    action: str  # "create" | "upgrade"
    dest: str
    bundle: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    before: list[str] = field(default_factory=list)  # upgrade: name==version installed before it

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}, from {self.bundle}"


def read_record(dest: Path) -> RunRecord | None:
    """The run record beside ``dest``, or None (absent, unreadable or not one of ours)."""
    try:
        data: Any = json.loads(record_path(dest).read_text(encoding="utf-8"))
        return RunRecord(**{k: data[k] for k in ("action", "dest", "bundle", "run", "pid", "host", "started")},
                         before=[str(b) for b in data.get("before", [])])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def begin(dest: Path, action: str, bundle: Path | str, before: list[str] | None = None) -> RunRecord:
    """Write this run's record beside ``dest`` (call it holding the lock, before touching ``dest``)."""
    rec = RunRecord(action=action, dest=str(dest), bundle=str(bundle), before=list(before or []))
    write_text_atomic(record_path(dest), json.dumps(asdict(rec), indent=2, sort_keys=True) + "\n", mode=0o600)
    return rec


def make_dir(dest: Path, rec: RunRecord) -> None:
    """Create ``dest`` (it must not exist, or be an empty folder) and mark it as this run's."""
    try:
        os.mkdir(dest)
    except FileExistsError:
        if not dest.is_dir() or dest.is_symlink() or any(dest.iterdir()):
            raise
    mark(dest, rec)


def mark(dest: Path, rec: RunRecord) -> None:
    """Put run ``rec``'s marker into ``dest``, a folder this run made."""
    (dest / MARKER).write_text(json.dumps({"offpkg_run": rec.run}) + "\n", encoding="utf-8")


def made_by(dest: Path, rec: RunRecord) -> bool:
    """Whether ``dest`` carries the marker of run ``rec`` (a marker of anyone else proves nothing)."""
    try:
        return json.loads((dest / MARKER).read_text(encoding="utf-8")).get("offpkg_run") == rec.run
    except (OSError, ValueError, AttributeError):
        return False


def end(dest: Path, rec: RunRecord) -> None:
    """The run finished: drop its marker (if it made ``dest``) and its record."""
    if rec.action == "create" and made_by(dest, rec):
        (dest / MARKER).unlink()
    clear(dest, rec)


def clear(dest: Path, rec: RunRecord) -> None:
    """Remove the record of run ``rec`` (never another run's)."""
    current = read_record(dest)
    if current is not None and current.run == rec.run:
        record_path(dest).unlink(missing_ok=True)
