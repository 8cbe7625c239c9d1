"""Round-trip editing of pip.conf (INI) and .condarc (a YAML subset).

Both editors work on lines: the lines offpkg changes are rewritten and every
other line (comments, unrelated keys, ordering, line endings) is kept byte for
byte. Writes are atomic (temp sibling + ``os.replace``, file mode kept) and each
write first saves the previous file as a numbered backup, ``PATH.offpkg-backup.N``
(N grows; the highest is the newest). ``restore`` puts back the newest backup and
removes it, so repeated resets walk back through the history to the original.

This module also knows where pip and conda look for their configuration and in
which order, so ``offpkg mirror show`` can say what is in effect and why.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .errors import InputError
from .redact import redact_text

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


# --------------------------------------------------------------------------- where pip looks

PIP_BASENAME = "pip.ini" if sys.platform == "win32" else "pip.conf"
# pip's override order (pip/_internal/configuration.py OVERRIDE_ORDER): a later kind wins.
PIP_KINDS = ("global", "user", "site", "env")


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _xdg_config_home(env: Mapping[str, str]) -> Path:
    v = env.get("XDG_CONFIG_HOME", "")
    return Path(v) if v and os.path.isabs(v) else _home(env) / ".config"


def pip_config_files(env: Mapping[str, str] | None = None, *, prefix: str | None = None) -> list[tuple[str, Path]]:
    """Every file pip reads, as (kind, path), lowest precedence first.

    Mirrors pip: ``PIP_CONFIG_FILE`` (kind "env") wins over the site (virtualenv)
    file, which wins over the user files, which win over the global ones; within a
    kind the later file wins (``~/.config/pip/pip.conf`` over ``~/.pip/pip.conf``,
    ``/etc/pip.conf`` over ``/etc/xdg/pip/pip.conf``). An existing ``PIP_CONFIG_FILE``
    turns the user files off; ``PIP_CONFIG_FILE=/dev/null`` turns every file off.
    """
    env = os.environ if env is None else env
    cfg_env = env.get("PIP_CONFIG_FILE")
    if cfg_env is not None and cfg_env == os.devnull:
        return []
    files: list[tuple[str, Path]] = []
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import platformdirs

        files.append(("global", Path(platformdirs.site_config_dir("pip", appauthor=False)) / PIP_BASENAME))
        user = [_home(env) / "pip" / PIP_BASENAME,
                Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True)) / PIP_BASENAME]
    elif sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        import platformdirs

        files.append(("global", Path(platformdirs.site_data_dir("pip", appauthor=False)) / PIP_BASENAME))
        app = _home(env) / "Library" / "Application Support" / "pip"
        user = [_home(env) / ".pip" / PIP_BASENAME,
                (app if app.is_dir() else _home(env) / ".config" / "pip") / PIP_BASENAME]
    else:
        dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
        files += [("global", Path(d) / "pip" / PIP_BASENAME) for d in dirs]
        files.append(("global", Path("/etc") / PIP_BASENAME))
        user = [_home(env) / ".pip" / PIP_BASENAME, _xdg_config_home(env) / "pip" / PIP_BASENAME]
    if not (cfg_env and os.path.exists(cfg_env)):
        files += [("user", p) for p in user]
    site_prefix = prefix or env.get("VIRTUAL_ENV") or sys.prefix
    files.append(("site", Path(site_prefix) / PIP_BASENAME))
    if cfg_env:
        files.append(("env", Path(cfg_env)))
    return files


def pip_scope_path(scope: str, env: Mapping[str, str] | None = None, *, prefix: str | None = None) -> Path:
    """The pip.conf ``offpkg mirror use --scope`` writes."""
    env = os.environ if env is None else env
    files = [(k, p) for k, p in pip_config_files({k: v for k, v in env.items() if k != "PIP_CONFIG_FILE"},
                                                 prefix=prefix)]
    if scope == "user":
        user = [p for k, p in files if k == "user"]
        legacy, new = user[0], user[-1]
        # Only the legacy file exists: edit it rather than shadow it with a new one.
        return legacy if legacy.exists() and not new.exists() else new
    if scope == "global":
        return [p for k, p in files if k == "global"][-1]
    if scope == "venv":
        return [p for k, p in files if k == "site"][0]
    raise ValueError(scope)


# Options whose value matters for where packages come from; aliases are pip's own.
PIP_KEYS = {"index-url": ("index-url",), "extra-index-url": ("extra-index-url",),
            "trusted-host": ("trusted-host",), "timeout": ("timeout", "default-timeout"),
            "find-links": ("find-links",), "no-index": ("no-index",)}


@dataclass
class Setting:
    key: str
    value: str
    source: str  # a file path, or "env PIP_X"
    section: str = ""


def pip_effective(env: Mapping[str, str] | None = None, *, prefix: str | None = None,
                  command: str = "install") -> tuple[dict[str, Setting], list[dict[str, Any]], list[str]]:
    """What ``pip <command>`` would use for the index options, and where each comes from.

    pip resolves a value by section first (``PIP_*`` variables > ``[install]`` >
    ``[global]``) and, within a section, by file (see :func:`pip_config_files`).
    Returns (settings, files consulted, problems).
    """
    env = os.environ if env is None else env
    files = pip_config_files(env, prefix=prefix)
    # (section, key) -> Setting, filled lowest precedence first so later files win.
    by_section: dict[tuple[str, str], Setting] = {}
    consulted: list[dict[str, Any]] = []
    problems: list[str] = []
    order = {k: i for i, k in enumerate(PIP_KINDS)}
    for kind, path in sorted(files, key=lambda kp: order[kp[0]]):
        text = None
        try:
            text = read_text(path)
        except (InputError, OSError) as exc:
            problems.append(f"{path}: {exc}")
        consulted.append({"kind": kind, "path": str(path), "exists": text is not None})
        if text is None:
            continue
        try:
            doc = IniDoc(text, path=path)
        except InputError as exc:
            problems.append(exc.message)
            continue
        for section in doc.sections():
            if section not in ("global", command):
                continue
            for name, aliases in PIP_KEYS.items():
                for alias in aliases:
                    raw = doc.get(section, alias)
                    if raw is not None:
                        by_section[(section, name)] = Setting(name, " ".join(raw.split()), str(path), section)
    out: dict[str, Setting] = {}
    for name, aliases in PIP_KEYS.items():
        for section in ("global", command):
            if (section, name) in by_section:
                out[name] = by_section[(section, name)]
        for alias in aliases:
            var = "PIP_" + alias.upper().replace("-", "_")
            if env.get(var) is not None:
                out[name] = Setting(name, env[var], f"env {var}")
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        problems.append("PIP_CONFIG_FILE is /dev/null: pip reads no configuration file at all")
    return out, consulted, problems


# --------------------------------------------------------------------------- where conda looks

CONDA_KEYS = ("channels", "default_channels", "custom_channels", "show_channel_urls", "channel_alias")
_CONDA_SEQUENCES = ("channels", "default_channels")


def conda_root(env: Mapping[str, str] | None = None) -> Path:
    """conda's root (base) prefix: $CONDA_ROOT, else from $CONDA_EXE, else this Python's prefix."""
    env = os.environ if env is None else env
    if env.get("CONDA_ROOT"):
        return Path(env["CONDA_ROOT"])
    if env.get("CONDA_EXE"):
        return Path(env["CONDA_EXE"]).resolve().parent.parent
    return Path(sys.prefix)


def condarc_search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    """conda's SEARCH_PATH (conda/base/constants.py), lowest precedence first, with
    variables expanded; entries whose variable is unset are left out."""
    env = os.environ if env is None else env
    home = _home(env)
    if sys.platform == "win32":  # pragma: no cover
        system = ["C:/ProgramData/conda/.condarc", "C:/ProgramData/conda/condarc", "C:/ProgramData/conda/condarc.d"]
    else:
        system = ["/etc/conda/.condarc", "/etc/conda/condarc", "/etc/conda/condarc.d",
                  "/var/lib/conda/.condarc", "/var/lib/conda/condarc", "/var/lib/conda/condarc.d"]
    out = [Path(p) for p in system]

    def under(var: str | None, base: Path | None, names: tuple[str, ...]) -> None:
        if var is not None and not env.get(var):
            return
        root = Path(env[var]) if var else base
        assert root is not None
        out.extend(root / n for n in names)

    rc = (".condarc", "condarc", "condarc.d")
    out += [conda_root(env) / n for n in rc]
    under("XDG_CONFIG_HOME", None, tuple("conda/" + n for n in rc))
    under(None, home / ".config" / "conda", rc)
    under(None, home / ".conda", rc)
    out.append(home / ".condarc")
    under("CONDA_PREFIX", None, rc)
    if env.get("CONDARC"):
        out.append(Path(env["CONDARC"]))
    seen: set[str] = set()
    unique = []
    for p in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique


def condarc_scope_path(scope: str, env: Mapping[str, str] | None = None) -> Path:
    """The .condarc ``offpkg mirror use --scope`` writes, as ``conda config`` would:
    user: $CONDARC or ~/.condarc; global: the root prefix's .condarc (``--system``);
    venv: $CONDA_PREFIX/.condarc (``--env``), else this Python's prefix."""
    env = os.environ if env is None else env
    if scope == "user":
        return Path(env["CONDARC"]) if env.get("CONDARC") else _home(env) / ".condarc"
    if scope == "global":
        return conda_root(env) / ".condarc"
    if scope == "venv":
        return Path(env.get("CONDA_PREFIX") or sys.prefix) / ".condarc"
    raise ValueError(scope)


