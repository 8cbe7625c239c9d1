"""Hostile archives: a generated corpus and property-based fuzzing.

Every corpus archive must be refused (UnsafeArchiveError or InputError naming the
member) in bundle mode and in conda mode, by ``safe_extract`` and by ``hash_members``,
and must leave nothing behind: the destination does not exist afterwards, a sentinel
sibling stays empty, no path appears or changes anywhere under the test's temporary
directory, and the victim file that hard links aim at is untouched.

The fuzz tests (hypothesis) build random archives and random byte mutations of good
ones; each must either extract cleanly, entirely inside the destination, or be refused
with an InputError subclass: never another exception, never a file outside.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from hostile import CASE_FILENAMES, CORPUS_SIZE, VICTIM, VICTIM_DATA, generate, generate_cases  # noqa: E402

from offpkg.archive import hash_members, safe_extract  # noqa: E402
from offpkg.errors import InputError  # noqa: E402


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    """Every path under root with its type, size and content (file bytes, link target)."""
    out: dict[str, tuple[int, int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            if stat.S_ISREG(st_.st_mode):
                content: bytes | str | None = Path(p).read_bytes()
            elif stat.S_ISLNK(st_.st_mode):
                content = os.readlink(p)
            else:
                content = None
            links = 0 if stat.S_ISDIR(st_.st_mode) else st_.st_nlink
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st_.st_mode), links, content)
    return out


# ----------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    base = tmp_path_factory.mktemp("hostile")
    cases = generate_cases(base / "corpus", outside=base / "outside")
    return base, {c.path.name: c for c in cases}


def test_corpus_is_complete(tmp_path: Path) -> None:
    listed = generate(tmp_path / "c")
    assert len(listed) == CORPUS_SIZE >= 60
    assert len({p.name for p, _ in listed}) == CORPUS_SIZE  # one file per case
    assert all(p.is_file() and desc for p, desc in listed)
    kinds = {p.suffix for p, _ in listed}
    assert {".tar", ".zip", ".gz", ".zst"} <= kinds


@pytest.mark.parametrize("allow_symlinks", [False, True], ids=["bundle-mode", "conda-mode"])
@pytest.mark.parametrize("filename", CASE_FILENAMES)
def test_hostile_archive_is_refused_and_leaves_nothing(
    corpus: tuple[Path, dict[str, object]], filename: str, allow_symlinks: bool
) -> None:
    base, cases = corpus
    case = cases[filename]
    work = base / "work" / f"{filename}-{allow_symlinks}"
    sentinel = work / "sentinel"
    sentinel.mkdir(parents=True)
    dest = work / "dest"
    before = snapshot(base)

    with pytest.raises(InputError) as err:
        safe_extract(case.path, dest, allow_symlinks=allow_symlinks)  # type: ignore[attr-defined]

    message = str(err.value)
    expected = case.member if allow_symlinks else case.member_strict  # type: ignore[attr-defined]
    if expected is not None:
        assert repr(expected)[:100] in message, message
    assert str(case.path) in message  # type: ignore[attr-defined]
    assert err.value.hint  # every refusal says what to do next
    # Nothing left behind, nothing written anywhere else.
    assert not dest.exists()
    assert sorted(p.name for p in work.iterdir()) == ["sentinel"]
    assert list(sentinel.iterdir()) == []
    assert sorted(p.name for p in (base / "outside").iterdir()) == [VICTIM]
    victim = base / "outside" / VICTIM
    assert victim.read_bytes() == VICTIM_DATA and victim.stat().st_nlink == 1
    assert snapshot(base) == before

    # The verifier applies the same rules without extracting.
    with pytest.raises(InputError):
        hash_members(case.path, allow_symlinks=allow_symlinks)  # type: ignore[attr-defined]
    assert snapshot(base) == before


def test_refusal_into_existing_empty_dest_keeps_it_empty(
    corpus: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    _, cases = corpus
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InputError):
        safe_extract(cases["dotdot.tar"].path, dest)  # type: ignore[attr-defined]
    assert dest.is_dir() and list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


# ----------------------------------------------------------------------------- fuzzing

FUZZ_EXAMPLES = {"tar": 300, "zip": 200, "mutation": 300}
# Absolute names in fuzzed archives point here (never at the real /), so a broken
# extractor would show itself without harming the machine.
ABS_ROOT = Path(tempfile.gettempdir()) / "offpkg-fuzz-absolute-target"

# Mostly ordinary components, so that many examples extract and the writer is exercised
# too; the rest are the characters and forms the rules exist for.
_COMPONENTS = st.one_of(
    st.sampled_from(["a", "b", "B", "sub", "lib", "A"]),
    st.sampled_from(["..", ".", "", "caf\u00e9", "cafe\u0301", "C:", "x\\y", "n\x00ul", "L" * 256, "\u212a", "k"]),
)
_NAMES = st.tuples(
    st.sampled_from(["", "", "", "./", "/"]), st.lists(_COMPONENTS, min_size=1, max_size=4).map("/".join)
).map(lambda t: (str(ABS_ROOT) + "/" + t[1]) if t[0] == "/" else t[0] + t[1])
_KINDS = st.sampled_from(["file", "file", "file", "dir", "symlink", "symlink", "hardlink", "fifo", "chr"])
_MEMBERS = st.lists(
    st.tuples(_KINDS, _NAMES, _NAMES, st.binary(max_size=40), st.sampled_from([0o644, 0o755, 0o4755, 0o6777, 0o1777])),
    max_size=7,
)
_FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _check_outcome(archive: Path, example_dir: Path, allow_symlinks: bool) -> str:
    """Extract and verify; the invariants every archive must satisfy. Returns the outcome."""
    dest = example_dir / "1" / "2" / "3" / "4" / "5" / "dest"  # deep: a relative escape stays visible here
    sentinel = dest.parent / "sentinel"
    sentinel.mkdir(parents=True)
    before = snapshot(example_dir)
    try:
        names = safe_extract(archive, dest, allow_symlinks=allow_symlinks)
    except InputError:
        outcome = "refused"
        assert not dest.exists()
        assert snapshot(example_dir) == before
    else:
        outcome = "extracted"
        real_dest = os.path.realpath(dest)
        files: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                mode = os.lstat(p).st_mode
                rel = os.path.relpath(p, dest).replace(os.sep, "/")
                if stat.S_ISLNK(mode):
                    assert allow_symlinks
                    assert os.path.commonpath([real_dest, os.path.realpath(p)]) == real_dest, rel
                elif stat.S_ISDIR(mode):
                    assert stat.S_IMODE(mode) == 0o755
                else:
                    assert stat.S_ISREG(mode), rel
                    assert stat.S_IMODE(mode) in (0o644, 0o755), oct(mode)
                    files[rel] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        assert set(files) <= set(names)
        after = snapshot(example_dir)
        outside_dest = {k: v for k, v in after.items() if not k.startswith(os.path.relpath(dest, example_dir))}
        assert outside_dest == before
        hashed = hash_members(archive, allow_symlinks=allow_symlinks)
        assert {k: v[0] for k, v in hashed.items()} == files
    assert list(sentinel.iterdir()) == []
    assert not ABS_ROOT.exists()
    if outcome == "refused":
        with pytest.raises(InputError):
            hash_members(archive, allow_symlinks=allow_symlinks)
    event(outcome)  # shown by --hypothesis-show-statistics
    return outcome


def _build_tar(path: Path, members: list[tuple[str, str, str, bytes, int]], use_pax: bool, compress: bool) -> None:
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "chr": tarfile.CHRTYPE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, link, data, mode in members:
            ti = tarfile.TarInfo("member" if use_pax else name)
            ti.type = types[kind]
            ti.mode = mode
            if kind in ("symlink", "hardlink"):
                ti.linkname = "target" if use_pax else link
            if use_pax:
                ti.pax_headers = {"path": name}
                if kind in ("symlink", "hardlink"):
                    ti.pax_headers["linkpath"] = link
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)


@settings(_FUZZ, max_examples=FUZZ_EXAMPLES["tar"])
@given(members=_MEMBERS, use_pax=st.booleans(), compress=st.booleans(), allow=st.booleans())
def test_fuzz_random_tar_members(
    fuzz_base: Path, members: list[tuple[str, str, str, bytes, int]], use_pax: bool, compress: bool, allow: bool
) -> None:
    with tempfile.TemporaryDirectory(dir=fuzz_base) as d:
        archive = Path(d) / ("a.tar.gz" if compress else "a.tar")
        try:
            _build_tar(archive, members, use_pax, compress)
        except (ValueError, UnicodeError, tarfile.TarError):
            return  # tarfile itself cannot write this one
        _check_outcome(archive, Path(d), allow)


@settings(_FUZZ, max_examples=FUZZ_EXAMPLES["zip"])
@given(
    members=st.lists(
        st.tuples(st.sampled_from(["file", "file", "dir", "symlink", "fifo"]), _NAMES, _NAMES, st.binary(max_size=40)),
        max_size=6,
    ),
    allow=st.booleans(),
)
def test_fuzz_random_zip_members(fuzz_base: Path, members: list[tuple[str, str, str, bytes]], allow: bool) -> None:
    modes = {
        "file": stat.S_IFREG | 0o644,
        "dir": stat.S_IFDIR | 0o755,
        "symlink": stat.S_IFLNK | 0o777,
        "fifo": stat.S_IFIFO | 0o644,
    }
    with tempfile.TemporaryDirectory(dir=fuzz_base) as d:
        archive = Path(d) / "a.zip"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                for kind, name, link, data in members:
                    zi = zipfile.ZipInfo("x", date_time=(2024, 1, 1, 0, 0, 0))
                    zi.filename = name + ("/" if kind == "dir" and not name.endswith("/") else "")
                    zi.create_system = 3
                    zi.external_attr = modes[kind] << 16
                    payload = {"symlink": link.encode("utf-8", "surrogatepass"), "dir": b""}.get(kind, data)
                    zf.writestr(zi, payload)
        _check_outcome(archive, Path(d), allow)


def _good_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("pkg/a.txt", b"alpha" * 30), ("pkg/sub/b.bin", bytes(range(200))), ("pkg/c", b"")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("pkg/link")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "a.txt"
        tf.addfile(ti)
    return buf.getvalue()


def _good_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/a.txt", b"alpha" * 30)
        zf.writestr("pkg/sub/b.bin", bytes(range(200)))
    return buf.getvalue()


_SEEDS = {"tar": _good_tar(), "tar.gz": gzip.compress(_good_tar(), mtime=0), "zip": _good_zip()}


def _fix_tar_checksums(data: bytearray, original: bytes) -> None:
    """Re-seal the header blocks of the original, so mutations reach the name rules."""
    for off in range(0, len(original) - 511, 512):
        block = original[off : off + 512]
        if block[257:262] == b"ustar" and off + 512 <= len(data):
            data[off + 148 : off + 156] = b" " * 8
            chk = sum(data[off : off + 512])
            data[off + 148 : off + 156] = b"%06o\0 " % chk


@settings(_FUZZ, max_examples=FUZZ_EXAMPLES["mutation"])
@given(
    seed=st.sampled_from(sorted(_SEEDS)),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=1 << 16), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.none(), st.none(), st.integers(min_value=0, max_value=1 << 16)),
    reseal=st.booleans(),
    allow=st.booleans(),
)
def test_fuzz_mutated_archives(
    fuzz_base: Path, seed: str, flips: list[tuple[int, int]], cut: int | None, reseal: bool, allow: bool
) -> None:
    original = _SEEDS[seed]
    data = bytearray(original)
    for pos, value in flips:
        data[pos % len(data)] = value
    if reseal and seed == "tar":
        _fix_tar_checksums(data, original)
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    with tempfile.TemporaryDirectory(dir=fuzz_base) as d:
        archive = Path(d) / f"m.{seed}"
        archive.write_bytes(bytes(data))
        _check_outcome(archive, Path(d), allow)
