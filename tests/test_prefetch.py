"""Speculative downloads (offpkg.prefetch) against a real index on 127.0.0.1 that logs every request.

What is checked is what a user would care about: a guess is downloaded once and reused by the real
fetch (never twice), a wrong guess never reaches the bundle, and the downloaded-bytes figure stays true.
Only offpkg's own requests are counted (uv resolves with its own HTTP client and User-Agent).
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest

from pkgfactory import Dist, build_wheel, write_simple_index


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    log: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("User-Agent", "").startswith("offpkg/"):
            # A Range request is a look at the wheel's METADATA member (this server ignores Range
            # and the reader stops at once); a download is a GET without one.
            type(self).log.append(self.path + ("#range" if self.headers.get("Range") else ""))
        super().do_GET()


@pytest.fixture
def logged_index(tmp_path: Path):
    root = tmp_path / "idx"
    files = root / "files"
    payload = bytes(range(256)) * 4096  # 1 MiB, so the downloads are real work
    build_wheel(Dist("big", "1.0", ["cudart==1.0"]), files, payload=payload + b"1")
    build_wheel(Dist("big", "2.0", ["cudart==1.0"]), files, payload=payload + b"2")
    build_wheel(Dist("cudart", "1.0"), files, payload=payload + b"c")
    build_wheel(Dist("cudart", "1.1"), files)
    for whl in files.glob("*.whl"):  # PEP 658: the metadata beside each wheel
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            (files / (whl.name + ".metadata")).write_bytes(z.read(meta))
    write_simple_index(files, root)
    handler = type("H", (_LoggingHandler,), {"log": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", handler.log, files
    server.shutdown()


def _wheel_gets(log: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in log:
        if p.endswith(".whl"):
            name = p.rsplit("/", 1)[-1]
            out[name] = out.get(name, 0) + 1
    return out


def test_guesses_are_downloaded_once_and_used(offpkg, env, logged_index, tmp_path: Path) -> None:
    url, log, files = logged_index
    proc = offpkg(["bundle", "big", "-i", url, "-o", str(tmp_path / "b"), "--no-tools", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    wheels = sorted(p.name for p in (tmp_path / "b" / "wheels").iterdir())
    assert wheels == ["big-2.0-py3-none-any.whl", "cudart-1.0-py3-none-any.whl"]
    # The guess read big 2.0's metadata (only a guess does: the real path needs no metadata) ...
    assert any(p.endswith(("big-2.0-py3-none-any.whl.metadata", "big-2.0-py3-none-any.whl#range")) for p in log), log
    # ... and every wheel crossed the network exactly once, guessed or not.
    assert _wheel_gets(log) == {"big-2.0-py3-none-any.whl": 1, "cudart-1.0-py3-none-any.whl": 1}, log
    sizes = sum((files / w).stat().st_size for w in wheels)
    assert res["downloaded_bytes"] == sizes and res["cached_files"] == 0


def test_a_wrong_guess_never_reaches_the_bundle(offpkg, env, logged_index, tmp_path: Path) -> None:
    url, log, files = logged_index
    cons = tmp_path / "constraints.txt"
    cons.write_text("big<2\n")  # the guess (the newest big) is wrong: the lock takes big 1.0
    proc = offpkg(["bundle", "big", "-c", str(cons), "-i", url, "-o", str(tmp_path / "b"), "--no-tools",
                   "--json"], env)
    assert proc.returncode == 0, proc.stderr
    wheels = sorted(p.name for p in (tmp_path / "b" / "wheels").iterdir())
    assert wheels == ["big-1.0-py3-none-any.whl", "cudart-1.0-py3-none-any.whl"]
    manifest = json.loads((tmp_path / "b" / "offpkg.json").read_text())
    assert {p["filename"] for p in manifest["packages"]} == set(wheels)
    verify = offpkg(["verify", str(tmp_path / "b"), "--json"], env)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout
    # The locked files crossed the network once each (the wrong guess may or may not have started).
    gets = _wheel_gets(log)
    assert gets["big-1.0-py3-none-any.whl"] == 1 and gets["cudart-1.0-py3-none-any.whl"] == 1, log
