"""offpkg freeze on real environments: index installs pinned; editable, local-path installs left out loudly."""

from __future__ import annotations

import subprocess
import sys

from helpers import assert_clean_error
from pkgfactory import Dist, build_sdist, unpack_sdist


def test_freeze_a_venv(index, tmp_path, env, offpkg) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin/python")
    pip = [py, "-m", "pip", "install", "--no-input", "-q"]
    subprocess.run([*pip, "--index-url", index.url, "alpha"], check=True, env=env)
    # A local-path install and a real PEP 660 editable install.
    subprocess.run([*pip, "--no-index", str(index.files / "tokenlike-0.3.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")],
                   check=True, env=env)
    src = unpack_sdist(build_sdist(Dist("mydevpkg", "0.1"), tmp_path / "sd"), tmp_path / "src")
    subprocess.run([*pip, "--no-index", "-e", str(src)], check=True, env=env)
    out = tmp_path / "req.txt"
    proc = offpkg(["freeze", "--python", py, "-o", str(out)], env)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert pins == ["alpha==1.0", "beta==1.1", "gamma==2.0"]  # sorted; pip itself left out
    assert "# mydevpkg: editable install" in text and "# tokenlike: installed from a local path" in text
    assert "mydevpkg" in proc.stderr and "warning" in proc.stderr
    js = offpkg(["freeze", "--python", py, "--json"], env)
    data = __import__("json").loads(js.stdout)
    assert data["requirements"] == pins and {s["name"] for s in data["skipped"]} == {"mydevpkg", "tokenlike"}
    # The frozen file is a valid bundle input.
    b = offpkg(["bundle", "-r", str(out), "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert b.returncode == 0, b.stderr


def test_freeze_bad_python(env, offpkg, tmp_path) -> None:
    assert_clean_error(offpkg(["freeze", "--python", str(tmp_path / "nope")], env), 3, "does not exist")
