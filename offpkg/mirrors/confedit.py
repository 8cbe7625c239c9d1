"""Round-trip editing of pip.conf (INI) and .condarc (a YAML subset).

Both editors work on lines: the lines offpkg changes are rewritten and every
other line (comments, unrelated keys, ordering, line endings) is kept byte for
byte. Writes are atomic (temp sibling + ``os.replace``, file mode kept) and each
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


# --------------------------------------------------------------------------- .condarc (YAML subset)

_TOP_KEY_RE = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)\s*:(?=\s|$)(?P<rest>.*)$")


class UnsupportedYaml(ValueError):
    """A value outside the small YAML subset offpkg reads (nested blocks, anchors, block scalars)."""


class CondarcDoc:
    """A .condarc held as lines. Only the top-level keys offpkg is asked to change are
    rewritten; other keys, comments and blank lines stay exactly as they were."""

    def __init__(self, text: str, *, path: Path | str = ".condarc") -> None:
        self.path = path
        self.newline = _newline_of(text)
        self.lines = text.splitlines(keepends=True)
        if any("\t" in ln[: len(ln) - len(ln.lstrip())] for ln in self.lines):
            raise InputError(f"{path} is not valid YAML: it indents with tabs",
                             hint="replace the tabs with spaces (conda would refuse the file too)")

    def text(self) -> str:
        return "".join(self.lines)

    def _blocks(self) -> list[tuple[str, int, int]]:
        """(key, first line, end exclusive) of each top-level key; trailing blank and
        comment lines are not part of a block (they belong to what follows)."""
        starts: list[tuple[str, int]] = []
        for i, line in enumerate(self.lines):
            if line[:1] in (" ", "-", "#", "\r", "\n", "") or line.startswith(("---", "...")):
                continue
            m = _TOP_KEY_RE.match(_strip_nl(line))
            if m:
                starts.append((m.group("key"), i))
        out = []
        for n, (key, s) in enumerate(starts):
            e = starts[n + 1][1] if n + 1 < len(starts) else len(self.lines)
            # A column-0 line that is not a key, list item or comment ends the block
            # (e.g. a document marker); so do trailing blanks and comments.
            j = s + 1
            while j < e:
                t = self.lines[j]
                if t[:1] in (" ", "-", "#", "\r", "\n"):
                    j += 1
                    continue
                break
            e = j
            while e - 1 > s and (not self.lines[e - 1].strip() or self.lines[e - 1].strip().startswith("#")):
                e -= 1
            out.append((key, s, e))
        return out

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._blocks()]

    def _find(self, key: str) -> tuple[int, int] | None:
        for k, s, e in self._blocks():
            if k == key:
                return s, e
        return None

    def get(self, key: str) -> YamlValue:
        """The parsed value of a top-level key (None when absent). Raises UnsupportedYaml."""
        where = self._find(key)
        if where is None:
            return None
        s, e = where
        m = _TOP_KEY_RE.match(_strip_nl(self.lines[s]))
        assert m is not None
        return parse_value(m.group("rest"), [_strip_nl(x) for x in self.lines[s + 1:e]])

    def set(self, key: str, value: YamlValue) -> None:
        """Set a top-level key, replacing its block in place or appending it at the end."""
        nl = self.newline
        new = [line + nl for line in dump_key(key, value)]
        where = self._find(key)
        if where is not None:
            s, e = where
            if not self.lines[e - 1].endswith(("\n", "\r")):
                new[-1] = new[-1].rstrip("\r\n")
            self.lines[s:e] = new
            return
        if self.lines and not self.lines[-1].endswith(("\n", "\r")):
            self.lines[-1] += nl
        self.lines += new

    def remove(self, key: str) -> bool:
        where = self._find(key)
        if where is None:
            return False
        s, e = where
        del self.lines[s:e]
        return True

    def update_map(self, key: str, updates: Mapping[str, Any], remove: Iterable[str] = ()) -> None:
        """Set and remove entries of a top-level mapping, touching only their lines.

        Entries not named keep their lines (and comments) as they are; a flow-style
        mapping is rewritten whole; a mapping left empty is removed.
        """
        where = self._find(key)
        drop = set(remove) - set(updates)
        if where is None:
            if updates:
                self.set(key, dict(updates))
            return
        s, e = where
        head = _TOP_KEY_RE.match(_strip_nl(self.lines[s]))
        assert head is not None
        if _strip_comment(head.group("rest")):
            current = self.get(key)
            merged = {k: v for k, v in (current if isinstance(current, dict) else {}).items() if k not in drop}
            merged.update(updates)
            if merged:
                self.set(key, merged)
            else:
                self.remove(key)
            return
        self.get(key)  # raises UnsupportedYaml unless it is a plain block mapping
        nl = self.newline
        entries: dict[str, int] = {}
        indent = "  "
        for i in range(s + 1, e):
            t = _strip_nl(self.lines[i])
            if t.strip() and not t.strip().startswith("#"):
                entries[_map_entry(t)[0]] = i
                indent = t[: len(t) - len(t.lstrip())]
        for k, v in updates.items():
            if k in entries:
                i = entries[k]
                end = self.lines[i][len(_strip_nl(self.lines[i])):]
                self.lines[i] = f"{indent}{dump_scalar(k)}: {dump_scalar(v)}{end}"
        new = [f"{indent}{dump_scalar(k)}: {dump_scalar(v)}{nl}" for k, v in updates.items() if k not in entries]
        last = max(entries.values()) if entries else s
        if new:
            if not self.lines[last].endswith(("\n", "\r")):
                self.lines[last] += nl
            self.lines[last + 1:last + 1] = new
        for i in sorted((entries[k] for k in drop if k in entries), reverse=True):
            del self.lines[i]
        if not any(k not in drop for k in entries) and not new:
            self.remove(key)


def _strip_comment(s: str) -> str:
    """Drop a trailing `` # comment`` that is outside quotes."""
    quote = ""
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1].isspace()):
            return s[:i].rstrip()
    return s.rstrip()


