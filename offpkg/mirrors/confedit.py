"""Round-trip editing of pip.conf (INI) and .condarc (YAML).

pip.conf is edited as lines: the lines offpkg changes are rewritten and every other
line (comments, unrelated keys, ordering, line endings) is kept byte for byte
(configparser validates it first; it cannot write comments back). .condarc is
edited with ruamel.yaml's round-trip mode, which keeps comments, key order and
quoting. Writes are atomic (temp sibling + ``os.replace``, file mode kept) and each
write first saves the previous file as a numbered backup, ``PATH.offpkg-backup.N``
(N grows; the highest is the newest). ``restore`` puts back the newest backup and
removes it, so repeated resets walk back through the history to the original.

Where pip and conda look for their configuration, and what is in effect, lives
in :mod:`offpkg.mirrors.conflookup`.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import InputError
from ..redact import redact_text

BACKUP_SUFFIX = ".offpkg-backup"
# An empty marker backup meaning "the file did not exist before offpkg wrote it".
ABSENT_SUFFIX = ".absent"
# Backups kept per file; the oldest (the user's original) is never pruned.
MAX_BACKUPS = 20

YamlValue = Union[str, bool, int, None, list, dict]


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


def _newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _strip_nl(line: str) -> str:
    return line.rstrip("\r\n")


# --------------------------------------------------------------------------- INI (pip.conf)

_SECTION_RE = re.compile(r"\[(?P<name>[^\]]+)\]")
_OPTION_RE = re.compile(r"(?P<key>[^\s=:][^=:]*?)(?P<sep>\s*[=:]\s*)(?P<value>.*)$")


def normalize_pip_key(name: str) -> str:
    """pip treats ``index_url``, ``Index-URL`` and ``index-url`` alike."""
    return name.strip().lower().replace("_", "-")


class IniDoc:
    """A pip.conf held as lines; ``set``/``remove`` touch only the lines of one option."""

    def __init__(self, text: str, *, path: Path | str = "pip.conf") -> None:
        self.path = path
        try:
            parser = configparser.RawConfigParser()
            parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            raise InputError(f"{path} is not a valid pip configuration file: {_one_line(str(exc))}",
                             hint="fix the file (pip would refuse it too), or pass another one") from None
        self.newline = _newline_of(text)
        self.lines = text.splitlines(keepends=True)

    def text(self) -> str:
        return "".join(self.lines)

    # Structure -------------------------------------------------------------

    def _sections(self) -> list[tuple[str, int, int]]:
        """(name, header index, end index exclusive) of every section."""
        out: list[tuple[str, int, int]] = []
        for i, line in enumerate(self.lines):
            if line[:1].isspace():
                continue
            m = _SECTION_RE.match(line.strip())
            if m:
                if out:
                    out[-1] = (out[-1][0], out[-1][1], i)
                out.append((m.group("name").strip(), i, len(self.lines)))
        return out

    def _options(self, start: int, end: int) -> list[tuple[str, int, int]]:
        """(normalized key, first line, end exclusive) of options in lines [start, end)."""
        out: list[tuple[str, int, int]] = []
        i = start
        while i < end:
            line = _strip_nl(self.lines[i])
            s = line.strip()
            if not s or s.startswith(("#", ";")) or line[:1].isspace():
                i += 1
                continue
            m = _OPTION_RE.match(line)
            if not m:
                i += 1
                continue
            j = i + 1
            # Continuation lines are indented; indented comments may sit among them.
            while j < end:
                nxt = _strip_nl(self.lines[j])
                if nxt.strip() and nxt[:1].isspace():
                    j += 1
                    continue
                break
            while j - 1 > i and _strip_nl(self.lines[j - 1]).strip().startswith(("#", ";")):
                j -= 1
            out.append((normalize_pip_key(m.group("key")), i, j))
            i = j
        return out

    def _find(self, section: str, key: str) -> tuple[int, int] | None:
        for name, hstart, hend in self._sections():
            if name == section:
                for k, s, e in self._options(hstart + 1, hend):
                    if k == normalize_pip_key(key):
                        return s, e
        return None

    def sections(self) -> list[str]:
        return [name for name, _, _ in self._sections()]

    def get(self, section: str, key: str) -> str | None:
        """The raw value (continuation lines joined with newlines), or None."""
        where = self._find(section, key)
        if where is None:
            return None
        s, e = where
        m = _OPTION_RE.match(_strip_nl(self.lines[s]))
        assert m is not None
        parts = [m.group("value").strip()]
        for line in self.lines[s + 1:e]:
            t = _strip_nl(line).strip()
            if t and not t.startswith(("#", ";")):
                parts.append(t)
        return "\n".join(p for p in parts if p)

    def get_list(self, section: str, key: str) -> list[str]:
        """A whitespace-separated multi-value option (trusted-host, extra-index-url) as a list."""
        raw = self.get(section, key)
        return raw.split() if raw else []

    # Changes ---------------------------------------------------------------

    def set(self, section: str, key: str, value: str | list[str]) -> None:
        """Set ``key`` in ``section``; the key's original spelling and separator are kept."""
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            self.remove(section, key)
            return
        nl = self.newline
        where = self._find(section, key)
        if where is not None:
            s, e = where
            m = _OPTION_RE.match(_strip_nl(self.lines[s]))
            assert m is not None
            head = m.group("key") + m.group("sep")
            if not head.endswith((" ", "\t")) and not m.group("value"):
                head += " "
            new = [head + values[0] + nl] + [" " * 4 + v + nl for v in values[1:]]
            if self.lines[e - 1:e] and not self.lines[e - 1].endswith(("\n", "\r")):
                # The last line of the file had no newline: keep it that way.
                new[-1] = new[-1].rstrip("\r\n")
            self.lines[s:e] = new
            return
        new = [f"{key} = {values[0]}{nl}"] + [" " * 4 + v + nl for v in values[1:]]
        for name, hstart, hend in self._sections():
            if name == section:
                opts = self._options(hstart + 1, hend)
                at = opts[-1][2] if opts else hstart + 1
                if at > 0 and not self.lines[at - 1].endswith(("\n", "\r")):
                    self.lines[at - 1] += nl
                self.lines[at:at] = new
                return
        # No such section: append it at the end, after one blank line.
        if self.lines and not self.lines[-1].endswith(("\n", "\r")):
            self.lines[-1] += nl
        if self.lines and self.lines[-1].strip():
            self.lines.append(nl)
        self.lines += [f"[{section}]{nl}"] + new

    def remove(self, section: str, key: str) -> bool:
        where = self._find(section, key)
        if where is None:
            return False
        s, e = where
        del self.lines[s:e]
        return True


