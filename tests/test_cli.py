"""The CLI as a whole: --help and --json everywhere, --version, progress on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import click
import pytest

from offpkg import __version__
from offpkg.cli import _register, cli


def _all_commands() -> list[tuple[str, ...]]:
    _register()
    out: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                walk(cmd, prefix + (name,))
            else:
                out.append(prefix + (name,))

    walk(cli, ())
    return sorted(set(out))


NO_JSON: set[tuple[str, ...]] = set()  # every command has --json


def test_every_command_has_help_and_json(env, offpkg) -> None:
    commands = _all_commands()
    assert ("bundle",) in commands and ("verify",) in commands and ("cuda", "plan") in commands
    for cmd in commands:
        proc = offpkg([*cmd, "--help"], env)
        assert proc.returncode == 0, (cmd, proc.stderr)
        if cmd not in NO_JSON:
            assert "--json" in proc.stdout, f"offpkg {' '.join(cmd)} has no --json"


def test_version_and_module_entry(env, offpkg) -> None:
    proc = offpkg(["--version"], env)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_lock_prints_hash_pinned_requirements(index, env, offpkg) -> None:
    proc = offpkg(["lock", "alpha", "-i", index.url, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema_version"] == 1 and {p["name"] for p in data["packages"]} == {"alpha", "beta", "gamma"}
    assert all(len(p["sha256"]) == 64 for p in data["packages"])
    text = offpkg(["lock", "alpha", "-i", index.url], env).stdout
    assert "alpha==1.0" in text and "--hash=sha256:" in text


def test_error_json_document(env, offpkg, tmp_path) -> None:
    proc = offpkg(["verify", str(tmp_path / "missing"), "--json"], env)
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"]["exit_code"] == 3 and doc["schema_version"] == 1


def _run_in_pty(argv: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run argv with a real terminal as stdout/stderr; return everything it drew."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execvpe(argv[0], argv, env)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        else:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    return b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_and_quiet_otherwise(index, env, tmp_path, offpkg) -> None:
    tty_env = {k: v for k, v in env.items() if k != "CI"}
    tty_env.update(COLUMNS="120", TERM="xterm")
    drawn = _run_in_pty([sys.executable, "-m", "offpkg", "bundle", "alpha", "tokenlike", "-i", index.url,
                         "-o", str(tmp_path / "a")], tty_env)
    assert "bundle" in drawn and "packages" in drawn and "4 wheels" in drawn  # the summary table
    # Not a terminal (a pipe, as in CI): no progress drawing, just the summary on stdout.
    proc = offpkg(["bundle", "alpha", "-i", index.url, "-o", str(tmp_path / "b")], env)
    assert proc.returncode == 0 and "\x1b[" not in proc.stdout + proc.stderr
    assert "fetching" not in proc.stderr
    # --quiet leaves only warnings and errors on stderr.
    q = offpkg(["-q", "bundle", "alpha", "-i", index.url, "-o", str(tmp_path / "c"), "--no-tools"], env)
    assert q.returncode == 0 and q.stderr == ""
