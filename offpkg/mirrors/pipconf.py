"""pip.conf (INI) edited as lines: the lines of the options offpkg changes are rewritten and
every other line (comments, unrelated keys, ordering, line endings) is kept byte for byte.

configparser validates the file first (pip reads it with configparser too), but it cannot
write comments back, so the edit itself works on lines.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from ..errors import InputError


def _newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _strip_nl(line: str) -> str:
    return line.rstrip("\r\n")


def _one_line(s: str) -> str:
    return " ".join(s.split())


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
