"""The error boundary (offpkg.cli.main) keeps its promises: every failure gives one clear
``error:`` line, the documented exit code and, with ``--json``, one JSON error document on stdout."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import click
import pytest

from helpers import assert_clean_error
from offpkg import errors
from offpkg.cli import cli, main


def _one_doc(stdout: str) -> dict:
    """stdout is exactly one JSON document (json.loads fails on two)."""
    return json.loads(stdout)


@pytest.mark.parametrize("args, code, kind, needle", [
    (["bundle", "--json"], 2, "UsageError", "Missing option '-o' / '--output'"),
    (["bundle", "alpha", "--bogus", "--json"], 2, "UsageError", "No such option"),
    (["nosuchcommand", "--json"], 2, "UsageError", "No such command"),
    (["install", "b", "--json"], 2, "UsageError", "--venv"),
    (["probe", "-o", "/proc/nope/x.json", "--json"], 3, "InputError", "no such file or directory: /proc/nope"),
    (["inspect", "missing.tar", "--json"], 3, "InputError", "missing.tar"),
])
def test_json_error_document_on_every_exit(args, code, kind, needle, env, offpkg, tmp_path) -> None:
    proc = offpkg(args, env, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "rror" in proc.stderr
    doc = _one_doc(proc.stdout)
    assert doc["ok"] is False and doc["command"] == "error" and doc["schema_version"] == 1
    assert doc["error"]["exit_code"] == code and doc["error"]["type"] == kind, doc
    assert needle in doc["error"]["message"]


def test_missing_output_folder_is_not_a_disk_problem(env, offpkg, tmp_path) -> None:
    proc = offpkg(["probe", "-o", str(tmp_path / "no" / "such" / "dir" / "t.json")], env)
    # probe creates the folders it needs; a path under a file cannot be created:
    (tmp_path / "afile").write_text("x")
    bad = offpkg(["probe", "-o", str(tmp_path / "afile" / "t.json"), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert_clean_error(bad, 9, "afile", "in the way")
    assert "free some space" not in bad.stderr and "--force" not in bad.stderr


def test_internal_error_is_70_with_a_json_document(capsys, monkeypatch) -> None:
    @click.command("boom")
    @click.option("--json", "as_json", is_flag=True)
    def boom(as_json: bool) -> None:
        raise RuntimeError("a real bug")

    monkeypatch.setitem(cli.commands, "boom", boom)
    with pytest.raises(SystemExit) as exc:
        main(["boom", "--json"])
    assert exc.value.code == 70
    out = capsys.readouterr()
    doc = _one_doc(out.out)
    assert doc["error"]["type"] == "InternalError" and doc["error"]["exit_code"] == 70
    assert "RuntimeError: a real bug" in doc["error"]["message"] and "internal error" in out.err


def test_a_command_that_already_answered_gets_no_second_document(capsys, monkeypatch) -> None:
    from offpkg.cli import ui

    @click.command("half")
    @click.option("--json", "as_json", is_flag=True)
    def half(as_json: bool) -> None:
        ui.emit_json("half", {"ok": False, "problems": ["p"]})
        raise errors.VerificationError("1 problem", ["p"])

    monkeypatch.setitem(cli.commands, "half", half)
    with pytest.raises(SystemExit) as exc:
        main(["half", "--json"])
    assert exc.value.code == 1
    assert _one_doc(capsys.readouterr().out)["command"] == "half"


def test_interrupt_is_130_with_a_json_document_and_nothing_left(index, tmp_path, env, offpkg) -> None:
    """Ctrl-C (SIGINT to the process group) while the venv is being created."""
    out = tmp_path / "b"
    assert offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out)], env).returncode == 0
    started, go = tmp_path / "STARTED", tmp_path / "GO"
    gate = tmp_path / "py"
    gate.write_text(f'#!/bin/sh\ncase "$*" in *"-m venv"*) touch "{started}"; while [ ! -e "{go}" ]; do sleep 0.05; '
                    f'done;; esac\nexec "{sys.executable}" "$@"\n')
    gate.chmod(0o755)
    venv = tmp_path / "v"
    proc = subprocess.Popen([sys.executable, "-m", "offpkg", "install", str(out), "--venv", str(venv), "--python",
                             str(gate), "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    doc = _one_doc(stdout)
    assert doc["error"]["type"] == "InterruptedByUser" and doc["error"]["exit_code"] == 130
    assert not venv.exists() and not list(tmp_path.glob(".v.offpkg-run*"))


@pytest.mark.parametrize("exc, kind, code, words", [
    (OSError(errno.ENOENT, "No such file or directory", "/x/y"), errors.InputError, 3, "no such file"),
    (OSError(errno.ENOTDIR, "Not a directory", "/f/x"), errors.InputError, 3, "not a folder"),
    (OSError(errno.ENOSPC, "No space left on device", "/x"), errors.EnvironmentProblem, 10, "no space left"),
    (OSError(errno.EACCES, "Permission denied", "/x"), errors.EnvironmentProblem, 10, "permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/x"), errors.EnvironmentProblem, 10, "read-only"),
    (OSError(errno.EEXIST, "File exists", "/x"), errors.OutputExistsError, 9, "already exists"),
    (OSError(errno.ENOTRECOVERABLE, "State not recoverable"), errors.EnvironmentProblem, 10, "not recoverable"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), errors.NetworkError, 5, "network error"),
])
def test_oserror_by_errno(exc, kind, code, words) -> None:
    err = errors.from_oserror(exc)
    assert type(err) is kind and err.exit_code == code
    assert words in err.message.lower()
    if exc.errno == errno.ENOENT:
        assert "space" not in (err.hint or "") and err.message.endswith("/x/y")


def test_requests_errors_are_network_errors() -> None:
    import requests

    for exc in (requests.ConnectionError("connection refused"), requests.Timeout("read timed out"),
                requests.exceptions.SSLError("certificate verify failed")):
        assert isinstance(exc, OSError)  # why the boundary must look before treating it as a disk problem
        err = errors.from_oserror(exc)
        assert isinstance(err, errors.NetworkError) and err.exit_code == 5, exc


def test_requests_error_through_the_boundary(capsys, monkeypatch) -> None:
    import requests

    @click.command("net")
    @click.option("--json", "as_json", is_flag=True)
    def net(as_json: bool) -> None:
        raise requests.ConnectionError("HTTPSConnectionPool(host='pypi.org'): Max retries exceeded")

    monkeypatch.setitem(cli.commands, "net", net)
    with pytest.raises(SystemExit) as exc:
        main(["net", "--json"])
    assert exc.value.code == 5
    out = capsys.readouterr()
    assert _one_doc(out.out)["error"]["type"] == "NetworkError" and "free some space" not in out.err


def test_deep_archive_is_refused_and_leaves_nothing_in_tmpdir(tmp_path, env, offpkg) -> None:
    import io
    import tarfile

    bad = tmp_path / "deep.tar"
    with tarfile.open(bad, "w") as t:
        info = tarfile.TarInfo("/".join(["d"] * 1500) + "/f")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = offpkg(["install", str(bad), "--venv", str(tmp_path / "v"), "--json"], dict(env, TMPDIR=str(tmpdir)))
    assert_clean_error(proc, 3, "folders deep")
    assert _one_doc(proc.stdout)["error"]["type"] == "UnsafeArchiveError"
    assert list(tmpdir.iterdir()) == [] and not (tmp_path / "v").exists()


def test_remove_tree_any_depth(tmp_path) -> None:
    from offpkg.fsutil import remove_tree

    deep = tmp_path / "t"
    p = deep
    p.mkdir()
    for _ in range(1200):  # deeper than the recursion limit of shutil.rmtree before Python 3.12
        p = p / "d"
        p.mkdir()  # one by one: os.makedirs recurses too
    (p / "f").write_text("x")
    os.symlink(tmp_path / "keep", deep / "link")
    (tmp_path / "keep").write_text("not followed")
    remove_tree(deep)
    assert not deep.exists() and (tmp_path / "keep").read_text() == "not followed"


def test_bundle_that_fails_verify_is_not_written(tmp_path, env, offpkg) -> None:
    """`bundle --verify` has one meaning: a bundle whose smoke test fails is not written at OUT (exit 1)."""
    from helpers import serve
    from pkgfactory import Dist, build_wheel, write_simple_index

    root = tmp_path / "idx"
    build_wheel(Dist("brokenimport", "1.0", code="raise ImportError('this package cannot be imported')\n"),
                root / "files")
    write_simple_index(root / "files", root)
    server, base = serve(root)
    try:
        for out in (tmp_path / "b", tmp_path / "b.tar"):
            proc = offpkg(["bundle", "brokenimport", "-i", f"{base}/simple", "-o", str(out),
                           "--verify", "--json"], env)
            assert_clean_error(proc, 1, "smoke test failed", "imports", "not written")
            doc = _one_doc(proc.stdout)
            assert doc["error"]["type"] == "VerificationError" and any(
                "cannot be imported" in p for p in doc["error"]["problems"]), doc
            assert not out.exists() and not list(tmp_path.glob(f".{out.name}.offpkg-tmp*"))
    finally:
        server.shutdown()
