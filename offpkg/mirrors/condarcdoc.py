""".condarc (YAML) edited with ruamel.yaml's round-trip mode.

The file is parsed as real YAML; only the top-level keys offpkg changes are written again
(with their comments), every other block is kept byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from ..errors import InputError
from .pipconf import _newline_of, _one_line

YamlValue = Union[str, bool, int, None, list, dict]


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
