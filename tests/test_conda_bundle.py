"""Conda environments inside offpkg bundles, end to end on real conda environments (tests/condaenv.py).

``offpkg bundle --conda-env`` here, ``offpkg verify``, then ``offpkg install
--conda-prefix`` with no network at all (unshare -n): prefixes rewritten, the
noarch entry point runs, the offline .condarc is there; ``--pip-as-wheels``
carries what pip installed on top as locked wheels and puts it back; and the
refusals: a damaged conda archive, another platform, an existing prefix, a
bundle without conda, wheels for another Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import condaenv
from helpers import Index, assert_clean_error, run_offpkg, serve
from offpkg import conda
from offpkg._subprocess import isolated_env
from pkgfactory import Dist, build_wheel, write_simple_index

HOST = conda.host_subdir()

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the test python package is made like a POSIX venv")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("condabundle")


@pytest.fixture(scope="module")
def menv(base: Path, session_uv_cache: Path) -> dict[str, str]:
    """Environment for the module's offpkg subprocesses (like conftest's ``env``, shared by the module)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = base / "home"
    home.mkdir()
    e.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
             PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "offpkg-cache"),
             UV_CACHE_DIR=str(session_uv_cache), PYTHONUTF8="1", NO_COLOR="1", CI="1")
    return e


@pytest.fixture(scope="module")
def conda_fx(base: Path) -> condaenv.CondaFixture:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(base / "home-rattler"))  # rattler must not touch the real home
        return condaenv.make_fixture(base / "fx")


def _make_env(fx: condaenv.CondaFixture, prefix: Path) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(fx.root / "home"))
        return fx.make_env(prefix)


