"""Round-trip editing of pip.conf (INI) and .condarc (YAML).

pip.conf is edited as lines: the lines offpkg changes are rewritten and every other
line (comments, unrelated keys, ordering, line endings) is kept byte for byte
(configparser validates it first; it cannot write comments back). .condarc is
edited with ruamel.yaml's round-trip mode, which keeps comments, key order and
quoting. Writes are atomic (temp sibling + ``os.replace``, file mode kept) and each
write first saves the previous file as a numbered backup, ``PATH.offpkg-backup.N``
(N grows; the highest is the newest). ``restore`` puts back the newest backup and
removes it, so repeated resets walk back through the history to the original.

The editors live in :mod:`.pipconf` (pip.conf) and :mod:`.condarcdoc` (.condarc); this module
holds what they share: reading, atomic writes, numbered backups, diffs. Where pip and
conda look for their configuration, and what is in effect, lives
in :mod:`offpkg.mirrors.conflookup`.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..redact import redact_text
# The two editors (re-exported: callers import them from here).
from .condarcdoc import CondarcDoc, UnsupportedYaml, YamlValue
from .pipconf import IniDoc, normalize_pip_key

__all__ = ["ABSENT_SUFFIX", "BACKUP_SUFFIX", "MAX_BACKUPS", "CondarcDoc", "FileChange", "IniDoc", "UnsupportedYaml",
           "YamlValue", "atomic_write", "backups", "make_backup", "normalize_pip_key", "read_text", "restore",
           "unified_diff"]

BACKUP_SUFFIX = ".offpkg-backup"
# An empty marker backup meaning "the file did not exist before offpkg wrote it".
ABSENT_SUFFIX = ".absent"
# Backups kept per file; the oldest (the user's original) is never pruned.
MAX_BACKUPS = 20



# --------------------------------------------------------------------------- files


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist. Line endings are kept."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", hint="fix its encoding, or pass another file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a configuration file") from None


def atomic_write(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` via a temp sibling and ``os.replace``.

    The previous file's permission bits are kept; a new file gets ``mode`` (or 0o644).
    A symlink is followed so the link itself stays in place.
    """
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        keep = 0o644 if mode is None else mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, keep)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def backups(path: Path) -> list[Path]:
    """The backups of ``path``, oldest first."""
    path = Path(path)
    found: list[tuple[int, Path]] = []
    pattern = re.compile(re.escape(path.name + BACKUP_SUFFIX) + r"\.(\d+)(" + re.escape(ABSENT_SUFFIX) + ")?$")
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def make_backup(path: Path) -> Path:
    """Save the current state of ``path`` as the newest numbered backup."""
    path = Path(path)
    existing = backups(path)
    n = 1
    if existing:
        n = int(existing[-1].name.split(BACKUP_SUFFIX + ".", 1)[1].split(".", 1)[0]) + 1
    old = read_text(path)
    if old is None:
        target = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{n}{ABSENT_SUFFIX}")
        atomic_write(target, "")
    else:
        target = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{n}")
        # Same mode as the original: a pip.conf with a token stays private.
        atomic_write(target, old, mode=stat.S_IMODE(path.stat().st_mode))
        os.chmod(target, stat.S_IMODE(path.stat().st_mode))
    # Prune the second-oldest ones; the first is the user's original file.
    existing = backups(path)
    while len(existing) > MAX_BACKUPS:
        existing[1].unlink()
        del existing[1]
    return target


def restore(path: Path) -> tuple[Path, str | None, str | None]:
    """Put back the newest backup of ``path``; returns (backup, text before, text after)."""
    path = Path(path)
    found = backups(path)
    if not found:
        raise InputError(f"no offpkg backup of {path}",
                         hint="offpkg keeps a backup only of files it wrote with `offpkg mirror use`")
    latest = found[-1]
    before = read_text(path)
    if latest.name.endswith(ABSENT_SUFFIX):
        after = None
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    else:
        after = read_text(latest) or ""
        atomic_write(path, after, mode=stat.S_IMODE(latest.stat().st_mode))
    latest.unlink()
    return latest, before, after


@dataclass
class FileChange:
    """A planned rewrite of one configuration file."""

    path: Path
    old: str | None
    new: str
    kind: str  # "pip" or "conda"
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        """A unified diff of the change, redacted (URL credentials and registered secrets)."""
        return unified_diff(self.path, self.old, self.new)

    def apply(self, *, mode: int = 0o644) -> Path | None:
        """Back up the current file, then write the new text. Returns the backup (None: no change)."""
        if not self.changed:
            return None
        backup = make_backup(self.path)
        atomic_write(self.path, self.new, mode=mode)
        return backup


def unified_diff(path: Path, old: str | None, new: str | None) -> str:
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"{path}" if old is not None else "/dev/null",
                                 tofile=f"{path}" if new is not None else "/dev/null")
    text = "".join(line if line.endswith(("\n", "\r")) else line + "\n" for line in lines)
    return redact_text(text)
