"""Unpacking a conda-pack archive (or no-archive folder) offline and relocating it.

:func:`install_packed` never trusts the archive: the platform is checked first, members
are checked by :func:`offpkg.archive.safe_extract` (a no-archive folder by the same rules,
through :func:`offpkg.conda.checks.check_tree`) before anything is written, the prefix
records ``conda-unpack`` will rewrite are read with :func:`ast.literal_eval` and must all
pass :func:`offpkg.conda.checks.check_prefix_record`, ``conda-unpack`` is run as
``[python, bin/conda-unpack]`` with an interpreter that exists (its ``#!/usr/bin/env
python`` shebang is never used), and afterwards every recorded file is re-read
(:mod:`offpkg.conda.prefixscan`) to prove that no placeholder and no old prefix is left.
Any failure removes the new prefix.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (InputError, InstallError, OffpkgError, OutputExistsError, SubprocessError, TargetMismatchError,
                      UnsafeArchiveError)
from ..events import Events
from ..archive.tree import tree_entries
from .pack import _umask
from .checks import check_members, check_prefix_record
from .condarc import write_offline_condarc
from .env import _ON_WIN, BIN, CondaError, env_platform, host_subdir
from .prefixscan import leftover


class PrefixNotRewrittenError(InstallError):
    """conda-unpack ran but a placeholder or the old prefix is still in a file."""


@dataclass(frozen=True)
class InstallReport:
    """What :func:`install_packed` did."""

    prefix: Path
    platform: str
    python: str  # the interpreter that ran conda-unpack
    members: int  # files, links and directories written
    rewritten: int  # files conda-unpack was told to rewrite
    checked: int  # files re-read for leftover placeholders/old prefixes
    condarc: Path
    condarc_backup: Path | None
    original_prefix: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": str(self.prefix), "platform": self.platform, "python": self.python,
                "members": self.members, "rewritten": self.rewritten, "checked": self.checked,
                "condarc": str(self.condarc),
                "condarc_backup": str(self.condarc_backup) if self.condarc_backup else None,
                "original_prefix": self.original_prefix}


def install_packed(
    archive: Path,
    prefix: Path,
    *,
    expected_platform: str,
    python: Path | None = None,
    original_prefix: str | None = None,
    channels: list[str] | tuple[str, ...] = (),
    progress: Events | None = None,
) -> InstallReport:
    """Unpack a conda-pack archive (or no-archive folder) into ``prefix`` and relocate it.

    Refuses another OS/architecture (``expected_platform`` against this host),
    an existing non-empty ``prefix``, unsafe members and unsafe prefix records.
    ``original_prefix`` (``PackResult.source_prefix``) is also searched for after
    relocation. On any failure the new prefix is removed.
    """
    events = progress or Events()
    archive = Path(archive)
    prefix = Path(os.path.abspath(prefix))
    host = host_subdir()
    if expected_platform not in (host, "noarch"):
        raise TargetMismatchError(
            f"the conda environment is for {expected_platform}, but this host is {host}",
            hint=f"a packed conda environment runs only on the OS and CPU it was built for; pack one on a "
                 f"{host} machine (or solve it for {host} with `conda create --platform {host}`)")
    if not archive.exists():
        raise InputError(f"{archive} does not exist")
    was_empty_dir = False
    if prefix.exists() or prefix.is_symlink():
        if prefix.is_dir() and not prefix.is_symlink() and not any(prefix.iterdir()):
            was_empty_dir = True
        else:
            raise OutputExistsError(f"{prefix} already exists and is not an empty folder",
                                    hint="choose a new path for the environment, or remove the old one first")

    events.stage("extract", f"unpacking {archive.name} into {prefix}", bytes_=True)
    if was_empty_dir:
        prefix.rmdir()  # safe_extract wants to create the prefix itself
    try:
        members = _unpack_into(archive, prefix, lambda n: events.advance("extract", n))
    except BaseException:
        if was_empty_dir and not prefix.exists():
            prefix.mkdir()
        raise
    finally:
        events.done("extract")
    try:
        return _relocate(prefix, members, expected_platform=expected_platform, host=host, python=python,
                         original_prefix=original_prefix, channels=channels, events=events)
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        if was_empty_dir:
            prefix.mkdir()
        raise


def _unpack_into(archive: Path, prefix: Path, progress: Any) -> int:
    if archive.is_dir():
        return _copy_tree_safely(archive, prefix)
    from ..archive import safe_extract  # lazily: archive.py is another module's concern

    # conda packages hold names that differ only in case (ncurses' terminfo); they are
    # safe only where the filesystem keeps them apart.
    names = safe_extract(archive, prefix, allow_symlinks=True, progress=progress,
                         allow_case_collisions=_case_sensitive(prefix.parent))
    return len(names)


def _case_sensitive(directory: Path) -> bool:
    """Whether ``directory``'s filesystem tells ``a`` from ``A`` (probed with a temp file)."""
    import tempfile

    while not directory.is_dir() and directory.parent != directory:
        directory = directory.parent  # the nearest existing folder: create nothing here
    fd, probe = tempfile.mkstemp(prefix=".offpkg-case-probe-", suffix="x", dir=directory)
    os.close(fd)
    try:
        return not os.path.exists(probe[:-1] + "X")
    finally:
        os.unlink(probe)


