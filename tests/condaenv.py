"""Real conda environments for tests, built without conda channels or a conda installer.

These machines reach PyPI only, so the tests write a few tiny conda packages
(``.tar.bz2``) with :mod:`tarfile`, index them into a local channel with
py-rattler (pinned in pyproject.toml), solve and install them into a prefix. The
result is a genuine conda environment: ``conda-meta/*.json`` records written by
rattler pointing into rattler's package cache, files linked from the cache, text
and binary prefix placeholders replaced, a ``noarch: python`` package linked into
site-packages with an entry point. conda-pack then sees exactly what it sees in an
environment made by conda.

Packages (version/build strings are arbitrary, names are ours):

* ``python 3.X.Y`` for this host's subdir: made like ``python -m venv --copies``:
  ``bin/python3.X`` is a copy of this machine's interpreter binary (its RUNPATH
  still finds libpython), ``bin/python``/``bin/python3`` are relative symlinks to
  it, ``pyvenv.cfg`` points ``home`` at this machine's Python. Copying instead of
  linking keeps every link inside the prefix, which the safe extractor demands.
* ``tinylib 1.0`` for this host's subdir: a text file and a fake shared library
  holding the build prefix placeholder (``file_mode`` text and binary), a Python
  module with a ``dist-info`` (with RECORD, so pip can uninstall it like a real
  conda package).
* ``tinycli 0.1`` ``noarch: python``: a module, an entry point ``tinycli`` and a
  ``python-scripts/`` script, linked by rattler into ``bin/`` and site-packages.

Keep the package cache (``CondaFixture.cache``) for as long as environments made
from it are packed: conda-pack reads each package's ``info/paths.json`` and the
placeholder-bearing originals from there.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Long, like conda-build's placeholder, so binary replacement has room for tmp paths.
PLACEHOLDER = "/opt/offpkg-test-build/_h_env_placehold" + "_placehold" * 10
assert len(PLACEHOLDER) > 120

PY_VER = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_FULL = ".".join(str(x) for x in sys.version_info[:3])
SITE = f"lib/python{PY_VER}/site-packages"

# The binary file: NUL-terminated C strings around the placeholder, like a real .so.
BINARY_HEAD = b"\x7fELF\x02\x01\x01\x00" + bytes(range(1, 40)) + b"\x00"
BINARY_TAIL = b"\x00\xff\xfe\x00trailing-data\x00"


def binary_payload(prefix: str) -> bytes:
    """The fake library's bytes with ``prefix`` in place (padded the conda way)."""
    path = f"{prefix}/lib/tinylib/data".encode()
    field = len(f"{PLACEHOLDER}/lib/tinylib/data".encode())
    # conda pads a binary C string with NULs to the placeholder's original length.
    return BINARY_HEAD + path + b"\x00" * (field - len(path)) + b"\x00" + BINARY_TAIL


def text_payload(prefix: str) -> str:
    return f"TINYLIB_HOME={prefix}/share/tinylib\nTINYLIB_DATA={prefix}/lib/tinylib/data\n"


def host_subdir() -> str:
    from offpkg.conda.env import host_subdir as _hs

    return _hs()


@dataclass
class _Entry:
    path: str
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None  # a symlink target
    placeholder: str | None = None
    file_mode: str | None = None  # "text" | "binary"


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    tf.addfile(info, io.BytesIO(data))


