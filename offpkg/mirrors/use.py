"""``offpkg mirror use``: the pip.conf and .condarc edits that make a mirror the package source,
and pip's precedence rules (which file pip will actually read).

Nothing here prints or writes: the command shows the file changes (``confedit.FileChange``) and applies them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError, UsageError
from . import conflookup
from .catalog import OFFICIAL, Mirror, _same, catalog, find
from .confedit import CondarcDoc, FileChange, IniDoc, UnsupportedYaml, read_text

# pip.conf ``timeout`` written when the file has none (pip's own default is 15 s).
PIP_TIMEOUT = 60


def _host(url: str) -> str:
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def pip_conf_change(path: Path, mirror: Mirror, *, timeout: int | None = None) -> FileChange:
    """The edit of one pip.conf that makes ``mirror`` the index (other lines untouched)."""
    old = read_text(path)
    doc = IniDoc(old or "", path=path)
    notes: list[str] = []
    previous = doc.get("global", "index-url")
    doc.set("global", "index-url", mirror.url)
    # A command section wins over [global] in pip, so it must point at the mirror too.
    for section in ("install", "download"):
        if doc.get(section, "index-url") is not None:
            doc.set(section, "index-url", mirror.url)
            notes.append(f"also set index-url in [{section}], which overrides [global]")
    trusted = doc.get_list("global", "trusted-host")
    new_trusted = list(trusted)
    if previous and previous.startswith("http://") and not _same(previous, mirror.url):
        # The host trusted for the previous plain-http index is no longer needed.
        new_trusted = [h for h in new_trusted if h != _host(previous)]
    if mirror.url.startswith("http://") and _host(mirror.url) not in new_trusted:
        new_trusted.append(_host(mirror.url))
        notes.append(f"{_host(mirror.url)} added to trusted-host: the mirror is plain http")
    if new_trusted != trusted:
        doc.set("global", "trusted-host", new_trusted)
    if timeout is not None:
        doc.set("global", "timeout", str(timeout))
    elif doc.get("global", "timeout") is None and doc.get("global", "default-timeout") is None:
        doc.set("global", "timeout", str(PIP_TIMEOUT))
    return FileChange(Path(path), old, doc.text(), "pip", notes)


def condarc_change(path: Path, mirror: Mirror) -> FileChange:
    """The edit of one .condarc that routes conda's channels through ``mirror``."""
    old = read_text(path)
    doc = CondarcDoc(old or "", path=path)
    notes: list[str] = []
    try:
        custom = doc.get("custom_channels") if "custom_channels" in doc.keys() else {}
        doc.get("default_channels")
        doc.get("channels")
    except UnsupportedYaml as exc:
        raise InputError(f"{path}: cannot edit the channel settings safely ({exc})",
                         hint="write channels, default_channels and custom_channels in plain block style, "
                              "or pass another file with --condarc") from None
    if not isinstance(custom, dict):
        custom = {}
    if "channels" not in doc.keys():
        doc.set("channels", ["defaults"])
    mirror_urls = {u.rstrip("/") for m in catalog() if m.kind == "conda" for _, u in m.custom_channels}
    if mirror.name == OFFICIAL and mirror.origin == "catalog":
        # Back to conda's built-ins: drop the redirections offpkg (or a catalog recipe) put there.
        if doc.remove("default_channels"):
            notes.append("default_channels removed: conda uses repo.anaconda.com")
        stale = [k for k, v in custom.items() if str(v).rstrip("/") in mirror_urls]
        if stale:
            doc.update_map("custom_channels", {}, remove=stale)
            notes.append("custom_channels pointing at a mirror removed: " + ", ".join(stale))
    else:
        if doc.get("default_channels") != list(mirror.default_channels):
            doc.set("default_channels", list(mirror.default_channels))
        # Only the channels the mirror carries are redirected; the user's own entries stay.
        updates = {k: v for k, v in mirror.custom_channels if custom.get(k) != v}
        if updates:
            doc.update_map("custom_channels", updates)
        if doc.get("show_channel_urls") is not True:
            doc.set("show_channel_urls", True)
    return FileChange(Path(path), old, doc.text(), "conda", notes)


@dataclass
class UsePlan:
    name: str
    changes: list[FileChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_use(name: str, mirrors: Sequence[Mirror], *, pip_conf: Path | None, condarc: Path | None,
             write_pip: bool, write_conda: bool, timeout: int | None = None) -> UsePlan:
    """The file changes for ``offpkg mirror use NAME``.

    ``write_pip`` / ``write_conda`` say which files to write; a kind the mirror does
    not offer is skipped with a note unless it was the only one asked for.
    """
    entries = find(mirrors, name)
    by_kind = {m.kind: m for m in entries}
    plan = UsePlan(name)
    if write_pip and "pypi" in by_kind and pip_conf is not None:
        plan.changes.append(pip_conf_change(pip_conf, by_kind["pypi"], timeout=timeout))
    elif write_pip and "pypi" not in by_kind:
        plan.notes.append(f"{name!r} has no PyPI mirror: pip.conf left alone")
    if write_conda and "conda" in by_kind and condarc is not None:
        plan.changes.append(condarc_change(condarc, by_kind["conda"]))
    elif write_conda and "conda" not in by_kind:
        plan.notes.append(f"{name!r} has no conda mirror: .condarc left alone")
    if not plan.changes:
        kinds = ", ".join(sorted(by_kind))
        raise UsageError(f"mirror {name!r} offers {kinds}; nothing to write for the files asked for",
                         hint="pytorch mirrors are set with torch_index_url in offpkg's config, not in pip.conf"
                         if set(by_kind) == {"pytorch"} else None)
    return plan


def target_files(pip_conf: Path | None, condarc: Path | None, scope: str,
                 only: str | None) -> tuple[bool, bool, Path, Path]:
    """Which files ``mirror use``/``reset`` touch: (write pip.conf?, write .condarc?, pip.conf, .condarc).

    Files named explicitly are the only ones written (``only`` narrows them further); otherwise
    both kinds (or ``only``) in the files of ``scope`` (user, global, venv).
    """
    if pip_conf is not None or condarc is not None:
        write_pip, write_conda = pip_conf is not None, condarc is not None
        if only == "pip":
            write_conda = False
        elif only == "conda":
            write_pip = False
    else:
        write_pip, write_conda = only in (None, "pip"), only in (None, "conda")
    return (write_pip, write_conda, pip_conf or conflookup.pip_scope_path(scope),
            condarc or conflookup.condarc_scope_path(scope))


def pip_precedence_warning(path: Path) -> str | None:
    """Why pip would not use ``path``'s index-url as things stand, or None when it would.

    pip's order: ``PIP_*`` variables > every file; among files ``PIP_CONFIG_FILE`` > site
    (virtualenv) > user > global. A file pip does not read at all is named too.
    """
    files = [p for _, p in conflookup.pip_config_files()]
    real = os.path.realpath(path)
    if not any(os.path.realpath(p) == real for p in files):
        return f"pip does not read {path} on its own; use it with PIP_CONFIG_FILE={path}"
    settings, _, _ = conflookup.pip_effective()
    s = settings.get("index-url")
    if s and not s.source.startswith("env ") and os.path.realpath(s.source) != real:
        return f"pip will still use the index-url from {s.source}, which takes precedence over {path}"
    if s and s.source.startswith("env "):
        return f"{s.source[4:]} is set and overrides every pip.conf, including {path}"
    return None
