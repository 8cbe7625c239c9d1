"""No run deletes what it did not create; one run at a time per venv (offpkg.ownership).

Real runs of ``offpkg install``, killed with SIGKILL at a known point: the point is
a real interpreter wrapper (a shell script in front of python) that announces
itself and waits for a file, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error
from offpkg import ownership


@pytest.fixture(scope="module")
def bundle(index, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("own") / "b"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_CACHE_DIR=str(out.parent / "uvc"), CI="1",
               OFFPKG_CACHE_DIR=str(out.parent / "cache"), HOME=str(out.parent))
    # With tools/ (the pip wheel): venvs are made without ensurepip, seconds faster.
    proc = subprocess.run([sys.executable, "-m", "offpkg", "bundle", "alpha", "-i", index.url, "-o", str(out)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def _gate(path: Path, real: str, tmp: Path, *, only: str | None = None) -> tuple[Path, Path]:
    """Write an interpreter wrapper at ``path``: it creates STARTED, then waits for GO before running ``real``.

    With ``only``, it waits only when its arguments contain that text.
    """
    started, go = tmp / "STARTED", tmp / "GO"
    cond = f'case "$*" in *"{only}"*) ;; *) exec "{real}" "$@";; esac\n' if only else ""
    path.write_text(f'#!/bin/sh\n{cond}if [ ! -e "{go}" ]; then touch "{started}"; '
                    f'while [ ! -e "{go}" ]; do sleep 0.05; done; fi\nexec "{real}" "$@"\n')
    path.chmod(0o755)
    return started, go


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "offpkg", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until ``path`` exists; fails (with the run's output) if the run ends first."""
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before reaching the gate:\n{out}\n{err}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _installed(bundle: Path, venv: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _gate_venv_python(venv: Path, tmp: Path) -> tuple[Path, Path]:
    """Put a gate in front of the venv's own python (pip installs with it)."""
    py = venv / "bin" / "python"
    real = venv / "bin" / "python-real"
    os.rename(py, real)
    return _gate(py, str(real), tmp)


def _ungate_venv_python(venv: Path) -> None:
    os.replace(venv / "bin" / "python-real", venv / "bin" / "python")


def test_venv_holding_a_file_named_like_the_marker_is_not_deleted(bundle, tmp_path, env) -> None:
    venv = tmp_path / "v"
    venv.mkdir()
    (venv / ownership.MARKER).write_text("mine\n")
    (venv / "notes.txt").write_text("my work")
    proc = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv), "--json"],
                          env=env, capture_output=True, text=True)
    assert_clean_error(proc, 9, "already exists", "will not remove it")
    assert json.loads(proc.stdout)["error"]["exit_code"] == 9
    assert (venv / "notes.txt").read_text() == "my work" and (venv / ownership.MARKER).exists()


def test_upgrade_never_marks_the_users_venv(bundle, tmp_path, env) -> None:
    venv = tmp_path / "v"
    _installed(bundle, venv, env)
    (venv / "notes.txt").write_text("my work")
    started, go = _gate_venv_python(venv, tmp_path)
    proc = _start(["install", str(bundle), "--venv", str(venv), "--upgrade", "--backend", "pip"], env)
    _wait_for(started, proc)
    # Mid-upgrade: no marker in the user's venv (the upgrade is an atomic sync built beside it:
    # offpkg.updates.sync, whose journal sits beside the venv while it runs).
    assert not (venv / ownership.MARKER).exists()
    go.touch()
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert not ownership.record_path(venv).exists() and (venv / "notes.txt").exists()