def write_conda_package(
    out_dir: Path,
    *,
    name: str,
    version: str,
    build: str,
    subdir: str,
    entries: list[_Entry],
    depends: list[str] | None = None,
    noarch: bool = False,
    link_json: dict | None = None,
) -> Path:
    """Write ``name-version-build.tar.bz2`` (v1 conda package format) into ``out_dir``."""
    arch_platform = {} if noarch else {"platform": subdir.split("-")[0], "arch": _arch_of(subdir)}
    index = {"name": name, "version": version, "build": build, "build_number": 0,
             "depends": depends or [], "subdir": "noarch" if noarch else subdir,
             "timestamp": 1_700_000_000_000, "license": "MIT", **arch_platform}
    if noarch:
        index["noarch"] = "python"
    paths = []
    has_prefix_lines = []
    for e in entries:
        rec: dict = {"_path": e.path}
        if e.link is not None:
            rec["path_type"] = "softlink"
            rec["sha256"] = hashlib.sha256(e.link.encode()).hexdigest()
            rec["size_in_bytes"] = len(e.link)
        else:
            rec["path_type"] = "hardlink"
            rec["sha256"] = hashlib.sha256(e.data).hexdigest()
            rec["size_in_bytes"] = len(e.data)
        if e.placeholder:
            rec["prefix_placeholder"] = e.placeholder
            rec["file_mode"] = e.file_mode
            has_prefix_lines.append(f"{e.placeholder} {e.file_mode} {e.path}")
        paths.append(rec)
    fn = out_dir / f"{name}-{version}-{build}.tar.bz2"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fn, "w:bz2") as tf:
        _tar_add(tf, "info/index.json", json.dumps(index, indent=2).encode())
        _tar_add(tf, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode())
        _tar_add(tf, "info/files", "".join(e.path + "\n" for e in entries).encode())
        if has_prefix_lines:
            _tar_add(tf, "info/has_prefix", "".join(line + "\n" for line in has_prefix_lines).encode())
        if link_json is not None:
            _tar_add(tf, "info/link.json", json.dumps(link_json, indent=2).encode())
        for e in entries:
            if e.link is not None:
                info = tarfile.TarInfo(e.path)
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                info.mtime = 1_700_000_000
                tf.addfile(info)
            else:
                _tar_add(tf, e.path, e.data, e.mode)
    return fn


def _arch_of(subdir: str) -> str:
    return {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le",
            "s390x": "s390x", "32": "x86"}.get(subdir.split("-", 1)[1], subdir.split("-", 1)[1])


def _dist_info(name: str, version: str, files: dict[str, bytes], installer: str = "conda") -> dict[str, bytes]:
    """A dist-info for ``files`` (paths relative to site-packages), RECORD included."""
    di = f"{name}-{version}.dist-info"
    meta = {
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{di}/INSTALLER": f"{installer}\n".encode(),
    }
    rows = [_record_row(path, data) for path, data in {**files, **meta}.items()]
    rows.append(f"{di}/RECORD,,")
    return {**meta, f"{di}/RECORD": ("\n".join(rows) + "\n").encode()}


def _record_row(path: str, data: bytes) -> str:
    """One line of a dist-info RECORD."""
    b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={b64},{len(data)}"