def parse_scalar(s: str) -> str | bool | int | None:
    s = _strip_comment(s.strip())
    if not s:
        return None
    if s[0] in "&*!|>":
        raise UnsupportedYaml(f"unsupported YAML: {s[:20]}")
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        inner = s[1:-1]
        return inner.replace("''", "'") if s[0] == "'" else inner.replace('\\"', '"')
    low = s.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def _split_flow(inner: str) -> list[str]:
    parts, cur, quote = [], "", ""
    for ch in inner:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in "[]{}":
            raise UnsupportedYaml("nested flow collections")
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _map_entry(s: str) -> tuple[str, Any]:
    m = re.match(r"""(?P<k>"[^"]*"|'[^']*'|[^:#]+?)\s*:(?:\s+(?P<v>.*))?$""", s.strip())
    if not m:
        raise UnsupportedYaml(f"not a 'key: value' entry: {s.strip()[:40]}")
    k = parse_scalar(m.group("k"))
    return str(k), parse_scalar(m.group("v") or "")


def parse_value(rest: str, body: list[str]) -> YamlValue:
    """Parse one top-level value: ``rest`` is what follows ``key:``, ``body`` its lines."""
    rest = _strip_comment(rest.strip())
    content = [ln for ln in body if ln.strip() and not ln.strip().startswith("#")]
    if rest:
        text = rest + (" " + " ".join(ln.strip() for ln in content) if content else "")
        text = _strip_comment(text)
        if text.startswith("["):
            if not text.endswith("]"):
                raise UnsupportedYaml("unterminated flow sequence")
            return [parse_scalar(p) for p in _split_flow(text[1:-1])]
        if text.startswith("{"):
            if not text.endswith("}"):
                raise UnsupportedYaml("unterminated flow mapping")
            return dict(_map_entry(p) for p in _split_flow(text[1:-1]))
        if content:
            raise UnsupportedYaml("multi-line scalar")
        return parse_scalar(text)
    if not content:
        return None
    indent = len(content[0]) - len(content[0].lstrip())
    if any(len(ln) - len(ln.lstrip()) != indent for ln in content):
        raise UnsupportedYaml("nested blocks")
    if content[0].lstrip().startswith("- ") or content[0].strip() == "-":
        items = []
        for ln in content:
            t = ln.strip()
            if not (t.startswith("- ") or t == "-"):
                raise UnsupportedYaml("mixed list and mapping")
            item = t[1:].strip()
            if item[:1] in "[{" or (re.match(r"[^'\"]*:\s", item) and not re.match(r"\w+://", item)):
                raise UnsupportedYaml("nested collection in a list")
            items.append(parse_scalar(item))
        return items
    return dict(_map_entry(ln) for ln in content)


_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./~@%+=-][A-Za-z0-9_./~@%+=:,?&!*-]*$")


def dump_scalar(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN_SAFE.match(s) and ": " not in s and s.lower() not in ("true", "false", "yes", "no", "null", "on", "off") \
            and not re.fullmatch(r"-?\d+(\.\d*)?", s):
        return s
    return "'" + s.replace("'", "''") + "'"


def dump_key(key: str, value: YamlValue) -> list[str]:
    """Block-style YAML lines for one top-level key (the way ``conda config`` writes them)."""
    if isinstance(value, list):
        if not value:
            return [f"{key}: []"]
        return [f"{key}:"] + [f"  - {dump_scalar(v)}" for v in value]
    if isinstance(value, dict):
        if not value:
            return [f"{key}: {{}}"]
        return [f"{key}:"] + [f"  {dump_scalar(k)}: {dump_scalar(v)}" for k, v in value.items()]
    return [f"{key}: {dump_scalar(value)}"]
