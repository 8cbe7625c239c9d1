"""offpkg's conda support on real conda environments built without conda channels (tests/condaenv.py).

Packs with conda-pack through offpkg, unpacks into another path and checks the
relocation byte for byte; then the refusals: files pip replaced, a missing file,
editable installs, another platform, hostile archives and prefix records.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from offpkg import conda
from offpkg._subprocess import isolated_env
from offpkg.errors import InstallError, OffpkgError, OutputExistsError, TargetMismatchError, UnsafeArchiveError
from offpkg.events import Events

import condaenv  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest handling)

HOST = conda.host_subdir()
OTHER = "win-64" if HOST != "win-64" else "linux-64"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the test python package is made like a POSIX venv")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def conda_fx(tmp_path_factory: pytest.TempPathFactory) -> condaenv.CondaFixture:
    root = tmp_path_factory.mktemp("conda")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))  # rattler must not touch the real home
        return condaenv.make_fixture(root)


@pytest.fixture(scope="session")
def src_env(conda_fx: condaenv.CondaFixture) -> Path:
    """One environment shared by the tests that only read it (packing never changes it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(conda_fx.root / "home"))
        return conda_fx.make_env(conda_fx.root / "src-env")


@pytest.fixture(scope="session")
def packed_dir(src_env: Path, tmp_path_factory: pytest.TempPathFactory) -> conda.PackResult:
    """src_env packed as no-archive (a folder), for tests that tamper with a copy of it."""
    return conda.pack_env(prefix=src_env, output=tmp_path_factory.mktemp("packed") / "env.no-archive",
                          format="no-archive")


@pytest.fixture
def fresh_env(conda_fx: condaenv.CondaFixture, tmp_path: Path) -> Path:
    """A new environment for tests that change it (pip over it, deleted files...)."""
    return conda_fx.make_env(tmp_path / "env")


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONDA_EXE", raising=False)


def _pip(env: Path, *args: str, home: Path) -> None:
    """Real pip, run for the environment's interpreter (`pip --python`), isolated from this machine's config."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), *args],
                   env=isolated_env(home=str(home)), check=True, capture_output=True, text=True)


def _copy(src: Path, dst: Path) -> Path:
    # Copies, not hard links: the tests below edit files that share inodes with the package cache.
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    return dst


def _all_bytes_contain(root: Path, needle: bytes) -> list[str]:
    """Files holding ``needle``, apart from the records that name placeholders on purpose."""
    hits = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("conda-meta/") or rel == "bin/conda-unpack":
            continue  # paths_data's prefix_placeholder fields and conda-unpack's own record list
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


class _Recorder(Events):
    """Records the core's progress events (what the CLI renders with rich)."""

    def __init__(self) -> None:
        self.advanced: dict[str, int] = {}
        self.open: set[str] = set()

    def stage(self, key: str, description: str, total: int | None = None, bytes_: bool = False) -> None:
        self.open.add(key)

    def advance(self, key: str, amount: int = 1) -> None:
        self.advanced[key] = self.advanced.get(key, 0) + amount

    def done(self, key: str) -> None:
        self.open.discard(key)


def _formats() -> list[str]:
    return ["tar.gz", "tar.zst", "zip", "no-archive"]


# ----------------------------------------------------------------------------- pack + install round trip