def build_channel(channel: Path) -> None:
    """Write the three test packages into ``channel`` and index it with rattler."""
    subdir = host_subdir()
    exe = Path(os.path.realpath(sys.executable))
    pyname = f"python{PY_VER}"
    home = Path(sysconfig.get_config_var("BINDIR") or exe.parent)
    python_entries = [
        _Entry(f"bin/{pyname}", exe.read_bytes(), 0o755),
        _Entry("bin/python", link=pyname),
        _Entry("bin/python3", link=pyname),
        _Entry("pyvenv.cfg", f"home = {home}\ninclude-system-site-packages = false\nversion = {PY_FULL}\n".encode()),
        _Entry(f"{SITE}/_offpkg_test_python.txt", b"site-packages of the test python package\n"),
    ]
    write_conda_package(channel / subdir, name="python", version=PY_FULL, build="0_offpkgtest",
                        subdir=subdir, entries=python_entries)

    lib_files = {
        "tinylib/__init__.py": b"VERSION = '1.0'\n",
        "tinylib/old.py": b"OLD = True\n",
    }
    tinylib_entries = [
        _Entry("share/tinylib/config.txt", text_payload(PLACEHOLDER).encode(),
               placeholder=PLACEHOLDER, file_mode="text"),
        _Entry("lib/libtiny.so", binary_payload(PLACEHOLDER), 0o755, placeholder=PLACEHOLDER, file_mode="binary"),
        _Entry("share/tinylib/plain.txt", b"no prefix here\n"),
    ]
    tinylib_entries += [_Entry(f"{SITE}/{p}", d) for p, d in lib_files.items()]
    tinylib_entries += [_Entry(f"{SITE}/{p}", d) for p, d in _dist_info("tinylib", "1.0", lib_files).items()]
    write_conda_package(channel / subdir, name="tinylib", version="1.0", build="h0_0", subdir=subdir,
                        entries=tinylib_entries, depends=[f"python {PY_VER}.*"])

    cli_files = {
        "tinycli/__init__.py": (b"import sys\n\ndef main():\n"
                                b"    print('tinycli runs from ' + sys.prefix)\n    return 0\n"),
    }
    cli_entries = [_Entry(f"site-packages/{p}", d) for p, d in cli_files.items()]
    cli_entries += [_Entry(f"site-packages/{p}", d) for p, d in _dist_info("tinycli", "0.1", cli_files).items()]
    cli_entries.append(_Entry("python-scripts/tinycli-hello",
                              b"#!/usr/bin/env python\nimport sys\nprint('hello from ' + sys.prefix)\n", 0o755))
    link_json = {"noarch": {"type": "python", "entry_points": ["tinycli = tinycli:main"]},
                 "package_metadata_version": 1}
    write_conda_package(channel / "noarch", name="tinycli", version="0.1", build="py_0", subdir="noarch",
                        entries=cli_entries, depends=["python >=3"], noarch=True, link_json=link_json)

    (channel / "noarch").mkdir(exist_ok=True)
    from rattler.index import index_fs

    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))


@dataclass
class CondaFixture:
    """A local channel plus rattler caches; ``make_env`` installs a fresh environment."""

    root: Path
    channel: Path
    cache: Path
    repodata_cache: Path
    _records: list | None = None

    def solve(self, specs: list[str]) -> list:
        import rattler

        gateway = rattler.Gateway(cache_dir=self.repodata_cache)
        channel = rattler.Channel(self.channel.as_uri())
        return asyncio.run(rattler.solve([channel], specs, gateway=gateway,
                                         platforms=[host_subdir(), "noarch"]))

    def make_env(self, prefix: Path, specs: list[str] | None = None, cache: Path | None = None) -> Path:
        """Install python + tinylib + tinycli (or ``specs``) into ``prefix`` (from ``cache``, else the shared one)."""
        import rattler

        if specs is None:
            if self._records is None:
                self._records = self.solve(["python", "tinylib", "tinycli"])
            records = self._records
        else:
            records = self.solve(specs)
        asyncio.run(rattler.install(records, prefix, cache_dir=cache or self.cache, show_progress=False,
                                    execute_link_scripts=False))
        return prefix


def make_fixture(root: Path) -> CondaFixture:
    """Build the channel under ``root``; environments are installed on demand with ``make_env``."""
    channel = root / "channel"
    build_channel(channel)
    return CondaFixture(root=root, channel=channel, cache=root / "pkgs", repodata_cache=root / "repodata-cache")


def make_wheel(out_dir: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal pure-Python wheel (for pip installing on top of a conda environment)."""
    di = f"{name}-{version}.dist-info"
    meta = {
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: offpkg-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    rows = [_record_row(path, data) for path, data in {**files, **meta}.items()]
    rows.append(f"{di}/RECORD,,")
    out_dir.mkdir(parents=True, exist_ok=True)
    whl = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for path, data in {**files, **meta}.items():
            zf.writestr(path, data)
        zf.writestr(f"{di}/RECORD", "\n".join(rows) + "\n")
    return whl
