"""Multi-target bundles: one manifest for several Python versions/platforms, shared files stored once,
and `offpkg install` / install.sh picking the target that matches the host.

Any host: the module builds its own index with compiled wheels for this host's Python
and architecture (HV, ARCH) and for another Python (OV); the other architecture (OTHER_ARCH)
gets pure wheels only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Index, assert_clean_error, run_offpkg, serve
from pkgfactory import Dist, build_wheel, write_simple_index
from test_selfextract import find_python
from offpkg.target import Target

HOST = Target.host()
HV = HOST.python_version
OV = "3.10" if HV != "3.10" else "3.11"  # the other target's Python
ARCH = HOST.arch
OTHER_ARCH = "aarch64" if ARCH != "aarch64" else "x86_64"
# A platform tag this host accepts (an old manylinux on Linux: every glibc host takes it).
PLAT = f"manylinux_2_17_{ARCH}" if f"manylinux_2_17_{ARCH}" in HOST.platforms else HOST.platforms[-1]


def _cp(v: str) -> str:
    return "cp" + v.replace(".", "")


COMPILED = {v: f"compiled-1.2-{_cp(v)}-{_cp(v)}-{PLAT}.whl" for v in (OV, HV)}
TOKENLIKE = f"tokenlike-0.3.0-cp39-abi3-{PLAT}.whl"
PURE = ["alpha-1.0-py3-none-any.whl", "beta-1.1-py3-none-any.whl", "gamma-2.0-py3-none-any.whl"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="install.sh is a POSIX shell script")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Index:
    """This module's own index: compiled wheels for this host's Python and OV, on this host's platform."""
    root = tmp_path_factory.mktemp("mtindex")
    files = root / "files"
    build_wheel(Dist("alpha", "1.0", ["beta>=1.0"]), files)
    build_wheel(Dist("beta", "1.0", ["gamma"]), files)
    build_wheel(Dist("beta", "1.1", ["gamma"]), files)
    build_wheel(Dist("gamma", "2.0"), files)
    for v in (OV, HV):
        build_wheel(Dist("compiled", "1.2"), files, f"{_cp(v)}-{_cp(v)}-{PLAT}")
    build_wheel(Dist("tokenlike", "0.3.0"), files, f"cp39-abi3-{PLAT}")
    import ensurepip
    import shutil

    for whl in (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"):
        shutil.copy(whl, files / whl.name)
    write_simple_index(files, root)
    server, base = serve(root)
    yield Index(f"{base}/simple", root, files)
    server.shutdown()


def _env(base: Path, uv_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(uv_cache), CI="1", NO_COLOR="1")
    return env


def _write(path: Path, target: Target) -> Path:
    path.write_text(json.dumps(target.to_json(), indent=2))
    return path


@pytest.fixture(scope="module")
def multi(tmp_path_factory, index, session_uv_cache) -> tuple[Path, dict]:
    """compiled + tokenlike + alpha for CPython OV and for this host (HV, from `offpkg probe`)."""
    base = tmp_path_factory.mktemp("multi")
    env = _env(base, session_uv_cache)
    a = _write(base / "other.json", Target.from_options(OV, [HOST.platforms[0]]))
    probe = run_offpkg(["probe", "-o", str(base / "host.json")], env)
    assert probe.returncode == 0, probe.stderr
    out = base / "b"
    proc = run_offpkg(["bundle", "compiled", "tokenlike", "alpha", "-i", index.url, "-o", str(out),
                       "--target", str(a), "--target", str(base / "host.json"), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_one_manifest_shared_files_stored_once(multi) -> None:
    path, result = multi
    assert result["ok"] and len(result["targets"]) == 2
    m = json.loads((path / "offpkg.json").read_text())
    assert [t["python"]["version"] for t in m["targets"]] == [OV, HV]
    reqs = {p["filename"]: p for p in m["packages"] if p["role"] == "requirement"}
    # compiled: one wheel per target; everything else fits both and is carried once, listed for both.
    assert reqs[COMPILED[OV]]["targets"] == [0] and reqs[COMPILED[HV]]["targets"] == [1]
    for name in [TOKENLIKE, *PURE]:
        assert reqs[name]["targets"] == [0, 1], name
    assert sorted(reqs) == sorted([*COMPILED.values(), TOKENLIKE, *PURE])
    assert sorted(p.name for p in (path / "wheels").iterdir()) == sorted(reqs)
    # A requirements file per target (target 0's also as requirements.txt), each pinning its own wheels.
    ids = [Target.from_probe(t).id for t in m["targets"]]
    assert ids[0].startswith(_cp(OV) + "-") and ids[1].startswith(_cp(HV) + "-")
    per = {i: (path / "requirements" / f"{ids[i]}.txt").read_text() for i in (0, 1)}
    assert (path / "requirements.txt").read_text() == per[0]
    for i, ver in ((0, OV), (1, HV)):
        assert f"--hash=sha256:{reqs[COMPILED[ver]]['sha256']}" in per[i]
        other = COMPILED[HV if ver == OV else OV]
        assert reqs[other]["sha256"] not in per[i]
        assert per[i].count("--hash=sha256:") == 5
    # The lock knows both environments and which compiled wheel goes with which interpreter.
    from offpkg._compat import tomllib

    lock = tomllib.loads((path / "pylock.toml").read_text())
    envs = lock["environments"]
    assert len(envs) == 2 and f'python_version == "{OV}"' in envs[0] and f'python_version == "{HV}"' in envs[1]
    compiled = [p for p in lock["packages"] if p["name"] == "compiled"]
    assert len(compiled) == 1 and len(compiled[0]["wheels"]) == 2


def test_verify_and_install_pick_the_host_target(multi, tmp_path: Path, env: dict[str, str], offpkg, offline) -> None:
    path, _ = multi
    ok = offpkg(["verify", str(path), "--json"], env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True, ok.stdout + ok.stderr
    venv = tmp_path / "v"
    proc = offpkg(["install", str(path), "--venv", str(venv), "--json"], env, offline=offline)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"] == 1
    out = subprocess.run([str(venv / "bin/python"), "-c", "import compiled, tokenlike, alpha; print(compiled.TAG)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == f"{_cp(HV)}-{_cp(HV)}-{PLAT}"
    receipt = json.loads((venv / "offpkg-receipt.json").read_text())
    assert receipt["target"] == 1 and "compiled==1.2" in receipt["packages"]


def test_install_sh_picks_the_host_target(multi, tmp_path: Path, env: dict[str, str], offline) -> None:
    path, _ = multi
    venv = tmp_path / "v"
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*offline, "sh", str(path / "install.sh"), "--python", sys.executable, str(venv)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    receipt = json.loads((venv / "offpkg-receipt.json").read_text())
    assert receipt["target"] == 1 and receipt["via"] == "install.sh"
    out = subprocess.run([str(venv / "bin/python"), "-c", "import compiled; print(compiled.TAG)"],
                         capture_output=True, text=True)
    assert out.stdout.strip().startswith(f"{_cp(HV)}-{_cp(HV)}-")


def test_other_python_on_the_same_host_picks_target_0(multi, tmp_path: Path, env: dict[str, str], offpkg,
                                                    offline) -> None:
    """The same bundle with a real CPython OV on this host: the OV target is picked (install.sh: see above)."""
    py = find_python(OV)
    if py is None:
        pytest.skip(f"no python{OV} on this machine")
    path, _ = multi
    proc = offpkg(["install", str(path), "--venv", str(tmp_path / "v"), "--python", py, "--json"], env,
                  offline=offline)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target"] == 0
    out = subprocess.run([str(tmp_path / "v" / "bin/python"), "-c", "import compiled, alpha; print(compiled.TAG)"],
                         capture_output=True, text=True)
    assert out.stdout.strip().startswith(f"{_cp(OV)}-{_cp(OV)}-"), out.stderr


def test_no_matching_target_is_refused(multi, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    """An interpreter that fits neither target: one clear error naming both, nothing created."""
    other = [v for v in ("3.12", "3.13", "3.9", "3.11", "3.10") if v not in (OV, HV)]
    py = next((p for p in map(find_python, other) if p), None)
    if py is None:
        pytest.skip(f"no python of {', '.join(other)} on this machine")
    path, _ = multi
    bad = offpkg(["install", str(path), "--venv", str(tmp_path / "v"), "--python", py], env)
    assert_clean_error(bad, 6, "not made for", "target 0", OV, "target 1", HV)
    assert not (tmp_path / "v").exists()
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    sh = subprocess.run(["sh", str(path / "install.sh"), "--python", py, str(tmp_path / "w")], env=env,
                        capture_output=True, text=True, timeout=300)
    assert sh.returncode == 6 and "does not fit" in sh.stderr and not (tmp_path / "w").exists()


def test_two_architectures_share_pure_wheels(index, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    arm = _write(tmp_path / "arm.json", Target.from_options(HV, [f"manylinux_2_28_{OTHER_ARCH}"]))
    x86 = _write(tmp_path / "x86.json", Target.from_options(HV, [f"manylinux_2_28_{ARCH}"]))
    out = tmp_path / "b"
    proc = offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out), "--target", str(arm), "--target", str(x86),
                   "--no-tools", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "offpkg.json").read_text())
    assert [t["arch"] for t in m["targets"]] == [OTHER_ARCH, ARCH]
    assert sorted(p["filename"] for p in m["packages"]) == PURE
    assert all(p["targets"] == [0, 1] for p in m["packages"])
    assert offpkg(["verify", str(out)], env).returncode == 0
    # compiled has no wheel for the other architecture: the bundle is refused, naming the package and the target.
    bad = offpkg(["bundle", "compiled", "-i", index.url, "-o", str(tmp_path / "c"), "--target", str(arm),
                  "--target", str(x86)], env)
    assert_clean_error(bad, 3, "compiled", OTHER_ARCH)
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def arm_first(tmp_path_factory, index, session_uv_cache) -> Path:
    base = tmp_path_factory.mktemp("armfirst")
    arm = _write(base / "arm.json", Target.from_options(HV, [f"manylinux_2_28_{OTHER_ARCH}"]))
    x86 = _write(base / "x86.json", Target.from_options(HV, [f"manylinux_2_28_{ARCH}"]))
    out = base / "b"
    proc = run_offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out), "--target", str(arm), "--target", str(x86)],
                      _env(base, session_uv_cache))
    assert proc.returncode == 0, proc.stderr
    return out


def test_install_prefers_the_host_architecture(arm_first: Path, tmp_path: Path, env: dict[str, str], offpkg,
                                               offline) -> None:
    """Pure wheels fit the other architecture's target too; this host's architecture must be picked (receipt,
    CUDA checks and the requirements file follow the chosen target)."""
    inst = offpkg(["install", str(arm_first), "--venv", str(tmp_path / "v"), "--json"], env, offline=offline)
    assert inst.returncode == 0, inst.stderr
    assert json.loads(inst.stdout)["target"] == 1
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    sh = subprocess.run([*offline, "sh", str(arm_first / "install.sh"), "--python", sys.executable,
                         str(tmp_path / "w")], env=env,
                        capture_output=True, text=True, timeout=300)
    assert sh.returncode == 0, sh.stdout + sh.stderr
    assert json.loads((tmp_path / "w" / "offpkg-receipt.json").read_text())["target"] == 1
