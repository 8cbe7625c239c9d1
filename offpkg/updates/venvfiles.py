"""Changing the staged clone of a venv without ever writing through a hard link the old state shares.

The clone (offpkg.updates.sync) shares every file with the venv by hard link. Files
are only ever unlinked or replaced by rename here: removing distributions by their
RECORD, giving each path an incoming wheel will write a private copy first, and
pointing freshly written console scripts at the venv's own path.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def wheel_destinations(wheel: Path, venv: Path, site: Path) -> set[Path]:
    """Every path installing ``wheel`` into ``venv`` writes (files, scripts, console-script wrappers)."""
    out: set[Path] = set()
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.endswith("/"):
                continue
            first, _, rest = n.partition("/")
            if first.endswith(".data") and rest:
                kind, _, sub = rest.partition("/")
                base = {"purelib": site, "platlib": site, "scripts": bindir, "data": venv}.get(kind)
                out.add((base or venv / "include") / sub)
            else:
                out.add(site / n)
            if n.endswith(".dist-info/entry_points.txt"):
                import configparser

                cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
                cp.optionxform = str  # type: ignore[assignment,method-assign]
                try:
                    cp.read_string(z.read(n).decode("utf-8", errors="replace"))
                except configparser.Error:
                    continue
                for section in ("console_scripts", "gui_scripts"):
                    if cp.has_section(section):
                        out.update(bindir / k.strip() for k in cp[section])
    return out


def privatize(paths: set[Path]) -> int:
    """Give each existing path a file of its own (copy, then rename over), so no write reaches a shared inode.

    Returns the bytes the old state now holds alone (what keeping it costs).
    """
    n = 0
    for p in sorted(paths):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not os.path.isfile(p) or os.path.islink(p) or st.st_nlink < 2:
            continue
        tmp = p.with_name(f".{p.name}.offpkg-{os.getpid()}")
        shutil.copy2(p, tmp)
        os.replace(tmp, p)
        n += st.st_size
    return n


def uninstall(stage: Path, site: Path, dirs: list[Path]) -> tuple[int, list[Path]]:
    """Remove distributions from the clone by their RECORD, the way pip does, without a subprocess.

    Only paths inside the clone are touched; files are unlinked (never written), so
    the old state keeps its copies. Returns (bytes the old state now holds alone,
    the .dist-info folders that have no RECORD: the installer removes those).
    """
    root = os.path.join(os.path.abspath(stage), "")
    freed = 0
    parents: set[str] = set()
    no_record = []
    for di in dirs:
        record = di / "RECORD"
        if not record.is_file():
            no_record.append(di)
            continue
        with open(record, encoding="utf-8", errors="replace", newline="") as f:
            rows = list(csv.reader(f))
        for row in rows:
            if not row or not row[0]:
                continue
            path = os.path.normpath(os.path.join(site, row[0]))
            if not path.startswith(root):
                continue  # a RECORD naming a path outside the venv: never followed
            paths = [path]
            if path.endswith(".py"):  # and the bytecode compiled from it
                cache = os.path.join(os.path.dirname(path), "__pycache__")
                stem = os.path.basename(path)[:-3] + "."
                if os.path.isdir(cache):
                    paths += [os.path.join(cache, n) for n in os.listdir(cache) if n.startswith(stem)]
            for q in paths:
                try:
                    st = os.lstat(q)
                except OSError:
                    continue
                if os.path.isdir(q) and not os.path.islink(q):
                    continue
                os.unlink(q)
                freed += st.st_size if st.st_nlink > 1 else 0
                parents.add(os.path.dirname(q))
        shutil.rmtree(di)
    # Folders the removed files leave empty go too (deepest first), never the clone's own top folders.
    keep = {os.path.normpath(p) for p in (stage, site, stage / "bin", stage / "include", stage / "lib")}
    for d in sorted(parents, key=len, reverse=True):
        while d.startswith(root) and os.path.normpath(d) not in keep:
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)
    return freed, no_record


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repoint_scripts(stage: Path, venv: Path, site: Path, new_dists: list[str]) -> list[str]:
    """Console scripts written in the clone name the clone's python: make them name the venv's.

    Only the script head is rewritten (pip and uv put the interpreter in the first
    lines); the RECORD lines of the new distributions get the new hash and size.
    """
    bindir = stage / ("Scripts" if os.name == "nt" else "bin")
    old, new = os.fsencode(str(stage)) + b"/", os.fsencode(str(venv)) + b"/"
    changed: dict[Path, bytes] = {}
    for p in bindir.iterdir() if bindir.is_dir() else ():
        if p.is_symlink() or not p.is_file() or p.stat().st_size > 1 << 20:
            continue
        with open(p, "rb") as f:
            head = f.read(1024)
        if not head.startswith(b"#!") or old not in head:
            continue
        data = p.read_bytes()
        data = data[:1024].replace(old, new) + data[1024:]
        tmp = p.with_name(f".{p.name}.offpkg-{os.getpid()}")
        tmp.write_bytes(data)
        os.chmod(tmp, p.stat().st_mode & 0o7777)
        os.replace(tmp, p)
        changed[p.resolve()] = data
    if not changed:
        return []
    for di in site.glob("*.dist-info"):
        record = di / "RECORD"
        if canonicalize_name(di.name.split("-", 1)[0]) not in new_dists or not record.is_file():
            continue
        rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
        touched = False
        for row in rows:
            if row and (site / row[0]).resolve() in changed:
                data = changed[(site / row[0]).resolve()]
                row[1:3] = [_record_hash(data), str(len(data))]
                touched = True
        if touched:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            tmp = record.with_name(f".RECORD.offpkg-{os.getpid()}")
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, record)
    return sorted(p.name for p in changed)