def _one_line(s: str) -> str:
    return " ".join(s.split())


# --------------------------------------------------------------------------- .condarc (YAML, round-trip)


class UnsupportedYaml(ValueError):
    """A value conda would not accept where offpkg reads it (e.g. a nested mapping as a channel URL)."""


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")  # round-trip: comments, key order, quoting and flow/block style are kept
    y.preserve_quotes = True
    y.width = 4096  # never fold a long URL
    y.indent(mapping=2, sequence=4, offset=2)  # new lists as `conda config` writes them: "  - item"
    return y


def _plain(value: Any, key: str) -> YamlValue:
    """A loaded value as plain Python (str, bool, int, None, list, dict); UnsupportedYaml for others."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, (list, dict)):
                raise UnsupportedYaml(f"{key}: a nested collection in a list")
            out.append(_plain(v, key))
        return out
    if isinstance(value, dict):
        out_map: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, (list, dict)):
                raise UnsupportedYaml(f"{key}: {k} holds a nested collection, not a single value")
            out_map[str(k)] = _plain(v, key)
        return out_map
    raise UnsupportedYaml(f"{key}: a value of type {type(value).__name__}")


class CondarcDoc:
    """A .condarc edited with ruamel.yaml's round-trip mode.

    The file is parsed whole (real YAML: anchors, flow and block style, quoting). Only the
    top-level keys offpkg changes are written again, by ruamel.yaml with their comments; every
    other top-level block is kept byte for byte from the original text (ruamel.yaml alone would
    re-indent every list to one style). Line endings (LF or CRLF) are kept.
    """

    def __init__(self, text: str, *, path: Path | str = ".condarc") -> None:
        from ruamel.yaml.error import YAMLError

        self.path = path
        self.newline = _newline_of(text)
        self.lines = text.splitlines(keepends=True)
        if any("\t" in ln[: len(ln) - len(ln.lstrip())] for ln in self.lines):
            raise InputError(f"{path} is not valid YAML: it indents with tabs",
                             hint="replace the tabs with spaces (conda would refuse the file too)")
        try:
            data = _yaml().load(text.replace("\r\n", "\n")) if text.strip() else None
        except YAMLError as exc:
            raise InputError(f"{path} is not valid YAML: {_one_line(str(exc))[:300]}",
                             hint="fix the file (conda would refuse it too), or pass another one") from None
        if data is None:
            from ruamel.yaml.comments import CommentedMap

            data = CommentedMap()
        if not isinstance(data, dict):
            raise InputError(f"{path} is not a conda configuration: its top level is not a mapping",
                             hint="a .condarc holds `key: value` settings; fix it or pass another file")
        self._data = data
        # Each top-level key's original lines: from its own line to the next key's (trailing
        # comments and blanks included); what precedes the first key is the header.
        starts = [(str(k), data.lc.key(k)[0]) for k in data] if len(data) else []
        self._blocks: dict[str, list[str]] = {}
        for i, (k, line) in enumerate(starts):
            end = starts[i + 1][1] if i + 1 < len(starts) else len(self.lines)
            self._blocks[k] = self.lines[line:end]
        self._header = self.lines[:starts[0][1]] if starts else list(self.lines)
        self._touched: set[str] = set()
        # An alias (*name) may refer to an anchor in a block offpkg rewrites: then the whole
        # document is written by ruamel.yaml, which keeps anchors and aliases consistent.
        self._aliases = bool(re.search(r"(?:^|[\s:,\[{-])\*[^\s,\]}]+", text.replace("\r\n", "\n"), re.M))

    def _dump_all(self) -> str:
        import io

        y = _yaml()
        offset = _seq_offset(self.lines)
        if offset is not None:
            y.indent(mapping=2, sequence=offset + 2, offset=offset)
        buf = io.StringIO()
        y.dump(self._data, buf)
        text = "" if not len(self._data) else buf.getvalue()
        return text.replace("\n", "\r\n") if self.newline == "\r\n" else text

    def text(self) -> str:
        if not self._touched:
            return "".join(self.lines)
        if self._aliases:
            return self._dump_all()
        out = list(self._header)
        for k in self._data:
            key = str(k)
            if key in self._blocks and key not in self._touched:
                chunk = self._blocks[key]
            else:
                chunk = self._dump(k)
            if out and not out[-1].endswith(("\n", "\r")):
                out[-1] += self.newline
            out += chunk
        return "".join(out)

    def _dump(self, key: Any) -> list[str]:
        """One top-level key written by ruamel.yaml, in the list style its original block used."""
        import io

        from ruamel.yaml.comments import CommentedMap

        one = CommentedMap()
        one[key] = self._data[key]
        if key in self._data.ca.items:  # the comment on the key's own line
            one.ca.items[key] = self._data.ca.items[key]
        y = _yaml()
        offset = _seq_offset(self._blocks.get(str(key), []))
        if offset is not None:
            y.indent(mapping=2, sequence=offset + 2, offset=offset)
        buf = io.StringIO()
        y.dump(one, buf)
        text = buf.getvalue()
        if self.newline == "\r\n":
            text = text.replace("\n", "\r\n")
        return text.splitlines(keepends=True)

    def keys(self) -> list[str]:
        return [str(k) for k in self._data]

    def get(self, key: str) -> YamlValue:
        """The value of a top-level key as plain Python (None when absent). Raises UnsupportedYaml."""
        return _plain(self._data.get(key), key)

    def set(self, key: str, value: YamlValue) -> None:
        """Set a top-level key, in place if present, else appended at the end."""
        self._data[key] = value
        self._touched.add(key)

    def remove(self, key: str) -> bool:
        if key not in self._data:
            return False
        del self._data[key]
        self._touched.add(key)
        return True

    def update_map(self, key: str, updates: Mapping[str, Any], remove: Iterable[str] = ()) -> None:
        """Set and remove entries of a top-level mapping; the entries not named (and their
        comments) stay as they are; a mapping left empty is removed."""
        drop = set(remove) - set(updates)
        current = self._data.get(key)
        if not isinstance(current, dict):
            if current is not None:
                raise UnsupportedYaml(f"{key}: not a mapping")
            if updates:
                self.set(key, dict(updates))
            return
        self.get(key)  # raises UnsupportedYaml unless it is a flat mapping
        for k, v in updates.items():
            if current.get(k) != v:
                current[k] = v
                self._touched.add(key)
        for k in drop:
            if k in current:
                del current[k]
                self._touched.add(key)
        if not current:
            self.remove(key)


def _seq_offset(block: list[str]) -> int | None:
    """How far a block list's dashes sit right of their key (``key:`` then ``  - x``: 2), or None."""
    key_indent = None
    for line in block:
        t = line.rstrip("\r\n")
        stripped = t.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(t) - len(stripped)
        if stripped.startswith("- ") or stripped == "-":
            return max(0, indent - (key_indent or 0)) if key_indent is not None else None
        key_indent = indent if stripped.rstrip().endswith(":") else None
    return None
