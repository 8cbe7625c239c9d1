"""The core round trip against a real index on 127.0.0.1, for both backends:
bundle here, verify, then install with no network at all (unshare -n)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_clean_error

BACKENDS = ["uv", "pip"]
HOST_SET = ["alpha", "tokenlike", "compiled", "puresdist"]


def _bundle(offpkg, env, index, out: Path, *reqs: str, backend: str = "uv", extra: list[str] | None = None):
    proc = offpkg(["bundle", *reqs, "-i", index.url, "-o", str(out), "--backend", backend, "--json",
                   *(extra or [])], env)
    return proc


@pytest.fixture(scope="module")
def host_bundles(tmp_path_factory, index, session_uv_cache):
    """One host bundle per backend, built once for the module."""
    import os

    out = {}
    base = tmp_path_factory.mktemp("bundles")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), CI="1")
    from helpers import run_offpkg

    for b in BACKENDS:
        proc = _bundle(run_offpkg, env, index, base / f"host-{b}", *HOST_SET, backend=b)
        assert proc.returncode == 0, proc.stderr
        out[b] = (base / f"host-{b}", json.loads(proc.stdout))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_bundle_layout_and_lock(host_bundles, backend) -> None:
    path, result = host_bundles[backend]
    assert result["ok"] and result["schema_version"] == 1 and result["backend"] == backend
    wheels = sorted(p.name for p in (path / "wheels").iterdir())
    assert wheels == [
        "alpha-1.0-py3-none-any.whl", "beta-1.1-py3-none-any.whl",
        "compiled-1.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "gamma-2.0-py3-none-any.whl", "puresdist-0.5-py3-none-any.whl",
        "tokenlike-0.3.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    for name in ("offpkg.json", "SHA256SUMS", "requirements.txt", "pylock.toml", "pip.conf", "install.sh",
                 "tools/bootstrap.py", "tools/probe.py"):
        assert (path / name).is_file(), name
    manifest = json.loads((path / "offpkg.json").read_text())
    built = [p for p in manifest["packages"] if p["built_from_sdist"]]
    assert [p["name"] for p in built] == ["puresdist"]
    assert manifest["indexes"] and "@" not in manifest["indexes"][0]
    req = (path / "requirements.txt").read_text()
    assert req.count("--hash=sha256:") == 6 and "beta==1.1" in req
    # SHA256SUMS is checkable with coreutils on a host without offpkg.
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_requirements_txt_installs_with_plain_pip(host_bundles, tmp_path, env, offline) -> None:
    path, _ = host_bundles["uv"]
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    proc = subprocess.run([*offline, str(tmp_path / "v/bin/python"), "-m", "pip", "install", "--no-index",
                           "--find-links", "wheels", "--require-hashes", "-r", "requirements.txt"],
                          cwd=path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pylock_selects_the_same_wheels(host_bundles) -> None:
    from offpkg._compat import tomllib

    from packaging.pylock import Pylock

    from offpkg.target import Target

    path, _ = host_bundles["uv"]
    lock = Pylock.from_dict(tomllib.loads((path / "pylock.toml").read_text()))
    from packaging.tags import sys_tags

    selected = {w.path for _, w in lock.select(tags=list(sys_tags()))}
    assert selected == {f"wheels/{p.name}" for p in (path / "wheels").iterdir()}
    assert Target.host().python_version in str(lock.requires_python)


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_then_install_offline(host_bundles, tmp_path, env, offpkg, offline, backend) -> None:
    path, _ = host_bundles[backend]
    ok = offpkg(["verify", str(path), "--json"], env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    venv = tmp_path / "venv"
    proc = offpkg(["install", str(path), "--venv", str(venv), "--backend", backend, "--json"], env, offline=offline)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == backend
    run = subprocess.run([str(venv / "bin/python"), "-c",
                          "import alpha, beta, gamma, tokenlike, compiled, puresdist; "
                          "print(beta.__version__, compiled.TAG, puresdist.FROM_SDIST)"],
                         capture_output=True, text=True)
    assert run.stdout.split() == ["1.1", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "True"]
    receipt = json.loads((venv / "offpkg-receipt.json").read_text())
    assert receipt["bundle"] == str(path.resolve()) and "alpha==1.0" in receipt["packages"]
    assert not (venv / ".offpkg-incomplete").exists()
    conf = (venv / "pip.conf").read_text()
    assert "no-index = true" in conf and f"find-links = {(path / 'wheels').resolve()}" in conf
    # An existing venv is never modified without --upgrade ...
    again = offpkg(["install", str(path), "--venv", str(venv)], env, offline=offline)
    assert_clean_error(again, 9, "already exists", "--upgrade")
    # ... and with it, it is.
    up = offpkg(["install", str(path), "--venv", str(venv), "--upgrade"], env, offline=offline)
    assert up.returncode == 0, up.stderr


def test_install_sh_offline_without_offpkg(host_bundles, tmp_path, env, offline) -> None:
    path, _ = host_bundles["pip"]
    venv = tmp_path / "v"
    # A python that has no offpkg installed: -I ignores this checkout; the venv's base is the system python.
    proc = subprocess.run([*offline, "sh", str(path / "install.sh"), str(venv)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed 6 packages" in proc.stdout
    check = subprocess.run([str(venv / "bin/python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0
    assert json.loads((venv / "offpkg-receipt.json").read_text())["via"] == "install.sh"


def test_install_sh_without_ensurepip_uses_bundled_pip(host_bundles, tmp_path, env, offline) -> None:
    """Debian/Ubuntu hosts without python3-venv: `python -m venv` fails; the bundle's pip wheel is used."""
    path, _ = host_bundles["pip"]
    fake = tmp_path / "noensurepip"
    fake.mkdir()
    # A python whose `import ensurepip` fails, like Debian's python3 without python3-venv.
    (fake / "ensurepip").mkdir()
    (fake / "ensurepip" / "__init__.py").write_text("raise ImportError('ensurepip is disabled on Debian')\n")
    (fake / "ensurepip" / "__main__.py").write_text("import sys; sys.exit('ensurepip is disabled on Debian')\n")
    env = dict(env, PYTHONPATH=str(fake))
    venv = tmp_path / "v"
    proc = subprocess.run([*offline, "sh", str(path / "install.sh"), str(venv)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = subprocess.run([str(venv / "bin/python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert "pip 23.2.1" in out.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_target_python310_manylinux_2_28(index, tmp_path, env, offpkg, backend) -> None:
    out = tmp_path / "b"
    proc = _bundle(offpkg, env, index, out, "tokenlike", "compiled", "puresdist", backend=backend,
                   extra=["--python-version", "3.10", "--platform", "manylinux_2_28_x86_64"])
    assert proc.returncode == 0, proc.stderr
    wheels = sorted(p.name for p in (out / "wheels").iterdir())
    assert "tokenlike-0.3.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" in wheels
    assert "compiled-1.2-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" in wheels
    assert "puresdist-0.5-py3-none-any.whl" in wheels
    from offpkg.target import Target

    t = Target.from_options("3.10", ["manylinux_2_28_x86_64"])
    assert all(t.accepts_wheel(w) for w in wheels)
    m = json.loads((out / "offpkg.json").read_text())
    assert m["targets"][0]["python"]["version"] == "3.10"
    # This host (3.11) is the wrong python for it: a clear refusal, no venv left.
    bad = offpkg(["install", str(out), "--venv", str(tmp_path / "v")], env)
    assert_clean_error(bad, 6, "not made for", "3.10")
    assert not (tmp_path / "v").exists()


def test_archive_bundle_verifies_and_installs(index, tmp_path, env, offpkg, offline) -> None:
    out = tmp_path / "b.tar"
    proc = _bundle(offpkg, env, index, out, "alpha")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    ok = offpkg(["verify", str(out)], env)
    assert ok.returncode == 0, ok.stderr
    inst = offpkg(["install", str(out), "--venv", str(tmp_path / "v")], env, offline=offline)
    assert inst.returncode == 0, inst.stderr
    # The archive's wheels were extracted to a temp dir that is gone: no dangling find-links, still offline.
    conf = (tmp_path / "v" / "pip.conf").read_text()
    assert "no-index = true" in conf and "find-links" not in conf
    info = offpkg(["inspect", str(out), "--json"], env)
    data = json.loads(info.stdout)
    assert data["packages"] == 3 and data["requirements"] == ["alpha"]


def test_warm_cache_downloads_nothing(index, tmp_path, env, offpkg) -> None:
    first = _bundle(offpkg, env, index, tmp_path / "a", "alpha")
    second = _bundle(offpkg, env, index, tmp_path / "b", "alpha")
    assert first.returncode == 0 and second.returncode == 0
    assert json.loads(first.stdout)["downloaded_bytes"] > 0
    s = json.loads(second.stdout)
    assert s["downloaded_bytes"] == 0 and s["cached_files"] >= 4
    # The cache hard-links into bundles (same filesystem).
    w = tmp_path / "b" / "wheels" / "alpha-1.0-py3-none-any.whl"
    assert w.stat().st_nlink >= 2


def test_bundle_smoke_verify_records_result(index, tmp_path, env, offpkg) -> None:
    out = tmp_path / "b"
    proc = _bundle(offpkg, env, index, out, "alpha", "puresdist", extra=["--verify"])
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout)["verification"]
    assert v["verified"] is True
    assert {c["name"] for c in v["checks"]} == {"offline install + pip check", "imports"}
    m = json.loads((out / "offpkg.json").read_text())
    assert m["verification"]["verified"] is True
    assert offpkg(["verify", str(out)], env).returncode == 0  # the manifest rewrite kept SHA256SUMS right
    shown = offpkg(["inspect", str(out)], env)
    assert "verified: yes" in shown.stdout
