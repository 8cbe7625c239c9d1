"""The wheel of offpkg itself carries every file the runtime reads (templates, stacks, data, the probe)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_stacks_and_data(tmp_path, env) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info into the source tree.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".hypothesis"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next(tmp_path.glob("offpkg-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("offpkg/_probe.py", "offpkg/data/cuda.json", "offpkg/data/mirrors.json", "offpkg/py.typed",
                     "offpkg/templates/install.sh", "offpkg/templates/install.ps1", "offpkg/templates/bootstrap.py",
                     "offpkg/templates/selfextract.sh", "offpkg/templates/stacks/gpu-ml.toml",
                     "offpkg/templates/stacks/gpu-ml.smoke.py", "offpkg/templates/stacks/cpu-small.toml",
                     "offpkg/templates/stacks/cpu-small.smoke.py"):
        assert required in names, required
    # Every template in the repository is in the wheel.
    for f in (ROOT / "templates").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            assert "offpkg/templates/" + f.relative_to(ROOT / "templates").as_posix() in names, f
