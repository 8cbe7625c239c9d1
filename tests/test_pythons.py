"""Every python offpkg claims.

- The target side (probe.py, install.sh/bootstrap.py, the self-extracting .sh, the Python half
  of install.ps1) on the oldest target pythons: 3.6, 3.7 and 3.8 through pyenv. A missing
  interpreter skips, except under CI=true with pyenv present, where it fails.
- Below the floor (3.6): one clear error at bundle time, and from the scripts on the target.
- Targets below what the newest pip/uv support: said at bundle time, from the index's facts.
- ``bundle --verify`` proves a target with a matching interpreter of this host (issue 13.5):
  a python-3.10 target with the 3.10 interpreter; a target with none is recorded unverified.

offpkg itself on 3.9-3.13 is proven by ``.ci/pythons.py`` (a CLI round trip per interpreter).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import assert_clean_error, serve, unshare_argv
from pkgfactory import Dist, build_wheel, write_simple_index

from offpkg._probe import TARGET_PYTHON_FLOOR

REPO = Path(__file__).resolve().parent.parent
OLD_TARGETS = ["3.6", "3.7", "3.8"]


def _pyenv_root() -> str | None:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    return root if os.path.isdir(os.path.join(root, "versions")) else None


def find_python(version: str) -> str | None:
    """pyenv's python ``version`` (X.Y), or pythonX.Y on PATH, that really is that version."""
    root = _pyenv_root()
    cands = sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version[0])),
                   reverse=True) if root else []
    if shutil.which(f"python{version}"):
        cands.append(shutil.which(f"python{version}"))
    for c in cands:
        out = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == version:
            return c
    return None


def need_python(version: str) -> str:
    py = find_python(version)
    if py is None:
        if os.environ.get("CI") == "true" and _pyenv_root():
            pytest.fail(f"CI: pyenv is present but has no python {version}; the target-side floor cannot be proven")
        pytest.skip(f"no python{version} on this machine")
    return py


def need_offline() -> tuple[str, ...]:
    argv = unshare_argv()
    if argv is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: unshare -n is not permitted; the offline install cannot be proven")
        pytest.skip("unshare -n is not permitted here")
    return argv


def _requires_python(wheel: Path) -> str | None:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        m = re.search(r"^Requires-Python: *(.+)$", z.read(meta).decode(), re.M)
        return m.group(1).strip() if m else None


@pytest.fixture(scope="module")
def old_index(tmp_path_factory: pytest.TempPathFactory):
    """Pure wheels, the real pip wheels of every pyenv interpreter here (with their
    Requires-Python), and a uv-shaped wheel that needs 3.8 like the real uv."""
    root = tmp_path_factory.mktemp("oldindex")
    files = root / "files"
    build_wheel(Dist("oldapp", "1.0", ["olddep>=1"]), files)
    build_wheel(Dist("olddep", "1.2"), files)
    build_wheel(Dist("uv", "9.9.9", requires_python=">=3.8"), files, "py3-none-manylinux_2_17_x86_64")
    pips = {sys.executable}
    root_dir = _pyenv_root()
    if root_dir:
        pips.update(glob.glob(os.path.join(root_dir, "versions", "3.*", "bin", "python3")))
    for py in pips:
        out = subprocess.run([py, "-c", "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))"],
                             capture_output=True, text=True)
        for whl in Path(out.stdout.strip() or "/nonexistent", "_bundled").glob("pip-*.whl"):
            shutil.copy(whl, files / whl.name)
    rp = {f.name: r for f in files.glob("*.whl") if (r := _requires_python(f))}
    write_simple_index(files, root, requires_python=rp)
    server, base = serve(root)
    yield f"{base}/simple"
    server.shutdown()


