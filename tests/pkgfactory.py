"""Build tiny real wheels and sdists, and lay them out as a PEP 503 simple index.

Wheels are real zip files with METADATA, WHEEL and a RECORD of sha256 digests,
so pip and uv install them for real. Sdists carry an in-tree PEP 517 backend
(``backend-path``), so building them needs no index and no network.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass
class Dist:
    name: str
    version: str
    requires: list[str] = field(default_factory=list)
    requires_python: str | None = None
    module: str | None = None  # importable module name (default: the name)
    scripts: dict[str, str] = field(default_factory=dict)  # console scripts: {name: "module:function"}
    code: str | None = None  # the module's __init__.py (default: __version__ and TAG)

    @property
    def mod(self) -> str:
        return self.module or canonicalize_name(self.name).replace("-", "_")

    @property
    def snake(self) -> str:
        return canonicalize_name(self.name).replace("-", "_")

    def metadata(self) -> str:
        lines = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}"]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {r}" for r in self.requires]
        return "\n".join(lines) + "\n\n"


def build_wheel(dist: Dist, outdir: Path, tag: str = "py3-none-any", payload: bytes = b"") -> Path:
    """A real wheel; ``tag`` may be compressed (``cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64``)."""
    outdir.mkdir(parents=True, exist_ok=True)
    fname = f"{dist.snake}-{dist.version}-{tag}.whl"
    distinfo = f"{dist.snake}-{dist.version}.dist-info"
    py, abi, plat = tag.split("-")
    files: dict[str, bytes] = {
        f"{dist.mod}/__init__.py": (dist.code if dist.code is not None
                                    else f"__version__ = {dist.version!r}\nTAG = {tag!r}\n").encode(),
        f"{distinfo}/METADATA": dist.metadata().encode(),
        f"{distinfo}/WHEEL": ("Wheel-Version: 1.0\nGenerator: offpkg-tests\nRoot-Is-Purelib: "
                              f"{'true' if plat == 'any' else 'false'}\n"
                              + "".join(f"Tag: {p}-{a}-{pl}\n" for p in py.split(".") for a in abi.split(".")
                                        for pl in plat.split("."))).encode(),
        f"{distinfo}/top_level.txt": f"{dist.mod}\n".encode(),
    }
    if dist.scripts:
        files[f"{dist.mod}/__init__.py"] += b"def main():\n    print(__name__, __version__)\n"
        files[f"{distinfo}/entry_points.txt"] = ("[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in dist.scripts.items())).encode()
    if payload:
        files[f"{dist.mod}/blob.bin"] = payload
    rec = io.StringIO()
    w = csv.writer(rec, lineterminator="\n")
    for n, data in files.items():
        w.writerow([n, _record_hash(data), len(data)])
    w.writerow([f"{distinfo}/RECORD", "", ""])
    files[f"{distinfo}/RECORD"] = rec.getvalue().encode()
    path = outdir / fname
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return path


_BACKEND = r'''
"""A tiny in-tree PEP 517 backend: builds a pure-Python wheel with the stdlib only."""
import base64, csv, hashlib, io, os, zipfile

NAME, VERSION, MODULE, REQUIRES = {name!r}, {version!r}, {module!r}, {requires!r}
SNAKE = NAME.replace("-", "_").replace(".", "_").lower()
DI = "%s-%s.dist-info" % (SNAKE, VERSION)

def _meta():
    return "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s\n" % (
        NAME, VERSION, "".join("Requires-Dist: %s\n" % r for r in REQUIRES))

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, DI)
    os.makedirs(d)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(_meta())
    return DI

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    files = {{}}
    src = os.path.join(here, MODULE)
    for fn in sorted(os.listdir(src)):
        with open(os.path.join(src, fn), "rb") as f:
            files[MODULE + "/" + fn] = f.read()
    files[DI + "/METADATA"] = _meta().encode()
    files[DI + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tinybackend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rec = io.StringIO()
    w = csv.writer(rec, lineterminator="\n")
    for n, data in files.items():
        w.writerow([n, "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(), len(data)])
    w.writerow([DI + "/RECORD", "", ""])
    files[DI + "/RECORD"] = rec.getvalue().encode()
    name = "%s-%s-py3-none-any.whl" % (SNAKE, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return name

def get_requires_for_build_editable(config_settings=None):
    return []

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a wheel holding only a .pth that points at the source tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = {{"_%s_editable.pth" % SNAKE: (here + "\n").encode()}}
    files[DI + "/METADATA"] = _meta().encode()
    files[DI + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tinybackend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[DI + "/RECORD"] = "".join("%s,,\n" % n for n in list(files) + [DI + "/RECORD"]).encode()
    name = "%s-%s-py3-none-any.whl" % (SNAKE, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return name

def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError
'''


def build_sdist(dist: Dist, outdir: Path) -> Path:
    """A real sdist with an in-tree backend: builds offline with pip or uv."""
    outdir.mkdir(parents=True, exist_ok=True)
    base = f"{dist.snake}-{dist.version}"
    files = {
        f"{base}/pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "tinybackend"\n'
                                   'backend-path = ["."]\n\n[project]\n'
                                   f'name = "{dist.name}"\nversion = "{dist.version}"\n'),
        f"{base}/tinybackend.py": _BACKEND.format(name=dist.name, version=dist.version, module=dist.mod,
                                                  requires=dist.requires),
        f"{base}/{dist.mod}/__init__.py": f"__version__ = {dist.version!r}\nFROM_SDIST = True\n",
        f"{base}/PKG-INFO": dist.metadata(),
    }
    path = outdir / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for n, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1577836800
            tf.addfile(ti, io.BytesIO(data))
    return path


def write_simple_index(files_dir: Path, root: Path, *, requires_python: dict[str, str] | None = None) -> Path:
    """Lay out ``root/simple/<project>/index.html`` for every file in ``files_dir`` (PEP 503, #sha256)."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    simple = root / "simple"
    projects: dict[str, list[Path]] = {}
    for f in sorted(files_dir.iterdir()):
        if f.name.endswith(".whl"):
            name = parse_wheel_filename(f.name)[0]
        elif f.name.endswith((".tar.gz", ".zip")):
            name = parse_sdist_filename(f.name)[0]
        else:
            continue
        projects.setdefault(canonicalize_name(name), []).append(f)
    simple.mkdir(parents=True, exist_ok=True)
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>"
        + "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(projects)) + "</body></html>\n")
    for name, fs in projects.items():
        d = simple / name
        d.mkdir(exist_ok=True)
        links = []
        for f in fs:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            rp = (requires_python or {}).get(f.name)
            attr = f' data-requires-python="{html.escape(rp)}"' if rp else ""
            rel = os.path.relpath(f, d).replace(os.sep, "/")
            links.append(f'<a href="{rel}#sha256={digest}"{attr}>{f.name}</a>')
        (d / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return simple


def unpack_sdist(sdist: Path, dest: Path) -> Path:
    """The source tree of an sdist built by :func:`build_sdist` (for editable installs)."""
    with tarfile.open(sdist) as tf:
        tf.extractall(dest, filter="data")
    return next(dest.iterdir())
