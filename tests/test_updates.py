"""Updates: delta bundles, atomic sync upgrades, rollback and diff, with real venvs and real wheels.

Bundles are built here from a real index on 127.0.0.1; everything on the offline
side (install, upgrade, rollback) runs under ``unshare -n``. Crashes are real
SIGKILLs at named points of an upgrade (``OFFPKG_TEST_CRASH_AT``); after each the
venv is the old state or the new one, and a rerun completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_clean_error, serve
from pkgfactory import Dist, build_wheel, write_simple_index

V1 = ["app==1.0", "old", "keepme"]
V2 = ["app==2.0", "keepme"]
V3 = ["app==2.0", "keepme", "third"]


@pytest.fixture(scope="module")
def upd_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("updidx")
    files = root / "files"
    build_wheel(Dist("app", "1.0", ["lib==1.0"], scripts={"app-cli": "app:main"}), files)
    build_wheel(Dist("app", "2.0", ["lib>=2.0", "newpkg"], scripts={"app-cli": "app:main", "app-two": "app:main"}),
                files)
    build_wheel(Dist("lib", "1.0"), files)
    build_wheel(Dist("lib", "2.0"), files)
    build_wheel(Dist("old", "1.0"), files)
    build_wheel(Dist("newpkg", "1.0"), files)
    build_wheel(Dist("third", "1.0"), files)
    # Shared, never changing, and big enough that a delta's saving shows.
    build_wheel(Dist("keepme", "1.0"), files, payload=os.urandom(256 << 10))
    write_simple_index(files, root)
    server, base = serve(root)
    yield f"{base}/simple"
    server.shutdown()


def bundle(offpkg, env, url: str, out: Path, reqs: list[str], *extra: str) -> dict:
    proc = offpkg(["bundle", *reqs, "-i", url, "-o", str(out), "--no-tools", "--json", *extra], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, upd_index, session_uv_cache) -> dict[str, Path]:
    """v1 and v2 in full, v2 as a delta of v1, v3 as a delta of that delta (all made once)."""
    from conftest import run_offpkg

    d = tmp_path_factory.mktemp("updbundles")
    home = d / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(home), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(d / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), NO_COLOR="1", CI="1")
    out = {}
    for name, reqs, extra in (("v1", V1, []), ("v2", V2, []), ("d2", V2, ["--base", str(d / "v1")]),
                              ("d3", V3, ["--base", str(d / "d2" / "offpkg.json")])):
        bundle(run_offpkg, env, upd_index, d / name, reqs, *extra)
        out[name] = d / name
    return out


def snapshot(venv: Path) -> dict[str, tuple]:
    """Every path of the venv with its kind and content (sha256 or link target); __pycache__ aside."""
    snap = {}
    for dirpath, dirs, files in os.walk(venv):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for n in dirs + files:
            p = Path(dirpath) / n
            rel = p.relative_to(venv).as_posix()
            if p.is_symlink():
                snap[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                snap[rel] = ("dir",)
            else:
                snap[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
    return snap


def dists(venv: Path) -> dict[str, str]:
    from offpkg.updates.sync import installed

    return {k: v for k, v in installed(venv).items() if k not in ("pip", "setuptools", "wheel")}


def run_script(venv: Path, name: str) -> str:
    proc = subprocess.run([str(venv / "bin" / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def leftovers(venv: Path) -> list[str]:
    """offpkg's names beside the venv other than its generations and lock; a dropped state being
    deleted in the background (a trash folder) is waited for: it must go by itself."""
    deadline = time.monotonic() + 300
    while True:
        found = sorted(p.name for p in venv.parent.glob(f".{venv.name}.offpkg-*")
                       if "-gen-" not in p.name and not p.name.endswith("-lock"))
        if not any("-trash-" in f for f in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def install(offpkg, env, offline, bundle_: Path, venv: Path, *extra: str, crash: str | None = None):
    e = dict(env, **({"OFFPKG_TEST_CRASH_AT": crash} if crash else {}))
    return offpkg(["install", str(bundle_), "--venv", str(venv), "--json", *extra], e, offline=offline)


@pytest.fixture
def v1_venv(bundles, tmp_path, env, offpkg, offline) -> Path:
    venv = tmp_path / "env"
    proc = install(offpkg, env, offline, bundles["v1"], venv)
    assert proc.returncode == 0, proc.stderr
    return venv


# ------------------------------------------------------------------ delta bundles

def test_delta_carries_only_what_the_base_lacks(bundles, env, offpkg) -> None:
    from offpkg.manifest import Manifest

    full, delta = Manifest.read(bundles["v2"]), Manifest.read(bundles["d2"])
    assert {p.filename for p in full.packages} == {p.filename for p in delta.packages}  # the complete lock
    carried = sorted(p.name for p in delta.requirement_packages if p.path not in delta.delta.provided)
    assert carried == ["app", "lib", "newpkg"]  # keepme (the base has it) is not carried
    assert sorted(p.name for p in (bundles["d2"] / "wheels").iterdir()) == sorted(
        p.filename for p in delta.requirement_packages if p.name in carried)
    v1_sha = hashlib.sha256((bundles["v1"] / "offpkg.json").read_bytes()).hexdigest()
    assert delta.delta.base_manifest_sha256 == v1_sha and delta.format_version == 2
    assert full.delta is None and full.format_version == 1  # a full bundle's manifest is unchanged
    # requirements.txt still pins everything, and sha256sum -c checks what is carried.
    assert "keepme==1.0" in (bundles["d2"] / "requirements.txt").read_text()
    sums = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=bundles["d2"], capture_output=True,
                          text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    # verify checks the delta on its own and says what it is.
    v = offpkg(["verify", str(bundles["d2"]), "--json"], env)
    assert v.returncode == 0, v.stderr
    info = json.loads(v.stdout)["delta"]
    assert info["base_manifest_sha256"] == v1_sha and info["provided_files"] >= 1
    assert info["carried_bytes"] < sum(s for _, s in full.all_entries().values())
    human = offpkg(["verify", str(bundles["d2"])], env)
    assert "this is a delta bundle for the base whose manifest sha256 is " + v1_sha in human.stdout
    # A delta is never installed fresh.
    fresh = offpkg(["install", str(bundles["d2"]), "--venv", str(bundles["d2"].parent / "fresh")], env)
    assert_clean_error(fresh, 3, "is a delta bundle", v1_sha)
    assert not (bundles["d2"].parent / "fresh").exists()


def test_every_base_form_gives_the_same_delta(bundles, tmp_path, env, offpkg, offline, upd_index) -> None:
    """--base as an archive, an offpkg.json and a venv's receipt: the same base, the same provided set."""
    from offpkg.archive import write_tar
    from offpkg.manifest import Manifest

    write_tar(bundles["v1"], tmp_path / "v1.tar")
    venv = tmp_path / "env"
    assert install(offpkg, env, offline, bundles["v1"], venv).returncode == 0
    want = Manifest.read(bundles["d2"]).delta
    for i, base in enumerate([tmp_path / "v1.tar", bundles["v1"] / "offpkg.json", venv / "offpkg-receipt.json", venv]):
        bundle(offpkg, env, upd_index, tmp_path / f"d{i}", V2, "--base", str(base))
        got = Manifest.read(tmp_path / f"d{i}").delta
        assert (got.base_manifest_sha256, got.provided) == (want.base_manifest_sha256, want.provided), base
    bad = offpkg(["bundle", *V2, "-i", upd_index, "-o", str(tmp_path / "x"), "--base", str(tmp_path / "nope")], env)
    assert_clean_error(bad, 3, "--base", "does not exist")


