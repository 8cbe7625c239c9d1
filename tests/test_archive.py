"""offpkg.archive on good archives: detection, extraction, hashing, reading, deterministic writing."""

from __future__ import annotations

import bz2
import sys
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import zstandard

from offpkg.archive import (
    PAYLOAD_MARKER,
    detect_format,
    hash_members,
    payload_offset,
    read_member,
    safe_extract,
    write_tar,
)
from offpkg.errors import InputError, OutputExistsError, UnsafeArchiveError, UsageError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[tuple[str, str, bytes | str, int]]) -> bytes:
    """entries: (name, kind, data-or-linkname, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1_600_000_000
            if kind == "file":
                assert isinstance(payload, bytes)
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            ti.linkname = payload if isinstance(payload, str) else ""
            tf.addfile(ti)
    return buf.getvalue()


BUNDLE = [
    ("bundle/", "dir", b"", 0o700),
    ("bundle/offpkg.json", "file", b'{"format": 1}', 0o600),
    ("bundle/wheels/alpha-1.0-py3-none-any.whl", "file", b"PK" + bytes(range(256)) * 40, 0o644),
    ("bundle/install.sh", "file", b"#!/bin/sh\necho hi\n", 0o775),
    ("bundle/setuid-tool", "file", b"#!/bin/sh\n", 0o4755),
    ("bundle/empty", "file", b"", 0o644),
]

# Like a conda package: relative symlinks inside the prefix, a hard link, names that
# differ in case only under share/terminfo (ncurses ships such pairs).
CONDA = [
    ("lib/libz.so.1.3", "file", b"\x7fELF" + b"z" * 3000, 0o755),
    ("lib/libz.so.1", "symlink", "libz.so.1.3", 0o777),
    ("lib/libz.so", "symlink", "libz.so.1", 0o777),
    ("bin/python3.11", "file", b"\x7fELF python", 0o755),
    ("bin/python3", "symlink", "python3.11", 0o777),
    ("bin/python", "symlink", "./python3", 0o777),
    ("lib/python3.11/site.py", "file", b"# site\n", 0o644),
    ("lib/python3", "symlink", "python3.11", 0o777),
    ("share/up", "symlink", "../lib", 0o777),
    ("share/root", "symlink", "..", 0o777),
    ("bin/python3.11-hard", "hardlink", "bin/python3.11", 0o755),
    ("share/terminfo/E/Eterm", "file", b"E", 0o644),
    ("share/terminfo/e/eterm", "file", b"e", 0o644),
]


def file_sha(p: Path) -> str:
    return sha(p.read_bytes())


# ----------------------------------------------------------------------------- detection


def test_detect_format_by_magic_not_suffix(tmp_path: Path) -> None:
    raw = tar_bytes(BUNDLE)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("a", b"a")
    blobs = {
        "tar": raw,
        "tar.gz": gzip.compress(raw),
        "tar.zst": zstandard.ZstdCompressor().compress(raw),
        "tar.bz2": bz2.compress(raw),
        "tar.xz": lzma.compress(raw),
        "zip": zbuf.getvalue(),
    }
    for fmt, blob in blobs.items():
        misleading = tmp_path / f"{fmt}.misleading.zip"  # every one named .zip
        misleading.write_bytes(blob)
        assert detect_format(misleading) == fmt


def test_detect_format_refuses_junk_clearly(tmp_path: Path) -> None:
    cases = {
        "missing.tar": None,
        "empty.tar": b"",
        "text.tar": b"hello\n" * 200,
        "short.tar": tar_bytes(BUNDLE)[:100],
        "gzip-of-json.tar.gz": gzip.compress(b'{"a": 1}' * 100),
        "cut.tar.gz": gzip.compress(os.urandom(4000))[:20],
    }
    for name, blob in cases.items():
        p = tmp_path / name
        if blob is not None:
            p.write_bytes(blob)
        with pytest.raises(InputError) as err:
            detect_format(p)
        assert str(p) in str(err.value)
    with pytest.raises(InputError, match="directory"):
        detect_format(tmp_path)


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tar.zst", "tar.bz2", "tar.xz"])
def test_extract_bundle_all_formats(tmp_path: Path, fmt: str) -> None:
    raw = tar_bytes(BUNDLE)
    comp = {
        "tar": lambda b: b,
        "tar.gz": gzip.compress,
        "tar.zst": zstandard.ZstdCompressor().compress,
        "tar.bz2": bz2.compress,
        "tar.xz": lzma.compress,
    }[fmt]
    archive = tmp_path / f"b.{fmt}"
    archive.write_bytes(comp(raw))
    seen: list[int] = []
    dest = tmp_path / "out"
    names = safe_extract(archive, dest, progress=seen.append)
    assert names == [n.rstrip("/") for n, *_ in BUNDLE]
    root = dest / "bundle"
    assert (root / "offpkg.json").read_bytes() == b'{"format": 1}'
    # Modes: the executable bit only, never setuid; directories 0o755 whatever the archive says.
    assert stat.S_IMODE((root / "install.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "setuid-tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "offpkg.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert (root / "empty").stat().st_size == 0
    assert int((root / "install.sh").stat().st_mtime) == 1_600_000_000  # mtime kept
    assert sum(seen) == sum(len(d) for _, k, d, _ in BUNDLE if k == "file")
    # No temporary directory left next to dest.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([archive.name, "out"])


def test_extract_conda_like_with_symlinks(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(tar_bytes(CONDA)))
    dest = tmp_path / "prefix"
    safe_extract(archive, dest, allow_symlinks=True, allow_case_collisions=True)
    assert os.readlink(dest / "lib/libz.so") == "libz.so.1"
    assert (dest / "lib/libz.so").read_bytes().startswith(b"\x7fELF")
    assert (dest / "bin/python").resolve() == (dest / "bin/python3.11").resolve()
    assert (dest / "lib/python3/site.py").read_bytes() == b"# site\n"
    assert (dest / "share/root").resolve() == dest.resolve()
    hard = dest / "bin/python3.11-hard"
    assert not hard.is_symlink() and hard.read_bytes() == b"\x7fELF python"
    assert stat.S_IMODE(hard.stat().st_mode) == 0o755
    assert (dest / "share/terminfo/E/Eterm").read_bytes() == b"E"
    assert (dest / "share/terminfo/e/eterm").read_bytes() == b"e"
    # hash_members agrees with what landed on disk; links report their target's hash.
    hashes = hash_members(archive, allow_symlinks=True, allow_case_collisions=True)
    assert hashes["bin/python3.11-hard"] == hashes["bin/python3.11"]
    assert "lib/libz.so" not in hashes  # symlinks are not regular members
    for name, (digest, size) in hashes.items():
        assert file_sha(dest / name) == digest and (dest / name).stat().st_size == size


def test_conda_archive_refused_in_bundle_mode_and_for_case_pairs(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.tar"
    archive.write_bytes(tar_bytes(CONDA))
    with pytest.raises(UnsafeArchiveError, match="lib/libz.so.1'.*symbolic link"):
        safe_extract(archive, tmp_path / "a")
    with pytest.raises(UnsafeArchiveError, match="eterm"):
        safe_extract(archive, tmp_path / "b", allow_symlinks=True)  # case pairs refused by default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.tar"]


def test_extract_zip(tmp_path: Path) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/", b"")
        zi = zipfile.ZipInfo("pkg/run")
        zi.external_attr = (stat.S_IFREG | 0o4755) << 16
        zi.create_system = 3
        zf.writestr(zi, b"#!/bin/sh\n")
        zf.writestr("pkg/data.bin", os.urandom(300_000))
        link = zipfile.ZipInfo("pkg/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"data.bin")
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="pkg/link"):
        safe_extract(archive, dest)
    names = safe_extract(archive, dest, allow_symlinks=True)
    assert names == ["pkg", "pkg/run", "pkg/data.bin", "pkg/link"]
    assert stat.S_IMODE((dest / "pkg/run").stat().st_mode) == 0o755
    assert os.readlink(dest / "pkg/link") == "data.bin"
    hashes = hash_members(archive, allow_symlinks=True, workers=4)
    assert hashes["pkg/data.bin"] == (file_sha(dest / "pkg/data.bin"), 300_000)


def test_dest_rules(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    archive.write_bytes(tar_bytes(BUNDLE))
    empty = tmp_path / "empty"
    empty.mkdir()
    safe_extract(archive, empty)  # an empty directory is fine
    assert (empty / "bundle/offpkg.json").is_file()
    with pytest.raises(OutputExistsError):
        safe_extract(archive, empty)  # now it is not empty
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputExistsError):
        safe_extract(archive, afile)
    nested = tmp_path / "new" / "deeper" / "dest"
    safe_extract(archive, nested)  # missing parents are created
    assert (nested / "bundle/install.sh").is_file()


def test_failure_removes_parents_it_created(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    archive.write_bytes(tar_bytes([("ok", "file", b"1", 0o644), ("ok", "file", b"2", 0o644)]))
    with pytest.raises(UnsafeArchiveError, match="duplicate"):
        safe_extract(archive, tmp_path / "p1" / "p2" / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar"]


def test_failure_in_second_pass_leaves_nothing(tmp_path: Path) -> None:
    """Damage found only while writing (a zip CRC) removes the partly written tree."""
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a/first.txt", b"first member, written before the damage is seen")
        zf.writestr("a/second.bin", b"S" * 4000)
    data = bytearray(archive.read_bytes())
    i = data.index(b"S" * 100)
    data[i + 50] ^= 0xFF  # flip a data byte: only the CRC check at the end of the member sees it
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError, match="second.bin"):
        safe_extract(archive, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_max_total_size(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    archive.write_bytes(tar_bytes(BUNDLE))
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(archive, tmp_path / "d", max_total_size=1000)
    assert not (tmp_path / "d").exists()


def test_ratio_limit_spares_small_compressible_members(tmp_path: Path) -> None:
    """5 MB of zeros deflates about 1000:1; the ratio rule only applies above 100 MB."""
    archive = tmp_path / "z.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small-zeros", b"\0" * 5_000_000)
    safe_extract(archive, tmp_path / "ok")
    assert (tmp_path / "ok/small-zeros").stat().st_size == 5_000_000


# ----------------------------------------------------------------------------- offsets, hashing, reading


def test_self_extracting_payload_at_offset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "wheels").mkdir(parents=True)
    (src / "offpkg.json").write_text('{"format": 1}')
    (src / "wheels/a.whl").write_bytes(os.urandom(70_000))
    for comp in (None, "zst"):
        payload = tmp_path / f"payload-{comp}"
        write_tar(src, payload, compression=comp)
        header = b"#!/bin/sh\n# mentions __OFFPKG_PAYLOAD_BELOW__ but not as a whole line\nexit 0\n"
        sfx = tmp_path / f"stack-{comp}.sh"
        sfx.write_bytes(header + PAYLOAD_MARKER + payload.read_bytes())
        off = payload_offset(sfx)
        assert off == len(header) + len(PAYLOAD_MARKER)
        assert detect_format(sfx, offset=off) == ("tar" if comp is None else "tar.zst")
        assert read_member(sfx, "offpkg.json", 1000, offset=off) == b'{"format": 1}'
        hashes = hash_members(sfx, offset=off)
        assert hashes["wheels/a.whl"] == (file_sha(src / "wheels/a.whl"), 70_000)
        dest = tmp_path / f"out-{comp}"
        safe_extract(sfx, dest, offset=off)
        assert file_sha(dest / "wheels/a.whl") == file_sha(src / "wheels/a.whl")
    plain = tmp_path / "plain.sh"
    plain.write_bytes(b"#!/bin/sh\necho __OFFPKG_PAYLOAD_BELOW__\n")
    with pytest.raises(InputError, match="self-extracting"):
        payload_offset(plain)


@pytest.mark.parametrize("workers", [1, 4])
def test_hash_members_matches_sha256(tmp_path: Path, workers: int) -> None:
    archive = tmp_path / "b.tar"
    archive.write_bytes(tar_bytes(BUNDLE))
    expected = {n: (sha(d), len(d)) for n, k, d, _ in BUNDLE if k == "file"}
    assert hash_members(archive, workers=workers) == expected
    gz = tmp_path / "b.tar.gz"
    gz.write_bytes(gzip.compress(archive.read_bytes()))
    assert hash_members(gz, workers=workers) == expected


def test_hash_members_detects_truncation(tmp_path: Path) -> None:
    raw = tar_bytes([("a", "file", os.urandom(4000), 0o644)])
    archive = tmp_path / "cut.tar"
    archive.write_bytes(raw[:2000])
    with pytest.raises(InputError, match="truncated"):
        hash_members(archive)


def test_read_member(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes(BUNDLE)))
    assert read_member(archive, "bundle/offpkg.json", 100) == b'{"format": 1}'
    assert read_member(archive, "./bundle/offpkg.json", 100) == b'{"format": 1}'
    with pytest.raises(InputError, match="over the 5-byte limit"):
        read_member(archive, "bundle/offpkg.json", 5)
    with pytest.raises(InputError, match="no member"):
        read_member(archive, "bundle/missing.json", 100)
    with pytest.raises(InputError, match="not a file"):
        read_member(archive, "bundle", 100)
    with pytest.raises(InputError, match=r"'\.\.'"):
        read_member(archive, "../etc/passwd", 100)


# ----------------------------------------------------------------------------- writing


def make_tree(root: Path) -> None:
    (root / "wheels").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "wheels/b-1.0-py3-none-any.whl").write_bytes(os.urandom(30_000))
    (root / "wheels/a-1.0-py3-none-any.whl").write_bytes(os.urandom(1000))
    (root / "install.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "install.sh", 0o700)
    (root / "Z-upper.txt").write_text("upper")
    (root / "caf\u00e9.txt").write_text("unicode name")
    deep = root / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    (deep / ("f" * 80 + ".txt")).write_text("long path over 100 bytes")
    os.chmod(root / "wheels/a-1.0-py3-none-any.whl", 0o600)


def test_write_tar_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    make_tree(src)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = {}
    for comp in (None, "gz", "zst"):
        out = tmp_path / f"first-{comp}"
        write_tar(src, out, compression=comp, arcname_prefix="bundle")
        first[comp] = file_sha(out)
    # Later, with new mtimes, different umask-ish modes and a different access pattern.
    time.sleep(1.1)
    now = time.time()
    for p in src.rglob("*"):
        os.utime(p, (now, now))
    os.chmod(src / "install.sh", 0o755)
    os.chmod(src / "wheels/a-1.0-py3-none-any.whl", 0o664)
    for comp in (None, "gz", "zst"):
        out = tmp_path / f"second-{comp}"
        write_tar(src, out, compression=comp, arcname_prefix="bundle")
        assert file_sha(out) == first[comp], comp
    assert len(set(first.values())) == 3


def test_write_tar_normalises_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    make_tree(src)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "b.tar"
    write_tar(src, out, arcname_prefix="bundle/v1")
    with tarfile.open(out) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names[:2] == ["bundle", "bundle/v1"]
    # Sorted by path components (code points, locale independent): directories before contents.
    rel = [tuple(n.split("/")[2:]) for n in names[2:]]
    assert rel == sorted(rel)
    for m in members:
        assert m.mtime == 1700000000
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.isdir() or m.isreg()
        assert m.mode == (0o755 if m.isdir() else m.mode)
        assert m.mode in (0o644, 0o755)
        assert not {"atime", "ctime", "mtime"} & set(m.pax_headers)
    modes = {m.name: m.mode for m in members}
    assert modes["bundle/v1/install.sh"] == 0o755
    assert modes["bundle/v1/wheels/a-1.0-py3-none-any.whl"] == 0o644
    data = out.read_bytes()
    assert b"atime=" not in data and b"ctime=" not in data
    assert len(data) % tarfile.RECORDSIZE == 0
    # The explicit mtime argument wins over SOURCE_DATE_EPOCH.
    write_tar(src, out, mtime=42)
    with tarfile.open(out) as tf:
        assert {m.mtime for m in tf.getmembers()} == {42}
    # GNU tar reads it back identically.
    if shutil.which("tar"):
        listing = subprocess.run(["tar", "tf", str(out)], capture_output=True, text=True, check=True).stdout
        assert "empty-dir/" in listing and "caf\u00e9.txt" in listing
    # And so does our own extractor, byte for byte.
    dest = tmp_path / "round"
    safe_extract(out, dest)
    for p in src.rglob("*"):
        if p.is_file():
            assert file_sha(dest / p.relative_to(src)) == file_sha(p)
    assert (dest / "empty-dir").is_dir()


def test_write_tar_gzip_header_has_no_time_or_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    out = tmp_path / "b.tar.gz"
    write_tar(src, out, compression="gz")
    head = out.read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # no FNAME, no FEXTRA, no comment
    assert head[4:8] == b"\0\0\0\0"  # mtime 0
    zst = tmp_path / "b.tar.zst"
    write_tar(src, zst, compression="zst")
    params = zstandard.get_frame_parameters(zst.read_bytes()[:18])
    assert params.has_checksum
    assert hash_members(out) == hash_members(zst)


def test_write_tar_refuses_links_and_specials(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    (src / "link").symlink_to("install.sh")
    out = tmp_path / "b.tar"
    with pytest.raises(InputError, match="symbolic link"):
        write_tar(src, out)
    (src / "link").unlink()
    os.mkfifo(src / "pipe")
    with pytest.raises(InputError, match="neither a regular file"):
        write_tar(src, out)
    (src / "pipe").unlink()
    with pytest.raises(UsageError, match="inside"):
        write_tar(src, src / "self.tar")
    with pytest.raises(UsageError, match="compression"):
        write_tar(src, out, compression="lz4")
    with pytest.raises(UsageError):
        write_tar(src, out, arcname_prefix="../up")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temporaries


def test_write_tar_bad_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        write_tar(src, tmp_path / "b.tar")


def test_write_tar_replaces_atomically(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    out = tmp_path / "b.tar"
    out.write_bytes(b"old contents")
    write_tar(src, out)
    assert detect_format(out) == "tar"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "src"]


def test_write_error_mid_extraction_cleans_up(tmp_path: Path) -> None:
    """A real write failure (RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk
    fails with ENOSPC) gives a clear error and removes the partial tree."""
    archive = tmp_path / "b.tar"
    members = [("small", "file", b"s" * 1000, 0o644), ("big", "file", os.urandom(2_000_000), 0o644)]
    archive.write_bytes(tar_bytes(members))
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from offpkg.archive import safe_extract\n"
        "from offpkg.errors import EnvironmentProblem\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))\n"
        "try:\n"
        "    safe_extract(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except EnvironmentProblem as e:\n"
        "    print('EnvironmentProblem:', e)\n"
        "    sys.exit(10)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(archive), str(tmp_path / "dest")],
        capture_output=True, text=True, env=env, check=False,
    )
    assert proc.returncode == 10, proc.stderr
    assert "cannot extract" in proc.stdout and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar"]