@pytest.mark.parametrize("fmt", _formats())
def test_pack_then_install_relocates_everything(src_env: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"env.{fmt}"
    events = _Recorder()
    res = conda.pack_env(prefix=src_env, output=out, format=fmt, progress=events)
    assert events.advanced["pack"] == res.files > 20 and events.open == set()
    assert res.path == out and out.exists()
    assert res.platform == HOST and res.python == condaenv.PY_FULL and res.packages == 3
    assert res.source_prefix == str(src_env) and res.pip_packages == [] and res.warnings == []
    if fmt == "no-archive":
        assert res.sha256 is None and out.is_dir()
        assert not [p for p in out.iterdir() if p.name.startswith("tmp")]  # conda-pack's stray mkstemp file
    else:
        assert res.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() and res.size == out.stat().st_size
    assert not [p for p in tmp_path.iterdir() if ".offpkg-tmp-" in p.name]

    new = tmp_path / "relocated" / "env"
    rep = conda.install_packed(out, new, expected_platform=HOST, original_prefix=res.source_prefix)
    assert rep.prefix == new and rep.platform == HOST
    assert rep.python == str(new / "bin" / "python")  # the environment's own interpreter ran conda-unpack
    assert rep.rewritten == rep.checked >= 2

    # text: placeholder replaced by the new prefix
    assert (new / "share/tinylib/config.txt").read_text() == condaenv.text_payload(str(new))
    # binary: replaced and padded with NULs to the same length, the bytes around untouched
    lib = (new / "lib/libtiny.so").read_bytes()
    assert lib == condaenv.binary_payload(str(new))
    assert len(lib) == len(condaenv.binary_payload(condaenv.PLACEHOLDER))
    # no trace of the build placeholder or the old prefix anywhere
    assert _all_bytes_contain(new, condaenv.PLACEHOLDER.encode()) == []
    assert _all_bytes_contain(new, str(src_env).encode()) == []
    assert not (new / "bin" / "__pycache__").exists()

    # the noarch: python entry point and script run there, found through PATH like after activation
    env = {"PATH": f"{new / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([str(new / "bin" / "tinycli")], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"tinycli runs from {new}", run.stderr
    run = subprocess.run([str(new / "bin" / "tinycli-hello")], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == f"hello from {new}"
    run = subprocess.run([str(new / "bin" / "python"), "-c", "import tinylib, sys; print(tinylib.VERSION, sys.prefix)"],
                         env=env, capture_output=True, text=True)
    assert run.stdout.split() == ["1.0", str(new)]

    rc = (new / ".condarc").read_text()
    assert "offline: true" in rc and "\nchannels: []" in rc and "default_channels: []" in rc
    assert rep.condarc == new / ".condarc" and rep.condarc_backup is None


def test_pack_refuses_existing_output_unless_forced(src_env: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.tar.gz"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        conda.pack_env(prefix=src_env, output=out)
    assert out.read_bytes() == b"old"
    res = conda.pack_env(prefix=src_env, output=out, force=True)
    assert res.size > 1000 and tarfile.is_tarfile(out)


def test_pack_refuses_output_inside_the_environment(src_env: Path) -> None:
    with pytest.raises(OffpkgError, match="inside the environment"):
        conda.pack_env(prefix=src_env, output=src_env / "self.tar.gz")
    assert not (src_env / "self.tar.gz").exists()


def test_pack_needs_a_known_format(src_env: Path, tmp_path: Path) -> None:
    with pytest.raises(OffpkgError, match="archive format"):
        conda.pack_env(prefix=src_env, output=tmp_path / "env.rar")
    assert not list(tmp_path.iterdir())


def test_pack_by_name_from_environments_txt(src_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".conda").mkdir(parents=True)
    (home / ".conda" / "environments.txt").write_text(f"/nonexistent/other\n{src_env}\n")
    monkeypatch.setenv("PATH", "/nonexistent")  # no conda here: offpkg falls back to environments.txt
    assert conda.resolve_env_name(src_env.name) == src_env
    res = conda.pack_env(name=src_env.name, output=tmp_path / "env.tar.gz")
    assert res.source_prefix == str(src_env)
    with pytest.raises(conda.NotACondaEnvError, match="no conda environment named 'nope'"):
        conda.pack_env(name="nope", output=tmp_path / "x.tar.gz")


def test_env_facts(src_env: Path, tmp_path: Path) -> None:
    assert conda.env_platform(src_env) == HOST
    assert conda.env_python(src_env) == condaenv.PY_FULL
    assert {r["name"] for r in conda.conda_records(src_env)} == {"python", "tinylib", "tinycli"}
    # a record without `subdir` (old conda): the platform comes from its URL
    env = tmp_path / "old"
    (env / "conda-meta").mkdir(parents=True)
    (env / "conda-meta" / "a-1-0.json").write_text(json.dumps(
        {"name": "a", "version": "1", "url": "https://repo.anaconda.com/pkgs/main/osx-arm64/a-1-0.conda"}))
    assert conda.env_platform(env) == "osx-arm64"
    (env / "conda-meta" / "b-1-0.json").write_text(json.dumps({"name": "b", "version": "1", "subdir": "linux-64"}))
    with pytest.raises(conda.CondaError, match="several platforms"):
        conda.env_platform(env)


# ----------------------------------------------------------------------------- pip on top, refusals


def test_pip_over_conda_package_is_refused_naming_it(fresh_env: Path, tmp_path: Path) -> None:
    whl = condaenv.make_wheel(tmp_path / "w", "tinylib", "2.0", {"tinylib/__init__.py": b"VERSION = '2.0'\n"})
    _pip(fresh_env, "install", "--no-deps", "--no-index", str(whl), home=tmp_path / "pip-home")
    assert conda.pip_packages(fresh_env) == [("tinylib", "2.0")]

    out = tmp_path / "env.tar.gz"
    with pytest.raises(conda.ModifiedEnvironmentError) as ei:
        conda.pack_env(prefix=fresh_env, output=out)
    err = ei.value
    assert "tinylib 1.0" in err.message and "pip" in err.message
    assert any("tinylib/old.py" in p for p in err.problems)
    assert "--ignore-missing-files" in (err.hint or "") and "conda install --force-reinstall" in (err.hint or "")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".offpkg-tmp-" in p.name]

    res = conda.pack_env(prefix=fresh_env, output=out, ignore_missing_files=True)
    assert res.pip_packages == [("tinylib", "2.0")]
    assert any("--ignore-missing-files" in w for w in res.warnings)


def test_pip_packages_on_top_are_listed_and_can_be_left_out(fresh_env: Path, tmp_path: Path) -> None:
    whl = condaenv.make_wheel(tmp_path / "w", "tinyextra", "0.5", {"tinyextra.py": b"X = 1\n"})
    _pip(fresh_env, "install", "--no-deps", "--no-index", str(whl), home=tmp_path / "pip-home")
    assert conda.pip_packages(fresh_env) == [("tinyextra", "0.5")]

    full = conda.pack_env(prefix=fresh_env, output=tmp_path / "full.tar.gz")
    slim = conda.pack_env(prefix=fresh_env, output=tmp_path / "slim.tar.gz", exclude_pip=True)
    with tarfile.open(full.path) as tf:
        full_names = set(tf.getnames())
    with tarfile.open(slim.path) as tf:
        slim_names = set(tf.getnames())
    site = condaenv.SITE
    assert f"{site}/tinyextra.py" in full_names and f"{site}/tinyextra-0.5.dist-info/RECORD" in full_names
    assert not {n for n in slim_names if "tinyextra" in n}
    assert full_names - slim_names == {n for n in full_names if "tinyextra" in n}
    assert slim.pip_packages == [("tinyextra", "0.5")] and slim.files < full.files


def test_missing_conda_file_is_refused(fresh_env: Path, tmp_path: Path) -> None:
    (fresh_env / "share/tinylib/plain.txt").unlink()  # unlink only: the file is a hard link into the cache
    with pytest.raises(conda.ModifiedEnvironmentError) as ei:
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.zst")
    assert ei.value.packages == {"tinylib 1.0": ["share/tinylib/plain.txt"]}
    assert ei.value.exit_code == 3


@pytest.mark.parametrize("kind", ["direct_url", "egg-link"])
def test_editable_install_is_refused(fresh_env: Path, tmp_path: Path, kind: str) -> None:
    site = fresh_env / condaenv.SITE
    src = tmp_path / "src" / "mypkg"
    src.mkdir(parents=True)
    if kind == "direct_url":
        # what `pip install -e` writes (PEP 610/660)
        di = site / "mypkg-0.1.dist-info"
        di.mkdir()
        (di / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
        (di / "direct_url.json").write_text(json.dumps({"url": src.as_uri(), "dir_info": {"editable": True}}))
        (site / "__editable__.mypkg-0.1.pth").write_text(str(src) + "\n")
    else:
        # what `setup.py develop` writes; conda-pack 0.9 itself does not look for these
        (site / "mypkg.egg-link").write_text(f"{src}\n.\n")
        (site / "easy-install.pth").write_text(str(src) + "\n")
    with pytest.raises(conda.EditablePackagesError) as ei:
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")
    assert ei.value.packages == ["mypkg"] and "editable" in ei.value.message
    assert "pip install ." in (ei.value.hint or "")
    assert conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz", ignore_editable=True).size > 0


def test_package_cache_cleaned_is_a_warning(conda_fx: condaenv.CondaFixture, tmp_path: Path) -> None:
    env = conda_fx.make_env(tmp_path / "env", cache=tmp_path / "own-cache")
    shutil.rmtree(tmp_path / "own-cache")  # like `conda clean -p`
    res = conda.pack_env(prefix=env, output=tmp_path / "env.tar.gz")
    assert len(res.warnings) == 1 and "package cache" in res.warnings[0]
    assert all(name in res.warnings[0] for name in ("python", "tinylib", "tinycli"))


def test_damaged_record_is_a_clear_error(fresh_env: Path, tmp_path: Path) -> None:
    rec = next((fresh_env / "conda-meta").glob("tinylib-*.json"))
    rec.write_text("{not json")
    with pytest.raises(conda.CondaError, match="tinylib"):
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")
    rec.write_text(json.dumps({"name": "tinylib", "version": "1.0", "subdir": HOST}))  # no `link`, no `files`
    with pytest.raises(conda.CondaError, match="cannot read the environment"):
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")


def test_not_a_conda_environment(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(conda.NotACondaEnvError, match="not a conda environment"):
        conda.pack_env(prefix=tmp_path / "plain", output=tmp_path / "x.tar.gz")
    with pytest.raises(conda.NotACondaEnvError, match="does not exist"):
        conda.pack_env(prefix=tmp_path / "missing", output=tmp_path / "x.tar.gz")


# ----------------------------------------------------------------------------- install refusals and cleanup


def test_wrong_platform_is_refused_before_anything_is_written(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    new = tmp_path / "new"
    with pytest.raises(TargetMismatchError) as ei:
        conda.install_packed(packed_dir.path, new, expected_platform=OTHER)
    assert OTHER in ei.value.message and HOST in ei.value.message and ei.value.exit_code == 6
    assert not new.exists()


def test_archive_of_another_platform_is_removed_again(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    bad = _copy(packed_dir.path, tmp_path / "bad.no-archive")
    for rec in (bad / "conda-meta").glob("*.json"):
        data = json.loads(rec.read_text())
        if data.get("subdir") == HOST:
            data["subdir"] = OTHER
        rec.write_text(json.dumps(data))
    new = tmp_path / "new"
    with pytest.raises(TargetMismatchError, match=f"holds a {OTHER} environment"):
        conda.install_packed(bad, new, expected_platform=HOST)
    assert not new.exists()


def test_existing_prefix_is_refused_but_an_empty_folder_is_used(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        conda.install_packed(packed_dir.path, busy, expected_platform=HOST)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    rep = conda.install_packed(packed_dir.path, empty, expected_platform=HOST)
    assert (empty / "conda-meta").is_dir() and rep.prefix == empty


def test_hostile_tar_member_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        for name, data in [("conda-meta/x.json", b"{}"), ("../outside.txt", b"pwned")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    new = tmp_path / "dest" / "env"
    with pytest.raises(UnsafeArchiveError, match="outside"):
        conda.install_packed(evil, new, expected_platform=HOST)
    assert not (tmp_path / "dest" / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
    assert not new.exists()


def test_absolute_symlink_in_folder_is_refused(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    bad = _copy(packed_dir.path, tmp_path / "bad.no-archive")
    os.symlink("/etc/passwd", bad / "bin" / "evil")
    with pytest.raises(UnsafeArchiveError, match="bin/evil"):
        conda.install_packed(bad, tmp_path / "new", expected_platform=HOST)
    os.unlink(bad / "bin" / "evil")
    os.symlink("../../..", bad / "bin" / "up")
    with pytest.raises(UnsafeArchiveError, match="bin/up"):
        conda.install_packed(bad, tmp_path / "new", expected_platform=HOST)
    assert not (tmp_path / "new").exists()


def _set_records(prefix: Path, records: list[tuple[str, str, str]]) -> None:
    script = prefix / "bin" / "conda-unpack"
    text = script.read_text()
    new = "_prefix_records = [\n" + ",\n".join(repr(r) for r in records) + "\n]\n"
    script.write_text(re.sub(r"_prefix_records = \[.*?\n\]\n", lambda m: new, text, count=1, flags=re.S))


def test_prefix_record_pointing_outside_is_refused(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    bad = _copy(packed_dir.path, tmp_path / "bad.no-archive")
    victim = tmp_path / "victim.txt"
    victim.write_text(f"{condaenv.PLACEHOLDER}/etc\n")
    _set_records(bad, [("share/tinylib/config.txt", condaenv.PLACEHOLDER, "text"),
                       ("../victim.txt", condaenv.PLACEHOLDER, "text")])
    new = tmp_path / "new"
    with pytest.raises(UnsafeArchiveError, match="victim.txt"):
        conda.install_packed(bad, new, expected_platform=HOST)
    assert victim.read_text() == f"{condaenv.PLACEHOLDER}/etc\n" and not new.exists()


def test_placeholder_left_behind_is_caught_and_prefix_removed(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    bad = _copy(packed_dir.path, tmp_path / "bad.no-archive")
    # A binary placeholder with no terminating NUL: conda-unpack's binary rule cannot rewrite it.
    with open(bad / "lib/libtiny.so", "ab") as f:
        f.write(b"\xff" + condaenv.PLACEHOLDER.encode())
    new = tmp_path / "new"
    with pytest.raises(conda.PrefixNotRewrittenError) as ei:
        conda.install_packed(bad, new, expected_platform=HOST)
    assert "lib/libtiny.so" in (ei.value.details or "") and ei.value.exit_code == 7
    assert not new.exists()


def test_prefix_longer_than_binary_placeholder_fails_cleanly(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    deep = tmp_path
    while len(str(deep)) <= len(condaenv.PLACEHOLDER) + 10:
        deep = deep / ("d" * 60)
    new = deep / "env"
    with pytest.raises(InstallError) as ei:
        conda.install_packed(packed_dir.path, new, expected_platform=HOST)
    assert "conda-unpack failed" in ei.value.message and "shorter path" in (ei.value.hint or "")
    assert not new.exists()


def test_unpack_uses_a_python_that_exists_without_path(packed_dir: conda.PackResult, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    no_py = _copy(packed_dir.path, tmp_path / "nopy.no-archive")
    for name in ("python", "python3"):
        (no_py / "bin" / name).unlink()  # the environment's python is gone...
    monkeypatch.setenv("PATH", "/nonexistent")  # ...and no python on PATH for `#!/usr/bin/env python`
    new = tmp_path / "new"
    rep = conda.install_packed(no_py, new, expected_platform=HOST, python=Path(sys.executable))
    assert rep.python == sys.executable
    assert (new / "share/tinylib/config.txt").read_text() == condaenv.text_payload(str(new))


def test_existing_condarc_is_kept_as_backup(tmp_path: Path) -> None:
    (tmp_path / ".condarc").write_text("channels: [conda-forge]\n")
    rc, backup = conda.write_offline_condarc(tmp_path, ["file:///srv/mirror/conda-forge"])
    assert backup == tmp_path / ".condarc.before-offpkg" and "conda-forge" in backup.read_text()
    text = rc.read_text()
    assert 'channels: ["file:///srv/mirror/conda-forge"]' in text and "offline: true" in text


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_leftover_scan_streams_and_ignores_the_new_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          chunk: int) -> None:
    from offpkg.conda import prefixscan

    monkeypatch.setattr(prefixscan, "_CHUNK", chunk)
    f = tmp_path / "f"
    # the old prefix is a prefix of the new one: its occurrences inside the new prefix do not count
    f.write_bytes(b"x" * 50 + b"/opt/env2/lib\x00" * 20 + b"y" * 30)
    assert prefixscan.leftover(f, ["/opt/env"], "/opt/env2") is None
    f.write_bytes(b"x" * 50 + b"/opt/env2/lib\x00" * 20 + b"/opt/env/lib" + b"y" * 30)
    assert prefixscan.leftover(f, ["/opt/env"], "/opt/env2") == "/opt/env"
    f.write_bytes(b"/opt/env")
    assert prefixscan.leftover(f, ["/opt/env"], "/opt/env2") == "/opt/env"


# ----------------------------------------------------------------------------- CLI


def _offpkg(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run ``offpkg`` through its real error boundary (offpkg.cli.main); the command registry finds `conda`."""
    from click.testing import CliRunner

    from offpkg import cli as climod
    from offpkg.cli import ui

    monkeypatch.setattr(ui.state, "json", False)
    runner = CliRunner()
    code = 0
    with runner.isolation() as streams:
        out, err = streams[0], streams[1]
        monkeypatch.setattr(ui, "err", ui.Console(file=sys.stderr, highlight=False, soft_wrap=True))
        monkeypatch.setattr(ui, "out", ui.Console(file=sys.stdout, highlight=False, soft_wrap=True))
        try:
            climod.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        o, e = out.getvalue().decode(), err.getvalue().decode()
    return code, o, e


def test_cli_conda_pack_json(src_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "env.tar.gz"
    code, stdout, stderr = _offpkg(["conda", "pack", "-p", str(src_env), "-o", str(out), "--json"], monkeypatch)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["command"] == "conda pack" and doc["ok"] is True and doc["schema_version"] >= 1
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert doc["platform"] == HOST and doc["format"] == "tar.gz" and doc["packages"] == 3


def test_cli_conda_pack_human_output(src_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "env.tar.zst"
    code, stdout, stderr = _offpkg(["conda", "pack", "-p", str(src_env), "-o", str(out)], monkeypatch)
    assert code == 0, stderr
    assert "ok:" in stdout and "tar.zst" in stdout and "sha256:" in stdout


def test_cli_conda_pack_errors(src_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain").mkdir()
    code, stdout, stderr = _offpkg(["conda", "pack", "-p", str(tmp_path / "plain"), "-o", str(tmp_path / "o.tar.gz")],
                                   monkeypatch)
    assert code == 3 and "error:" in stderr and "not a conda environment" in stderr and "Traceback" not in stderr
    code, stdout, stderr = _offpkg(["conda", "pack", "-o", str(tmp_path / "o.tar.gz")], monkeypatch)
    assert code == 2 and "-n NAME or -p PREFIX" in stderr
    existing = tmp_path / "exists.tar.gz"
    existing.write_bytes(b"x")
    code, stdout, stderr = _offpkg(["conda", "pack", "-p", str(src_env), "-o", str(existing), "--json"], monkeypatch)
    assert code == 9 and "Traceback" not in stderr
    doc = json.loads(stdout)
    assert doc["ok"] is False and doc["error"]["type"] == "OutputExistsError"
    assert existing.read_bytes() == b"x"


# ----------------------------------------------------------------------------- build refuses what install refuses (13.7)


def _raw_pack(env: Path, out: Path) -> Path:
    """The archive conda-pack itself writes, without offpkg's checks: what the target would receive."""
    from conda_pack import CondaEnv

    CondaEnv.from_prefix(str(env)).pack(output=str(out), format="tar.gz")
    return out


def _member_part(message: str) -> str:
    """``member NAME REASON``: the words the build and the install share."""
    assert "member " in message, message
    return message[message.index("member "):]


@pytest.mark.parametrize("case", ["absolute link", "link up and out", "link through a link", "clobbered file"])
def test_pack_refuses_what_install_refuses_with_the_same_words(fresh_env: Path, tmp_path: Path, case: str) -> None:
    share = fresh_env / "share"
    if case == "absolute link":
        os.symlink("/etc/passwd", share / "evil")
    elif case == "link up and out":
        os.symlink("../../outside", share / "up")
    elif case == "link through a link":
        os.symlink("..", share / "parent")  # harmless alone: it stays inside
        os.symlink("parent/../../etc", share / "through")  # ... but through it, out
    else:
        # An environment that was itself unpacked from conda-pack still has bin/conda-unpack;
        # conda-pack adds its own, so the archive would hold the name twice.
        (fresh_env / "bin" / "conda-unpack").write_text("#!/bin/sh\necho stale\n")
    archive = _raw_pack(fresh_env, tmp_path / "raw.tar.gz")
    with pytest.raises(UnsafeArchiveError) as at_install:
        conda.install_packed(archive, tmp_path / "target", expected_platform=HOST)
    assert not (tmp_path / "target").exists()

    out = tmp_path / "env.tar.gz"
    with pytest.raises(UnsafeArchiveError) as at_build:
        conda.pack_env(prefix=fresh_env, output=out)
    assert not out.exists() and not list(tmp_path.glob(".env.tar.gz*"))
    assert _member_part(at_build.value.message) == _member_part(at_install.value.message)
    assert str(fresh_env) in at_build.value.message and "offpkg install would refuse" in at_build.value.hint


def test_pack_refuses_a_fifo_as_a_folder_install_would(fresh_env: Path, packed_dir: conda.PackResult,
                                                       tmp_path: Path) -> None:
    """conda-pack would block reading a FIFO; offpkg refuses it first, as the install refuses one in a folder."""
    os.mkfifo(fresh_env / "share" / "pipe")
    with pytest.raises(UnsafeArchiveError) as at_build:
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")
    folder = _copy(packed_dir.path, tmp_path / "bad.no-archive")
    os.mkfifo(folder / "share" / "pipe")
    with pytest.raises(UnsafeArchiveError) as at_install:
        conda.install_packed(folder, tmp_path / "target", expected_platform=HOST)
    assert _member_part(at_build.value.message) == _member_part(at_install.value.message)
    assert "FIFO" in at_build.value.message


def test_prefix_record_rule_is_shared(fresh_env: Path, tmp_path: Path) -> None:
    """A file conda-unpack would rewrite that is a link: refused at build with the install's words."""
    from offpkg.conda.checks import check_prefix_record

    cfg = fresh_env / "share" / "tinylib" / "config.txt"  # tinylib's text-placeholder file
    assert cfg.is_file()
    cfg.unlink()
    os.symlink("../../bin/python", cfg)
    with pytest.raises(UnsafeArchiveError) as at_build:
        conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")
    with pytest.raises(UnsafeArchiveError) as direct:
        check_prefix_record("share/tinylib/config.txt", fresh_env, "conda-unpack")
    assert at_build.value.message.endswith(direct.value.message)
    assert "is not a regular file inside the environment" in direct.value.message


def test_case_only_differences_are_a_warning_not_a_refusal(fresh_env: Path, tmp_path: Path) -> None:
    (fresh_env / "share" / "Term").write_text("a")
    (fresh_env / "share" / "term").write_text("b")
    res = conda.pack_env(prefix=fresh_env, output=tmp_path / "env.tar.gz")
    assert any("differ only in case" in w and "share/Term" in w for w in res.warnings), res.warnings


def test_cli_conda_pack_refusal_is_one_json_error(fresh_env: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    os.symlink("/etc", fresh_env / "share" / "etc")
    code, stdout, stderr = _offpkg(["conda", "pack", "-p", str(fresh_env), "-o", str(tmp_path / "e.tar.gz"),
                                    "--json"], monkeypatch)
    doc = json.loads(stdout)
    assert code == 3 and doc["ok"] is False and "symbolic link to an absolute path" in doc["error"]["message"]
    assert "Traceback" not in stderr and not (tmp_path / "e.tar.gz").exists()


def test_an_unpacked_environment_packs_again(packed_dir: conda.PackResult, tmp_path: Path) -> None:
    """An environment offpkg unpacked holds conda-pack's own scripts; packing it again leaves those out
    (conda-pack writes them afresh) instead of doubling them, and the result installs."""
    first = tmp_path / "first"
    conda.install_packed(packed_dir.path, first, expected_platform=HOST, original_prefix=packed_dir.source_prefix)
    assert (first / "bin" / "conda-unpack").is_file() and (first / "bin" / "activate.fish").is_file()
    again = conda.pack_env(prefix=first, output=tmp_path / "again.tar.gz")
    assert any("left out bin/activate.fish, bin/conda-unpack, bin/conda_unpack_progress.py" in w
               for w in again.warnings), again.warnings
    second = tmp_path / "second"
    conda.install_packed(again.path, second, expected_platform=again.platform, original_prefix=again.source_prefix)
    run = subprocess.run([str(second / "bin" / "python"), "-c", "import tinylib, sys; print(sys.prefix)"],
                         capture_output=True, text=True, env=isolated_env(home=str(tmp_path)))
    assert run.returncode == 0 and run.stdout.strip() == str(second), run.stderr