def read_condarc_values(path: Path) -> dict[str, YamlValue]:
    """The managed keys of one .condarc (an unreadable value raises UnsupportedYaml)."""
    text = read_text(path)
    if text is None:
        return {}
    doc = CondarcDoc(text, path=path)
    values = {k: doc.get(k) for k in CONDA_KEYS if k in doc.keys()}
    _register_conda_secrets(values)
    return values


_CONDA_TOKEN = re.compile(r"/t/([^/\s]+)")


def _register_conda_secrets(value: Any) -> None:
    """Remember tokens in channel URLs (userinfo, ``?token=``, conda's ``/t/<token>/``)
    so redact_text keeps them out of every output."""
    from .redact import register_secret, secrets_in_url

    if isinstance(value, dict):
        for v in value.values():
            _register_conda_secrets(v)
    elif isinstance(value, list):
        for v in value:
            _register_conda_secrets(v)
    elif isinstance(value, str) and "://" in value:
        for secret in secrets_in_url(value) + _CONDA_TOKEN.findall(value):
            register_secret(secret)


def conda_effective(env: Mapping[str, str] | None = None) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The channel settings conda would use, merged as conda merges them.

    Sequences (channels, default_channels) are concatenated, the higher-precedence
    file's entries first, duplicates dropped; custom_channels is merged key by key
    (the later file wins a key); scalars come from the last file that sets them;
    ``CONDA_<KEY>`` variables win over every file. Returns (settings, files, problems),
    each setting as {"value": ..., "sources": [...]}.
    """
    env = os.environ if env is None else env
    files: list[Path] = []
    for p in condarc_search_path(env):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in (".yml", ".yaml"))
        else:
            files.append(p)
    consulted: list[dict[str, Any]] = []
    problems: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    for path in files:
        exists = path.is_file()
        consulted.append({"path": str(path), "exists": exists})
        if not exists:
            continue
        try:
            values = read_condarc_values(path)
        except (UnsupportedYaml, InputError, OSError) as exc:
            problems.append(f"{path}: cannot read ({exc}); conda may still understand it")
            continue
        for key, value in values.items():
            cur = out.get(key)
            if key in _CONDA_SEQUENCES and isinstance(value, list):
                prev = cur["value"] if cur else []
                merged = [str(v) for v in value] + [v for v in prev if v not in value]
                out[key] = {"value": merged, "sources": [str(path)] + (cur["sources"] if cur else [])}
            elif key == "custom_channels" and isinstance(value, dict):
                prev = dict(cur["value"]) if cur else {}
                prev.update({str(k): str(v) for k, v in value.items()})
                out[key] = {"value": prev, "sources": [str(path)] + (cur["sources"] if cur else [])}
            else:
                out[key] = {"value": value, "sources": [str(path)]}
    for key in CONDA_KEYS:
        var = "CONDA_" + key.upper()
        if env.get(var):
            raw = env[var]
            value: Any = [v.strip() for v in raw.split(",") if v.strip()] if key in _CONDA_SEQUENCES else raw
            out[key] = {"value": value, "sources": [f"env {var}"]}
    return out, consulted, problems