def _relocate(prefix: Path, members: int, *, expected_platform: str, host: str, python: Path | None,
              original_prefix: str | None, channels: list[str] | tuple[str, ...], events: Events) -> InstallReport:
    from .._subprocess import run

    actual = env_platform(prefix)  # also proves conda-meta/ is there
    if actual not in ("noarch", expected_platform):
        raise TargetMismatchError(f"the archive holds a {actual} environment, not {expected_platform} as expected",
                                  hint="the archive does not match its description; pack it again")
    script = prefix / BIN / ("conda-unpack-script.py" if _ON_WIN else "conda-unpack")
    if not script.is_file() or script.is_symlink():
        raise CondaError(f"the archive has no {BIN}/{script.name}, so its prefixes cannot be rewritten",
                         hint="pack the environment with `offpkg conda pack` (conda-pack without --dest-prefix)")
    records = _prefix_records(script, prefix)
    interp = _pick_interpreter(prefix, python)

    events.stage("unpack", f"rewriting prefixes in {len(records)} files (conda-unpack)")
    try:
        # [python, script] explicitly: the script's `#!/usr/bin/env python` may find no python here.
        # -B: no __pycache__ in bin/. -E -s: ignore PYTHONPATH/PYTHONHOME and the user site; not -I,
        # which drops the script's folder that conda-unpack imports its progress module from.
        run([interp, "-B", "-E", "-s", str(script)], what="conda-unpack", timeout=3600)
    except SubprocessError as exc:
        hint = "the archive may be damaged; pack the environment again"
        if exc.details and "negative padding" in exc.details:
            longest = max((len(p) for _, p, m in records if m == "binary"), default=0)
            hint = (f"the new prefix ({len(str(prefix))} characters) is longer than a binary placeholder "
                    f"({longest} characters); install into a shorter path")
        raise InstallError(f"conda-unpack failed in {prefix}", details=exc.details, hint=hint) from None
    finally:
        events.done("unpack")

    events.stage("check", "checking that no old prefix is left", total=len(records))
    needles = {p for _, p, _ in records}
    if original_prefix:
        needles.add(original_prefix)
    needles.discard(str(prefix))
    leftovers = []
    for path, _placeholder, _mode in records:
        found = leftover(prefix / path, sorted(needles), str(prefix))
        if found:
            leftovers.append(f"{path}: still contains {found}")
        events.advance("check", 1)
    events.done("check")
    if leftovers:
        raise PrefixNotRewrittenError(f"conda-unpack left old prefixes in {len(leftovers)} files of {prefix}",
                                      details="\n".join(leftovers),
                                      hint="the environment would not work at this path; report this with the "
                                           "archive, or pack it again with conda-pack")
    rc, backup = write_offline_condarc(prefix, channels)
    return InstallReport(prefix=prefix, platform=actual if actual != "noarch" else host, python=str(interp),
                         members=members, rewritten=len(records), checked=len(records), condarc=rc,
                         condarc_backup=backup, original_prefix=original_prefix)


def _prefix_records(script: Path, prefix: Path) -> list[tuple[str, str, str]]:
    """The (path, placeholder, mode) list conda-pack wrote into conda-unpack, checked.

    Read with ast.literal_eval, never executed; every path must be a regular file
    inside the prefix, because conda-unpack will rewrite it in place.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError, ValueError) as exc:
        raise CondaError(f"cannot read {script}: {exc}", hint="the archive is damaged; pack it again") from None
    value: Any = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_prefix_records"
                                                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            break
    if not isinstance(value, list):
        raise CondaError(f"{script} has no readable prefix records; it was not written by conda-pack",
                         hint="pack the environment with `offpkg conda pack`")
    out = []
    for rec in value:
        if not (isinstance(rec, tuple) and len(rec) == 3 and all(isinstance(x, str) for x in rec)) \
                or rec[2] not in ("text", "binary") or not rec[1]:
            raise UnsafeArchiveError(f"{script.name}: malformed prefix record {rec!r}")
        path = rec[0]
        check_prefix_record(path, prefix, script.name)  # the rule `offpkg bundle` checked too
        out.append((path, rec[1], rec[2]))
    return out


def _runs(interp: Path) -> bool:
    from .._subprocess import run

    if not (interp.is_file() and os.access(interp, os.X_OK)):
        return False
    try:
        return run([interp, "-E", "-s", "-c", "import sys"], check=False, timeout=60).returncode == 0
    except OffpkgError:
        return False


def _pick_interpreter(prefix: Path, python: Path | None) -> Path:
    """The environment's own python when it runs here, else ``python``, else offpkg's own."""
    own = prefix / ("python.exe" if _ON_WIN else "bin/python")
    for cand in (own, python, Path(sys.executable)):
        if cand is not None and _runs(Path(cand)):
            return Path(cand)
    raise InstallError("no Python interpreter runs here to finish unpacking the environment",
                       hint="pass one with --python")


def _copy_tree_safely(src: Path, dest: Path) -> int:
    """Copy a no-archive folder with the extraction rules: every entry checked first, copies only.

    Copies, never hard links: conda-pack's no-archive output shares inodes with the
    packed environment and its package cache, and conda-unpack rewrites in place.
    """
    from ..fsutil import commit, staging

    entries = tree_entries(src)
    check_members((raw for _, raw in entries), where=str(src), case_sensitive=_case_sensitive(dest.parent))
    with staging(dest, directory=True) as tmp:
        for full, raw in entries:
            d = os.path.join(tmp, raw.name)
            if raw.kind == "dir":
                os.mkdir(d)
            elif raw.kind == "symlink":
                os.symlink(raw.linkname, d)
            else:
                shutil.copyfile(full, d)
                shutil.copymode(full, d)
        os.chmod(tmp, 0o777 & ~_umask())
        commit(tmp, dest, False)
    return len(entries)