# ------------------------------------------------------------------ upgrade, rollback

def test_upgrade_with_delta_then_rollback(bundles, v1_venv, env, offpkg, offline) -> None:
    venv = v1_venv
    assert run_script(venv, "app-cli") == "app 1.0"
    before, ino = snapshot(venv), os.stat(venv).st_ino
    up = install(offpkg, env, offline, bundles["d2"], venv, "--upgrade")
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)["upgrade"]
    assert doc["installed"] == ["app==2.0", "lib==2.0", "newpkg==1.0"] and doc["removed"] == ["old"]
    assert doc["unchanged"] == 1 and doc["swap"] == "exchange"
    # Exactly the new lock; console scripts (old and new) name the venv's own path and run.
    assert dists(venv) == {"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0"}
    assert run_script(venv, "app-cli") == "app 2.0" and run_script(venv, "app-two") == "app 2.0"
    for s in ("app-cli", "app-two"):
        head = (venv / "bin" / s).read_text().splitlines()[0]
        assert str(venv) in head and ".offpkg-stage" not in (venv / "bin" / s).read_text()
    check = subprocess.run([str(venv / "bin/python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    receipt = json.loads((venv / "offpkg-receipt.json").read_text())
    assert receipt["bundle_manifest_sha256"] == hashlib.sha256((bundles["d2"] / "offpkg.json").read_bytes()).hexdigest()
    assert leftovers(venv) == []
    # The old state is kept as a generation, listed with its disk cost.
    ls = offpkg(["rollback", "--venv", str(venv), "--list", "--json"], env)
    gens = json.loads(ls.stdout)["generations"]
    assert len(gens) == 1 and gens[0]["unique_bytes"] > 0
    # Rollback: the very directory as it was (same inode, same bytes), scripts work.
    rb = offpkg(["rollback", "--venv", str(venv), "--json"], env, offline=offline)
    assert rb.returncode == 0, rb.stderr
    assert os.stat(venv).st_ino == ino and snapshot(venv) == before
    assert run_script(venv, "app-cli") == "app 1.0" and not (venv / "bin/app-two").exists()
    assert json.loads(rb.stdout)["generations_left"] == []
    assert leftovers(venv) == []  # the state rolled back from was deleted (in the background)
    again = offpkg(["rollback", "--venv", str(venv)], env, offline=offline)
    assert_clean_error(again, 3, "no earlier state")


def test_wrong_base_is_refused_venv_untouched(bundles, tmp_path, env, offpkg, offline) -> None:
    venv = tmp_path / "env"
    assert install(offpkg, env, offline, bundles["v2"], venv).returncode == 0
    before = snapshot(venv)
    proc = offpkg(["install", str(bundles["d2"]), "--venv", str(venv), "--upgrade"], env, offline=offline)
    need = hashlib.sha256((bundles["v1"] / "offpkg.json").read_bytes()).hexdigest()
    have = hashlib.sha256((bundles["v2"] / "offpkg.json").read_bytes()).hexdigest()
    assert_clean_error(proc, 6, "applies only to a venv installed from its base", need, have, "nothing was changed")
    assert snapshot(venv) == before and leftovers(venv) == []


def test_corrupted_delta_is_refused(bundles, v1_venv, tmp_path, env, offpkg, offline) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(bundles["d2"], bad)
    whl = next((bad / "wheels").glob("lib-*.whl"))
    data = bytearray(whl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    whl.write_bytes(bytes(data))
    before = snapshot(v1_venv)
    proc = offpkg(["install", str(bad), "--venv", str(v1_venv), "--upgrade"], env, offline=offline)
    assert_clean_error(proc, 1, "failed verification", whl.name)
    assert snapshot(v1_venv) == before


def test_delta_of_a_delta(bundles, v1_venv, env, offpkg, offline) -> None:
    from offpkg.manifest import Manifest

    d3 = Manifest.read(bundles["d3"])
    assert d3.delta.base_manifest_sha256 == hashlib.sha256((bundles["d2"] / "offpkg.json").read_bytes()).hexdigest()
    assert sorted(p.name for p in d3.requirement_packages if p.path not in d3.delta.provided) == ["third"]
    # d3 needs the state d2 made: refused on v1, applied after d2.
    refused = install(offpkg, env, offline, bundles["d3"], v1_venv, "--upgrade")
    assert refused.returncode == 6
    for b in ("d2", "d3"):
        proc = install(offpkg, env, offline, bundles[b], v1_venv, "--upgrade", "--keep", "2")
        assert proc.returncode == 0, proc.stderr
    assert dists(v1_venv) == {"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0", "third": "1.0"}
    # Two generations kept (--keep 2); two rollbacks go back to v1.
    for want in ({"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0"},
                 {"app": "1.0", "lib": "1.0", "old": "1.0", "keepme": "1.0"}):
        assert offpkg(["rollback", "--venv", str(v1_venv)], env, offline=offline).returncode == 0
        assert dists(v1_venv) == want


def test_downgrade_with_a_full_bundle(bundles, tmp_path, env, offpkg, offline) -> None:
    venv = tmp_path / "env"
    assert install(offpkg, env, offline, bundles["v2"], venv).returncode == 0
    proc = install(offpkg, env, offline, bundles["v1"], venv, "--upgrade", "--keep", "0")
    assert proc.returncode == 0, proc.stderr
    assert dists(venv) == {"app": "1.0", "lib": "1.0", "old": "1.0", "keepme": "1.0"}
    assert run_script(venv, "app-cli") == "app 1.0" and not (venv / "bin/app-two").exists()
    assert json.loads(proc.stdout)["upgrade"]["generations_kept"] == []
    assert not list(tmp_path.glob(".env.offpkg-gen-*"))


def test_pip_check_refuses_a_lock_that_drops_a_needed_package(bundles, v1_venv, tmp_path, env, offpkg,
                                                              offline) -> None:
    """A (resealed, self-consistent) bundle whose lock drops lib, which app needs: refused, venv unchanged."""
    from dataclasses import replace

    from offpkg.bundle import _pylock, _requirements_txt, write_manifest
    from offpkg.manifest import FileEntry, Manifest
    from offpkg.target import Target

    b = tmp_path / "nolib"
    shutil.copytree(bundles["v2"], b)
    m = Manifest.read(b)
    pkgs = tuple(p for p in m.packages if p.name != "lib")
    (b / next(p.path for p in m.packages if p.name == "lib")).unlink()
    t = Target.from_probe(m.targets[0])
    texts = {"requirements.txt": _requirements_txt(t, [p for p in pkgs if p.role == "requirement"], []),
             "pylock.toml": _pylock([t], [p for p in pkgs if p.role == "requirement"])}
    files = []
    for f in m.files:
        if f.path in texts:
            (b / f.path).write_text(texts[f.path])
            data = texts[f.path].encode()
            f = FileEntry(f.path, hashlib.sha256(data).hexdigest(), len(data))
        files.append(f)
    write_manifest(b, replace(m, packages=pkgs, files=tuple(files)))
    assert offpkg(["verify", str(b)], env).returncode == 0
    before = snapshot(v1_venv)
    proc = offpkg(["install", str(b), "--venv", str(v1_venv), "--upgrade"], env, offline=offline)
    assert_clean_error(proc, 7, "pip check", "the venv was not changed")
    assert snapshot(v1_venv) == before and leftovers(v1_venv) == []


# ------------------------------------------------------------------ crashes

POINTS = ["cloned", "uninstalled", "installed", "checked", "before-swap", "swapped", "generation-kept"]


@pytest.mark.parametrize("point", POINTS + ["half-swapped"])
def test_kill_9_mid_upgrade_leaves_old_or_new_and_rerun_completes(point, bundles, v1_venv, env, offpkg,
                                                                   offline) -> None:
    venv = v1_venv
    old = snapshot(venv)
    e = dict(env, OFFPKG_TEST_NO_EXCHANGE="1") if point == "half-swapped" else env
    proc = install(offpkg, e, offline, bundles["d2"], venv, "--upgrade", crash=point)
    assert proc.returncode == -9, (proc.returncode, proc.stderr)
    new = {"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0"}
    if point == "half-swapped":
        assert not venv.exists()  # the one window of the two-rename swap; the journal completes it below
    elif point in ("swapped", "generation-kept"):
        assert dists(venv) == new and run_script(venv, "app-cli") == "app 2.0"
    else:
        assert snapshot(venv) == old
    # The rerun recovers first, then completes the upgrade (or finds it done).
    rerun = install(offpkg, e, offline, bundles["d2"], venv, "--upgrade")
    assert rerun.returncode == 0, rerun.stderr
    assert dists(venv) == new and run_script(venv, "app-cli") == "app 2.0"
    assert leftovers(venv) == []
    # And the kept state is the v1 venv.
    assert offpkg(["rollback", "--venv", str(venv)], env, offline=offline).returncode == 0
    assert dists(venv) == {"app": "1.0", "lib": "1.0", "old": "1.0", "keepme": "1.0"}


def test_kill_9_mid_rollback(bundles, v1_venv, env, offpkg, offline) -> None:
    old = snapshot(v1_venv)
    assert install(offpkg, env, offline, bundles["d2"], v1_venv, "--upgrade").returncode == 0
    proc = offpkg(["rollback", "--venv", str(v1_venv)], dict(env, OFFPKG_TEST_CRASH_AT="rollback-swapped"),
                  offline=offline)
    assert proc.returncode == -9
    assert snapshot(v1_venv) == old
    # The next command finishes the rollback's cleanup: the rolled-back-from state is gone.
    ls = offpkg(["install", str(bundles["v1"]), "--venv", str(v1_venv), "--upgrade", "--json"], env, offline=offline)
    assert ls.returncode == 0, ls.stderr
    assert "finished an interrupted rollback" in json.loads(ls.stdout)["upgrade"]["recovered"]
    assert leftovers(v1_venv) == []


# ------------------------------------------------------------------ diff, install.sh, conda

def test_diff(bundles, v1_venv, env, offpkg) -> None:
    proc = offpkg(["diff", str(bundles["v1"]), str(bundles["v2"]), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    kinds = {c["name"]: (c["change"], c["old_version"], c["new_version"]) for c in d["changes"]}
    assert kinds == {"app": ("upgraded", "1.0", "2.0"), "lib": ("upgraded", "1.0", "2.0"),
                     "newpkg": ("added", None, "1.0"), "old": ("removed", "1.0", None)}
    assert d["counts"]["unchanged"] == 1 and d["total_size"]["change"] == d["total_size"]["b"] - d["total_size"]["a"]
    assert all(c["new_size"] or c["old_size"] for c in d["changes"])
    # A venv's receipt against a delta: the delta's complete state is compared.
    back = offpkg(["diff", str(bundles["d2"]), str(v1_venv), "--json"], env)
    kinds = {c["name"]: c["change"] for c in json.loads(back.stdout)["changes"]}
    assert kinds == {"app": "downgraded", "lib": "downgraded", "newpkg": "removed", "old": "added"}
    human = offpkg(["diff", str(bundles["v1"]), str(bundles["v2"])], env)
    assert "upgraded" in human.stdout and "1 added, 1 removed, 2 upgraded" in human.stdout
    missing = offpkg(["diff", str(bundles["v1"]), "/nonexistent", "--json"], env)
    assert missing.returncode == 3 and json.loads(missing.stdout)["ok"] is False


def test_diff_manifests_api(bundles) -> None:
    from offpkg.manifest import Manifest
    from offpkg.updates.diff import diff_manifests

    d = diff_manifests(Manifest.read(bundles["v1"]), Manifest.read(bundles["v2"]))
    assert [c.name for c in d.of_kind("upgraded")] == ["app", "lib"] and d.cuda is None and not d.empty
    assert diff_manifests(Manifest.read(bundles["v2"]), Manifest.read(bundles["d2"])).changes == ()


def test_install_sh_refuses_upgrade(bundles, v1_venv, env, offline) -> None:
    before = snapshot(v1_venv)
    proc = subprocess.run([*offline, "sh", str(bundles["v2"] / "install.sh"), "--upgrade", str(v1_venv)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "offpkg install" in proc.stderr and "--upgrade" in proc.stderr
    assert snapshot(v1_venv) == before
    delta = subprocess.run([*offline, "sh", str(bundles["d2"] / "install.sh"), str(v1_venv.parent / "new")],
                           env=env, capture_output=True, text=True)
    assert delta.returncode == 2 and "delta" in delta.stderr
    assert not (v1_venv.parent / "new").exists()


def test_conda_prefix_upgrade_is_refused_clearly(bundles, tmp_path, env, offpkg) -> None:
    proc = offpkg(["install", str(bundles["v1"]), "--conda-prefix", str(tmp_path / "p"), "--upgrade"], env)
    assert_clean_error(proc, 2, "--conda-prefix does not support --upgrade", "new prefix")



def test_multi_target_delta(upd_index, tmp_path, env, offpkg, offline) -> None:
    """A two-target bundle (CPython 3.10 and this host) as a delta: verified alone, applied to the host's venv."""
    from offpkg.manifest import Manifest
    from offpkg.target import Target

    py310 = tmp_path / "py310.json"
    py310.write_text(json.dumps(Target.from_options("3.10", ["manylinux_2_28_x86_64"]).to_json()))
    assert offpkg(["probe", "-o", str(tmp_path / "host.json")], env).returncode == 0
    targets = ["--target", str(py310), "--target", str(tmp_path / "host.json")]
    bundle(offpkg, env, upd_index, tmp_path / "m1", V1, *targets)
    bundle(offpkg, env, upd_index, tmp_path / "m2", V2, *targets, "--base", str(tmp_path / "m1"))
    m = Manifest.read(tmp_path / "m2")
    assert len(m.targets) == 2 and [p for p in m.delta.provided if "keepme" in p]
    assert offpkg(["verify", str(tmp_path / "m2")], env).returncode == 0
    venv = tmp_path / "env"
    assert install(offpkg, env, offline, tmp_path / "m1", venv).returncode == 0
    up = install(offpkg, env, offline, tmp_path / "m2", venv, "--upgrade")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["target"] == 1
    assert dists(venv) == {"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0"}


@pytest.mark.skipif(shutil.which("ssh-keygen") is None and not os.environ.get("CI"), reason="needs ssh-keygen")
def test_signed_delta(bundles, v1_venv, upd_index, tmp_path, env, offpkg, offline) -> None:
    """A delta signed at build time: the signature covers its manifest (with the base it names)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder@site", "-f", str(tmp_path / "k")],
                   check=True, capture_output=True)
    allowed = tmp_path / "allowed"
    allowed.write_text(f'builder@site namespaces="offpkg" {(tmp_path / "k.pub").read_text().strip()}\n')
    bundle(offpkg, env, upd_index, tmp_path / "sd", V2, "--base", str(bundles["v1"]), "--sign", str(tmp_path / "k"))
    v = offpkg(["verify", str(tmp_path / "sd"), "--trust", str(allowed), "--json"], env)
    assert v.returncode == 0, v.stderr
    doc = json.loads(v.stdout)
    assert doc["delta"]["base_manifest_sha256"] and doc["trust"]["trusted"]
    up = install(offpkg, env, offline, tmp_path / "sd", v1_venv, "--upgrade", "--trust", str(allowed))
    assert up.returncode == 0, up.stderr
    assert dists(v1_venv) == {"app": "2.0", "lib": "2.0", "newpkg": "1.0", "keepme": "1.0"}