def _pip_install(env: Path, *args: str, home: Path) -> None:
    """Real pip for the environment's interpreter (`pip --python`), isolated from this machine's config."""
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                           "--no-cache-dir", *args], env=isolated_env(home=str(home)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def src_env(conda_fx: condaenv.CondaFixture, base: Path) -> Path:
    return _make_env(conda_fx, base / "src-env")


@pytest.fixture(scope="module")
def pip_env(conda_fx: condaenv.CondaFixture, base: Path, index: Index) -> Path:
    """An environment where real pip installed alpha (-> beta -> gamma) and pip itself from the local index."""
    env = _make_env(conda_fx, base / "pip-env")
    _pip_install(env, "-i", index.url, "alpha", "pip", home=base / "pip-home")
    assert [n for n, _ in conda.pip_packages(env)] == ["alpha", "beta", "gamma", "pip"]
    return env


def _pip_version(env: Path) -> str:
    return dict(conda.pip_packages(env))["pip"]


def _bundle(menv: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_offpkg(["bundle", *args, "--json"], menv)


@pytest.fixture(scope="module")
def plain_bundle(src_env: Path, base: Path, menv: dict[str, str], index: Index) -> Path:
    """src_env alone in a bundle directory (no Python requirements at all)."""
    out = base / "plain-bundle"
    proc = _bundle(menv, "--conda-env", str(src_env), "-i", index.url, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def _copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copy2)  # copies: the tests below edit files
    return dst


def _tar_zst_names(path: Path) -> set[str]:
    import zstandard

    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as zr, \
            tarfile.open(fileobj=zr, mode="r|") as tf:
        return {m.name for m in tf}


def _install(menv: dict[str, str], bundle: Path, prefix: Path, offline: tuple[str, ...] | None,
             *extra: str) -> subprocess.CompletedProcess[str]:
    return run_offpkg(["install", str(bundle), "--conda-prefix", str(prefix), *extra], menv, offline=offline)


def _assert_relocated(prefix: Path, src: Path) -> None:
    assert (prefix / "share/tinylib/config.txt").read_text() == condaenv.text_payload(str(prefix))
    assert (prefix / "lib/libtiny.so").read_bytes() == condaenv.binary_payload(str(prefix))
    for p in prefix.rglob("*"):
        rel = p.relative_to(prefix).as_posix()
        if p.is_file() and not p.is_symlink() and not rel.startswith("conda-meta/") and rel != "bin/conda-unpack" \
                and rel != "offpkg-receipt.json":
            data = p.read_bytes()
            assert condaenv.PLACEHOLDER.encode() not in data and str(src).encode() not in data, rel
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "HOME": str(prefix.parent)}
    run = subprocess.run([str(prefix / "bin" / "tinycli")], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"tinycli runs from {prefix}", run.stderr
    rc = (prefix / ".condarc").read_text()
    assert "offline: true" in rc and "\nchannels: []" in rc and "default_channels: []" in rc


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["dir", "tar"])
def test_conda_env_bundle_verifies_and_installs_offline(src_env: Path, plain_bundle: Path, base: Path, tmp_path: Path,
                                                        menv: dict[str, str], index: Index, offline: tuple[str, ...],
                                                        kind: str) -> None:
    bundle = plain_bundle
    if kind == "tar":
        bundle = tmp_path / "b.tar"
        proc = _bundle(menv, "--conda-env", str(src_env), "-i", index.url, "-o", str(bundle))
        assert proc.returncode == 0, proc.stderr
        assert bundle.is_file() and tarfile.is_tarfile(bundle)
    else:
        manifest = json.loads((bundle / "offpkg.json").read_text())
        entry = next(f for f in manifest["files"] if f["path"].startswith("conda/"))
        assert entry["path"] == "conda/src-env.tar.zst"
        data = (bundle / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert f"{entry['sha256']}  conda/src-env.tar.zst" in (bundle / "SHA256SUMS").read_text()
        c = manifest["conda"]
        assert c == {"path": "conda/src-env.tar.zst", "format": "tar.zst", "platform": HOST,
                     "source_prefix": str(src_env), "python": condaenv.PY_FULL, "packages": 3,
                     "files": c["files"], "pip_as_wheels": False, "pip_packages": []}
        # nothing but the conda environment: no wheels, an empty lock
        assert manifest["packages"] == [] or all(p["role"] == "tool" for p in manifest["packages"])
        assert "--hash" not in (bundle / "requirements.txt").read_text()
        assert "packages = []" in (bundle / "pylock.toml").read_text()
        # the target is the environment's own interpreter
        assert manifest["targets"][0]["markers"]["python_full_version"] == condaenv.PY_FULL
        check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=bundle, capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr

    ver = run_offpkg(["verify", str(bundle), "--json"], menv)
    assert ver.returncode == 0, ver.stderr
    assert json.loads(ver.stdout)["ok"] is True

    prefix = tmp_path / "installed" / "env"
    proc = _install(menv, bundle, prefix, offline, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["ok"] is True and res["prefix"] == str(prefix) and res["platform"] == HOST
    assert res["rewritten"] >= 2 and res["wheels"] == [] and res["condarc"] == str(prefix / ".condarc")
    assert res["pip_check"] == "skipped: the environment has no pip"
    assert res["python"] == str(prefix / "bin" / "python")
    _assert_relocated(prefix, src_env)
    receipt = json.loads((prefix / "offpkg-receipt.json").read_text())
    assert receipt["conda"]["path"] == "conda/src-env.tar.zst" and not (prefix / ".offpkg-incomplete").exists()
    assert not list((prefix / "conda-meta").glob("offpkg*"))  # conda-meta holds package records only


def test_pip_as_wheels_carries_pip_packages_as_locked_wheels(pip_env: Path, base: Path, tmp_path: Path,
                                                             menv: dict[str, str], index: Index,
                                                             offline: tuple[str, ...]) -> None:
    out = tmp_path / "b"
    proc = _bundle(menv, "--conda-env", str(pip_env), "--pip-as-wheels", "-i", index.url, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "offpkg.json").read_text())
    c = manifest["conda"]
    assert c["pip_as_wheels"] is True and c["path"] == "conda/pip-env.tar.zst"
    pipv = _pip_version(pip_env)
    assert c["pip_packages"] == [{"name": "alpha", "version": "1.0"}, {"name": "beta", "version": "1.1"},
                                 {"name": "gamma", "version": "2.0"}, {"name": "pip", "version": pipv}]
    assert manifest["requirements"] == ["alpha==1.0", "beta==1.1", "gamma==2.0", f"pip=={pipv}"]
    # the conda part is clean: nothing pip installed is in it
    names = _tar_zst_names(out / c["path"])
    assert f"{condaenv.SITE}/tinylib/__init__.py" in names
    assert not [n for n in names if any(p in n for p in ("alpha", "beta", "gamma", "site-packages/pip"))]
    # the pip part: locked wheels with their hashes, like any bundle
    wheels = {p["name"]: p for p in manifest["packages"] if p["role"] == "requirement"}
    assert sorted(wheels) == ["alpha", "beta", "gamma", "pip"]
    req = (out / "requirements.txt").read_text()
    for p in wheels.values():
        assert (out / p["path"]).is_file() and hashlib.sha256((out / p["path"]).read_bytes()).hexdigest() == p["sha256"]
        assert f"{p['name']}=={p['version']}" in req and f"--hash=sha256:{p['sha256']}" in req

    prefix = tmp_path / "new-env"
    proc = _install(menv, out, prefix, offline, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["wheels"] == ["alpha==1.0", "beta==1.1", "gamma==2.0", f"pip=={pipv}"]
    assert res["backend"] in ("uv", "pip") and res["pip_check"] == "ok"  # the environment's own pip checked it
    _assert_relocated(prefix, pip_env)
    run = subprocess.run([str(prefix / "bin" / "python"), "-c",
                          "import alpha, beta, gamma, tinylib; print(alpha.__file__); print(beta.__version__)"],
                         capture_output=True, text=True, env={"HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(prefix / condaenv.SITE / "alpha" / "__init__.py"), "1.1"]
    assert conda.pip_packages(prefix) == conda.pip_packages(pip_env)


def test_without_pip_as_wheels_pip_packages_stay_in_the_archive(pip_env: Path, tmp_path: Path,
                                                                menv: dict[str, str], index: Index) -> None:
    out = tmp_path / "b"
    proc = _bundle(menv, "--conda-env", str(pip_env), "-i", index.url, "--no-tools", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "offpkg.json").read_text())
    assert manifest["conda"]["pip_as_wheels"] is False and manifest["packages"] == []
    assert len(manifest["conda"]["pip_packages"]) == 4
    names = _tar_zst_names(out / manifest["conda"]["path"])
    assert f"{condaenv.SITE}/alpha/__init__.py" in names and f"{condaenv.SITE}/alpha-1.0.dist-info/RECORD" in names


@pytest.fixture(scope="module")
def tiny_index(base: Path) -> str:
    """An index with tinylib 1.0 and 2.0 (also a conda package here) and usestiny 0.1, which needs tinylib."""
    files = base / "tiny-idx" / "files"
    build_wheel(Dist("tinylib", "1.0"), files)
    build_wheel(Dist("tinylib", "2.0"), files)
    build_wheel(Dist("usestiny", "0.1", ["tinylib"]), files)
    write_simple_index(files, base / "tiny-idx")
    server, url = serve(base / "tiny-idx")
    yield f"{url}/simple"
    server.shutdown()


def test_pip_over_a_conda_package(conda_fx: condaenv.CondaFixture, tmp_path: Path, menv: dict[str, str],
                                  tiny_index: str, offline: tuple[str, ...]) -> None:
    """pip replaced conda's tinylib 1.0 with 2.0: refused as is (pointing at --pip-as-wheels), carried with it."""
    env = _make_env(conda_fx, tmp_path / "env")
    _pip_install(env, "-i", tiny_index, "tinylib==2.0", home=tmp_path / "pip-home")
    assert not (env / condaenv.SITE / "tinylib" / "old.py").exists()  # pip removed conda's file

    proc = _bundle(menv, "--conda-env", str(env), "-i", tiny_index, "-o", str(tmp_path / "refused"))
    assert_clean_error(proc, 3, "tinylib 1.0", "--pip-as-wheels")
    assert not (tmp_path / "refused").exists()
    assert not [p for p in tmp_path.iterdir() if "offpkg" in p.name]  # no temp folder left behind

    out = tmp_path / "b.tar"
    proc = _bundle(menv, "--conda-env", str(env), "--pip-as-wheels", "-i", tiny_index, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "pip replaced files of the conda packages tinylib 1.0" in proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    prefix = tmp_path / "new"
    proc = _install(menv, out, prefix, offline, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["wheels"] == ["tinylib==2.0"]
    run = subprocess.run([str(prefix / "bin" / "python"), "-c", "import tinylib; print(tinylib.__version__)"],
                         capture_output=True, text=True, env={"HOME": str(tmp_path)})
    assert run.stdout.strip() == "2.0", run.stderr
    assert not (prefix / condaenv.SITE / "tinylib" / "old.py").exists()
    _assert_relocated(prefix, env)


def test_dependency_conda_provides_keeps_condas_version(conda_fx: condaenv.CondaFixture, tmp_path: Path,
                                                        menv: dict[str, str], tiny_index: str,
                                                        offline: tuple[str, ...]) -> None:
    """usestiny (pip) needs tinylib, which conda installed (1.0): the lock keeps 1.0, and conda's copy stays."""
    env = _make_env(conda_fx, tmp_path / "env")
    _pip_install(env, "-i", tiny_index, "usestiny", home=tmp_path / "pip-home")
    out = tmp_path / "b"
    proc = _bundle(menv, "--conda-env", str(env), "--pip-as-wheels", "-i", tiny_index, "--no-tools", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "offpkg.json").read_text())
    assert sorted(f"{p['name']}=={p['version']}" for p in manifest["packages"]) == ["tinylib==1.0", "usestiny==0.1"]
    prefix = tmp_path / "new"
    proc = _install(menv, out, prefix, offline, "--json")
    assert proc.returncode == 0, proc.stderr
    site = prefix / condaenv.SITE
    assert (site / "tinylib-1.0.dist-info" / "INSTALLER").read_text().strip() == "conda"  # satisfied, not replaced
    assert (site / "tinylib" / "old.py").is_file()
    assert (site / "usestiny-0.1.dist-info").is_dir()


def test_conda_env_by_name(src_env: Path, tmp_path: Path, menv: dict[str, str], index: Index) -> None:
    """A name is looked up in ~/.conda/environments.txt when there is no conda (these machines have none)."""
    home = Path(menv["HOME"])
    (home / ".conda").mkdir(exist_ok=True)
    (home / ".conda" / "environments.txt").write_text(f"{src_env}\n")
    e = menv | {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = run_offpkg(["bundle", "--conda-env", "src-env", "-i", index.url, "--no-tools", "-o", str(tmp_path / "b"),
                       "--json"], e)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b" / "offpkg.json").read_text())["conda"]["source_prefix"] == str(src_env)
    proc = run_offpkg(["bundle", "--conda-env", "nope", "--no-tools", "-o", str(tmp_path / "c")], e)
    assert_clean_error(proc, 3, "no conda environment named 'nope'")


# ----------------------------------------------------------------------------- refusals


def test_corrupted_conda_archive_is_refused_before_extracting(plain_bundle: Path, tmp_path: Path,
                                                              menv: dict[str, str]) -> None:
    bundle = _copy_bundle(plain_bundle, tmp_path / "b")
    arc = bundle / "conda" / "src-env.tar.zst"
    data = bytearray(arc.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    arc.write_bytes(bytes(data))
    prefix = tmp_path / "env"
    proc = _install(menv, bundle, prefix, None)
    assert_clean_error(proc, 1, "failed verification", "conda/src-env.tar.zst: sha256 is")
    assert not prefix.exists()


def test_wrong_platform_exits_6_and_leaves_no_prefix(plain_bundle: Path, tmp_path: Path,
                                                      menv: dict[str, str]) -> None:
    from offpkg.bundle import write_manifest
    from offpkg.manifest import Manifest

    bundle = _copy_bundle(plain_bundle, tmp_path / "b")
    m = Manifest.read(bundle)
    other = "win-64" if HOST != "win-64" else "linux-64"
    write_manifest(bundle, Manifest.from_json(m.to_json() | {"conda": {**m.conda, "platform": other}}))
    assert run_offpkg(["verify", str(bundle)], menv).returncode == 0  # consistent: only the platform is wrong
    prefix = tmp_path / "env"
    proc = _install(menv, bundle, prefix, None)
    assert_clean_error(proc, 6, f"for {other}", f"this host is {HOST}")
    assert not prefix.exists()


def test_a_prefix_merely_holding_the_marker_file_is_never_deleted(plain_bundle: Path, tmp_path: Path,
                                                                  menv: dict[str, str]) -> None:
    prefix = tmp_path / "env"
    prefix.mkdir()
    (prefix / ".offpkg-incomplete").write_text("offpkg install in progress\n")  # no run record: not offpkg's
    (prefix / "keep.txt").write_text("mine")
    proc = _install(menv, plain_bundle, prefix, None)
    assert_clean_error(proc, 9, "already exists")
    assert sorted(p.name for p in prefix.iterdir()) == [".offpkg-incomplete", "keep.txt"]


def test_existing_prefix_is_refused(plain_bundle: Path, tmp_path: Path, menv: dict[str, str]) -> None:
    prefix = tmp_path / "busy"
    prefix.mkdir()
    (prefix / "keep.txt").write_text("mine")
    proc = _install(menv, plain_bundle, prefix, None)
    assert_clean_error(proc, 9, "already exists")
    assert [p.name for p in prefix.iterdir()] == ["keep.txt"]


def test_leftover_of_an_interrupted_install_is_replaced(plain_bundle: Path, tmp_path: Path, menv: dict[str, str],
                                                        src_env: Path, offline: tuple[str, ...]) -> None:
    """What a killed run leaves: its record beside the prefix and its marker (same run id) inside."""
    from offpkg import ownership

    prefix = tmp_path / "env"
    rec = ownership.begin(prefix, "create", plain_bundle)
    ownership.make_dir(prefix, rec)
    (prefix / "bin").mkdir()
    (prefix / "bin" / "half-written").write_text("x")
    proc = _install(menv, plain_bundle, prefix, offline)
    assert proc.returncode == 0, proc.stderr
    assert "was creating it and was interrupted" in proc.stderr
    assert not (prefix / "bin" / "half-written").exists() and not (prefix / ownership.MARKER).exists()
    assert not ownership.record_path(prefix).exists()
    _assert_relocated(prefix, src_env)


def test_bundle_without_conda_env_is_refused(tmp_path: Path, menv: dict[str, str], index: Index) -> None:
    out = tmp_path / "b"
    proc = _bundle(menv, "gamma", "-i", index.url, "--no-tools", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = _install(menv, out, tmp_path / "env", None)
    assert_clean_error(proc, 3, "carries no conda environment", "--venv")
    assert not (tmp_path / "env").exists()


def test_wheels_for_another_python_are_refused(pip_env: Path, tmp_path: Path, menv: dict[str, str],
                                               index: Index) -> None:
    other = "3.10" if condaenv.PY_VER != "3.10" else "3.12"
    proc = _bundle(menv, "--conda-env", str(pip_env), "--pip-as-wheels", "--python-version", other,
                   "-i", index.url, "-o", str(tmp_path / "b"))
    assert_clean_error(proc, 2, f"Python {condaenv.PY_FULL}", f"--python-version {condaenv.PY_VER}")
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def test_environment_without_python_cannot_take_wheels(tmp_path: Path, index: Index) -> None:
    from offpkg.backends import Sources, get_backend
    from offpkg.bundle import BundleOptions
    from offpkg.conda.bundle import add_conda_env
    from offpkg.errors import UsageError
    from offpkg.events import Events
    from offpkg.target import Target

    env = tmp_path / "nopy"
    (env / "conda-meta").mkdir(parents=True)
    (env / "conda-meta" / "x-1-0.json").write_text(json.dumps({"name": "x", "version": "1", "subdir": HOST,
                                                               "files": []}))
    opts = BundleOptions(requirements=["gamma"], targets=[Target.host()], sources=Sources((index.url,), ()),
                         backend=get_backend("pip"), output=tmp_path / "out")
    with pytest.raises(UsageError, match="has no Python"):
        with add_conda_env(opts, str(env), False, Events(), explicit_target=False):
            pass
    assert "conda" not in opts.extra and sorted(p.name for p in tmp_path.iterdir()) == ["nopy"]


def test_failure_after_unpacking_removes_the_prefix(src_env: Path, tmp_path: Path, menv: dict[str, str],
                                                    index: Index, offline: tuple[str, ...]) -> None:
    """Wheels locked for macOS (the bundle's chosen target): install refuses them after unpacking, and rolls back."""
    out = tmp_path / "b"
    proc = _bundle(menv, "tokenlike", "--conda-env", str(src_env), "--python-version", condaenv.PY_VER,
                   "--platform", "macosx_11_0_arm64", "--no-tools", "-i", index.url, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (out / "wheels").iterdir()] == ["tokenlike-0.3.0-cp39-abi3-macosx_11_0_arm64.whl"]
    prefix = tmp_path / "empty"
    prefix.mkdir()  # an empty folder given as prefix is used, and left empty again
    proc = _install(menv, out, prefix, offline)
    assert_clean_error(proc, 6, "was not made for", "tokenlike-0.3.0-cp39-abi3-macosx_11_0_arm64.whl")
    assert prefix.is_dir() and not list(prefix.iterdir())


def test_bundle_refuses_an_environment_the_install_would_refuse(conda_fx: condaenv.CondaFixture, tmp_path: Path,
                                                                menv: dict[str, str], index: Index) -> None:
    """13.7: a link out of the prefix is found on the build host (exit 3, the install's words), not in the
    server room; nothing is written at OUT and no temporary is left beside it."""
    env = _make_env(conda_fx, tmp_path / "env")
    os.symlink("/usr/share", env / "share" / "host-share")
    out = tmp_path / "out" / "bundle"
    out.parent.mkdir()
    proc = _bundle(menv, "--conda-env", str(env), "-i", index.url, "-o", str(out))
    assert_clean_error(proc, 3, "cannot be installed offline",
                       "member 'share/host-share' is a symbolic link to an absolute path")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and "offpkg install would refuse" in doc["error"]["hint"]
    assert list(out.parent.iterdir()) == []