def test_killed_upgrade_keeps_the_venv_and_says_how_to_repair(bundle, tmp_path, env) -> None:
    venv = tmp_path / "v"
    _installed(bundle, venv, env)
    (venv / "notes.txt").write_text("my work")
    started, go = _gate_venv_python(venv, tmp_path)
    proc = _start(["install", str(bundle), "--venv", str(venv), "--upgrade", "--backend", "pip"], env)
    _wait_for(started, proc)
    _kill(proc)  # kill -9 of offpkg and its children, mid-install
    _ungate_venv_python(venv)
    assert (venv / "notes.txt").read_text() == "my work" and (venv / "pyvenv.cfg").exists()
    assert not (venv / ownership.MARKER).exists()
    # The next run (no --upgrade) refuses, and deletes nothing: the atomic upgrade left the venv as it was.
    again = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv), "--json"],
                           env=env, capture_output=True, text=True)
    assert_clean_error(again, 9, "already exists", "--upgrade")
    assert json.loads(again.stdout)["error"]["type"] == "OutputExistsError"
    assert (venv / "notes.txt").exists()
    # Running the upgrade again works, and the venv is whole.
    repair = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv),
                             "--upgrade"], env=env, capture_output=True, text=True)
    assert repair.returncode == 0, repair.stderr
    assert not ownership.record_path(venv).exists() and (venv / "notes.txt").exists()
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import alpha, beta"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_killed_create_is_removed_on_rerun(bundle, tmp_path, env) -> None:
    venv = tmp_path / "v"
    started, go = _gate(tmp_path / "py", sys.executable, tmp_path, only="-m venv")
    proc = _start(["install", str(bundle), "--venv", str(venv), "--python", str(tmp_path / "py")], env)
    _wait_for(started, proc)
    assert json.loads((venv / ownership.MARKER).read_text())["offpkg_run"]
    _kill(proc)
    (venv / "half-made").write_text("x")
    rerun = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv)], env=env,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "was creating it and was interrupted" in rerun.stderr
    assert not (venv / "half-made").exists() and (venv / "offpkg-receipt.json").exists()
    assert not (venv / ownership.MARKER).exists() and not ownership.record_path(venv).exists()


def test_concurrent_installs_into_one_venv(bundle, tmp_path, env) -> None:
    venv = tmp_path / "v"
    started, go = _gate(tmp_path / "py", sys.executable, tmp_path, only="-m venv")
    first = _start(["install", str(bundle), "--venv", str(venv), "--python", str(tmp_path / "py")], env)
    _wait_for(started, first)
    # A second run does not wait past its bound, exits 9, and touches nothing of the first's.
    second = subprocess.run([sys.executable, "-m", "offpkg", "install", str(bundle), "--venv", str(venv), "--json"],
                            env=dict(env, OFFPKG_LOCK_TIMEOUT="0"), capture_output=True, text=True)
    assert_clean_error(second, 9, "in use by another offpkg run", f"pid {first.pid}")
    assert json.loads(second.stdout)["error"]["type"] == "LockError"
    assert (venv / ownership.MARKER).exists()
    # A third waits for the lock, then finds the finished venv and refuses to overwrite it.
    third = _start(["install", str(bundle), "--venv", str(venv)], dict(env, OFFPKG_LOCK_TIMEOUT="600"))
    go.touch()
    out, err = first.communicate()
    assert first.returncode == 0, err
    out3, err3 = third.communicate()
    assert third.returncode == 9 and "already exists" in err3, err3
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import alpha"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_lock_error_names_no_holder_when_unknown(tmp_path, monkeypatch) -> None:
    from filelock import FileLock

    from offpkg.errors import LockError

    venv = tmp_path / "v"
    monkeypatch.setenv(ownership.LOCK_TIMEOUT_ENV, "0")
    with FileLock(str(ownership.lock_path(venv))):
        # filelock locks are per process on Linux (flock on separate descriptors conflicts): a second acquire fails.
        with pytest.raises(LockError, match="in use by another offpkg run; waited 0 s"):
            with ownership.locked(venv):
                pass


def test_install_sh_keeps_the_same_promises(bundle, tmp_path, env) -> None:
    """install.sh (tools/bootstrap.py, no offpkg on the host) uses the same lock, record and marker."""
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / ownership.MARKER).write_text("mine\n")
    sh = subprocess.run(["sh", str(bundle / "install.sh"), "--python", sys.executable, str(foreign)], env=env,
                        capture_output=True, text=True)
    assert sh.returncode == 9 and "is not removed" in sh.stderr, sh.stderr
    assert (foreign / ownership.MARKER).read_text() == "mine\n"
    # A venv offpkg is creating is locked against install.sh too (same lock file, flock).
    venv = tmp_path / "v"
    started, go = _gate(tmp_path / "py", sys.executable, tmp_path, only="-m venv")
    first = _start(["install", str(bundle), "--venv", str(venv), "--python", str(tmp_path / "py")], env)
    _wait_for(started, first)
    second = subprocess.run(["sh", str(bundle / "install.sh"), "--python", sys.executable, str(venv)],
                            env=dict(env, OFFPKG_LOCK_TIMEOUT="0"), capture_output=True, text=True)
    assert second.returncode == 9 and "in use by another offpkg run" in second.stderr, second.stderr
    _kill(first)
    # ...and install.sh clears what that killed run was creating, by its record.
    third = subprocess.run(["sh", str(bundle / "install.sh"), "--python", sys.executable, str(venv)], env=env,
                           capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    assert "was creating it and was interrupted" in third.stderr
    assert not ownership.record_path(venv).exists() and not (venv / ownership.MARKER).exists()