def _probe_with(py: str, tmp: Path, env: dict[str, str], offpkg) -> Path:
    script = offpkg(["probe", "--script"], env)
    assert script.returncode == 0, script.stderr
    (tmp / "probe.py").write_text(script.stdout)
    proc = subprocess.run([py, str(tmp / "probe.py")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    out = tmp / "target.json"
    out.write_text(proc.stdout)
    return out


def test_the_floor_is_one_number() -> None:
    """probe.py's TARGET_PYTHON_FLOOR is what install.sh, selfextract.sh and install.ps1 check."""
    floor = "(%d, %d)" % TARGET_PYTHON_FLOOR
    for name in ("install.sh", "selfextract.sh", "install.ps1"):
        text = (REPO / "templates" / name).read_text()
        assert f"sys.version_info >= {floor}" in text, name
        assert "Python %d.%d or newer" % TARGET_PYTHON_FLOOR in text, name
    readme = (REPO / "README.md").read_text()
    assert "Python %d.%d" % TARGET_PYTHON_FLOOR in readme.split("## Where offpkg runs")[1].split("\n## ")[0]


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_old_target_round_trip(version: str, old_index: str, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    """probe.py → bundle for it → install.sh, the self-extracting .sh and bootstrap.py (what
    install.ps1 runs) each install offline into a venv of that python, and the import works."""
    py = need_python(version)
    off = need_offline()
    target = _probe_with(py, tmp_path, env, offpkg)
    assert json.loads(target.read_text())["python"]["version"] == version
    # One self-extracting bundle: --extract gives the plain bundle (install.sh, tools/bootstrap.py).
    sfx = tmp_path / "b.sh"
    proc = offpkg(["bundle", "oldapp", "--target", str(target), "--index-url", old_index, "-o", str(sfx)], env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "b"
    extracted = subprocess.run(["sh", str(sfx), "--python", py, "--extract", str(out)], capture_output=True, text=True,
                               env=env)
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr
    manifest = json.loads((out / "offpkg.json").read_text())
    tools = {p["name"]: p["version"] for p in manifest["packages"] if p.get("role") == "tool"}
    # The pip carried is one that runs on this python (its Requires-Python, from the index).
    pip_whl = next((out / "tools").glob("pip-*.whl"))
    spec = _requires_python(pip_whl)
    if spec:
        from packaging.specifiers import SpecifierSet

        assert f"{version}.0" in SpecifierSet(spec), (pip_whl, spec)
    if version in ("3.6", "3.7"):  # uv needs 3.8: said at bundle time, with the fact from the index
        assert "uv" not in tools
        assert "uv 9.9.9 needs Python >=3.8" in proc.stderr and "will use pip" in proc.stderr, proc.stderr
    else:
        assert tools.get("uv") == "9.9.9"
    checks = [
        (["sh", str(out / "install.sh"), "--python", py, str(tmp_path / "v-sh")], tmp_path / "v-sh"),
        ([py, str(out / "tools" / "bootstrap.py"), "--python", py, str(tmp_path / "v-ps1")], tmp_path / "v-ps1"),
        (["sh", str(sfx), "--python", py, "--venv", str(tmp_path / "v-sfx")], tmp_path / "v-sfx"),
    ]
    for argv, venv in checks:
        run = subprocess.run([*off, *argv], capture_output=True, text=True, env=env)
        assert run.returncode == 0, argv[:2] + [run.stdout + run.stderr]
        got = subprocess.run([*off, str(venv / "bin" / "python"), "-c",
                              "import sys, oldapp, olddep; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        assert got.returncode == 0 and got.stdout.strip() == version, got.stderr


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_probe_script_runs_on_old_python(version: str, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    py = need_python(version)
    data = json.loads(_probe_with(py, tmp_path, env, offpkg).read_text())
    assert data["python"]["version"] == version and data["tags"][0].startswith(f"cp{version.replace('.', '')}-")


def test_scripts_refuse_python_2_clearly(tmp_path: Path, env: dict[str, str], offpkg, index) -> None:
    """A python older than the floor gets one clear line from probe.py and install.sh (exit 6)."""
    py2 = find_python("2.7")
    if py2 is None:
        pytest.skip("no python2.7 here")
    script = offpkg(["probe", "--script"], env).stdout
    (tmp_path / "probe.py").write_text(script)
    proc = subprocess.run([py2, str(tmp_path / "probe.py")], capture_output=True, text=True)
    assert proc.returncode == 6 and "offpkg bundles for Python 3.6 or newer only" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    out = tmp_path / "b"
    assert offpkg(["bundle", "gamma", "--index-url", index.url, "--no-tools", "-o", str(out)], env).returncode == 0
    inst = subprocess.run(["sh", str(out / "install.sh"), "--python", py2, str(tmp_path / "v")],
                          capture_output=True, text=True)
    assert inst.returncode == 6 and "Python 2.7; this installer needs Python 3.6 or newer" in inst.stderr
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("cmd", ["bundle", "lock"])
def test_target_below_the_floor_is_refused_at_bundle_time(cmd: str, tmp_path: Path, env: dict[str, str], offpkg,
                                                          index) -> None:
    out = tmp_path / "b"
    args = [cmd, "gamma", "--python-version", "3.5", "--platform", "manylinux_2_17_x86_64", "--index-url", index.url]
    proc = offpkg([*args, "-o", str(out)], env)
    assert_clean_error(proc, 3, "python 3.5 is older than Python 3.6", "install Python 3.6 or newer on the target")
    assert not out.exists()
    js = offpkg([*args, "-o", str(out), "--json"], env)
    assert js.returncode == 3 and json.loads(js.stdout)["ok"] is False


def _other_version() -> str:
    """3.10 (the issue's case) unless this interpreter is 3.10 itself."""
    return "3.10" if sys.version_info[:2] != (3, 10) else "3.12"


def test_verify_proves_the_target_with_its_own_python(index, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    """A python-3.10 target is proven with the 3.10 interpreter: its cp310 wheel installed
    offline into a 3.10 venv, imports checked there (issue 13.5)."""
    version = _other_version()
    py = need_python(version)
    need_offline()
    out = tmp_path / "b"
    proc = offpkg(["bundle", "alpha", "compiled", "--python-version", version, "--platform", "manylinux_2_17_x86_64",
                   "--index-url", index.url, "-o", str(out), "--verify", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout)["verification"]
    assert v["verified"] is True, v
    [t] = v["targets"]
    assert t["status"] == "verified" and t["python_version"].startswith(version + ".")
    assert os.path.realpath(t["python"]) == os.path.realpath(py) or t["python_version"].startswith(version)
    assert {c["name"] for c in v["checks"]} == {"offline install + pip check", "imports"}
    assert all(c["ok"] for c in v["checks"]) and v["network_isolation"].startswith("unshare")
    m = json.loads((out / "offpkg.json").read_text())
    assert m["verification"]["targets"][0]["status"] == "verified"
    shown = offpkg(["inspect", str(out)], env).stdout
    assert "verified: yes" in shown and f"(Python {version}." in shown


def test_verify_never_claims_a_target_it_could_not_run(index, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    """Two targets: this host (proven) and Windows (no interpreter here): the record says
    verified for one, unverified for the other, and the output says so."""
    need_offline()
    host = offpkg(["probe", "-o", str(tmp_path / "host.json")], env)
    assert host.returncode == 0, host.stderr
    win = json.loads((tmp_path / "host.json").read_text())
    win.update(os="windows", platforms=["win_amd64"], libc=None,
               tags=[t.rsplit("-", 1)[0] + "-win_amd64" for t in win["tags"] if t.endswith("linux_x86_64")]
               + ["py3-none-any"])
    win["markers"].update(sys_platform="win32", platform_system="Windows", os_name="nt")
    (tmp_path / "win.json").write_text(json.dumps(win))
    out = tmp_path / "b"
    proc = offpkg(["bundle", "alpha", "--target", str(tmp_path / "host.json"), "--target", str(tmp_path / "win.json"),
                   "--index-url", index.url, "-o", str(out), "--verify"], env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"verified\s+partly", proc.stdout), proc.stdout
    assert "target 1 (cpython" in proc.stderr and "is NOT verified: no interpreter on this host matches" in proc.stderr
    v = json.loads((out / "offpkg.json").read_text())["verification"]
    assert v["verified"] is False
    assert [t["status"] for t in v["targets"]] == ["verified", "unverified"]
    assert v["targets"][1]["python"] is None and "nothing was installed or run" in v["targets"][1]["reason"]
    assert all(c["name"].startswith("target 0: ") for c in v["checks"])  # no check claims target 1
    shown = offpkg(["inspect", str(out)], env).stdout
    assert "verified: partly" in shown and "target 1" in shown and "unverified" in shown


def test_ci_runs_the_round_trip_on_every_interpreter() -> None:
    """.ci/run: system setup, the README's test command, then .ci/pythons.py (offpkg's own matrix)."""
    run = (REPO / ".ci" / "run").read_text()
    steps = [run.index("\nbash .ci/setup-system.sh"),
             run.index("\npython3 -m pip install -q -e '.[test]' && python3 -m pytest -q"),
             run.index("\npython3 .ci/pythons.py")]
    assert steps == sorted(steps)
    assert (REPO / ".ci" / "setup-system.sh").is_file()
    readme = (REPO / "README.md").read_text()
    assert "python3 -m pip install -q -e '.[test]' && python3 -m pytest -q" in readme
