"""Credentials reach pip and uv through their environment, never their command line.

A real index on 127.0.0.1 holds its answer until the test has read the command
line (/proc/PID/cmdline, readable by every local user) and the environment
(/proc/PID/environ, readable by the owner only) of every process offpkg started:
the resolver is alive and waiting, so nothing depends on timing.
"""

from __future__ import annotations

import functools
import http.server
import os
import stat
import threading
from pathlib import Path

import pytest

from offpkg.backends import PipBackend, Sources, UvBackend
from offpkg.target import Target

SECRET = "s3cr3t-t0ken-value"

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            out.append(c)
            todo.append(c)
    return out


class _Seen:
    def __init__(self) -> None:
        self.cmdlines: list[str] = []
        self.environs: list[str] = []
        self.modes: list[int] = []
        self.lock = threading.Lock()

    def snapshot(self) -> None:
        with self.lock:
            for pid in _descendants(os.getpid()):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                    envb = Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode("utf-8", "replace")
                    mode = os.stat(f"/proc/{pid}/environ").st_mode
                except OSError:
                    continue
                self.cmdlines.append(cmd)
                self.environs.append(envb)
                self.modes.append(mode)


def _handler(root: Path, seen: _Seen):  # noqa: ANN202
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.snapshot()  # the resolver that asked is alive, waiting for this answer
            super().do_GET()

    return functools.partial(Handler, directory=str(root))


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_index_credentials_never_on_a_command_line(index, tmp_path, backend) -> None:
    seen = _Seen()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(index.root, seen))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:{SECRET}@127.0.0.1:{server.server_address[1]}/simple"
        reqs = tmp_path / "req.txt"
        reqs.write_text("alpha\n")
        be = UvBackend() if backend == "uv" else PipBackend()
        pins = be.resolve(reqs, [], Target.host(), Sources((url,), (), ()), tmp_path)
    finally:
        server.shutdown()
    assert {p.name for p in pins} == {"alpha", "beta", "gamma"}
    tool = "uv" if backend == "uv" else "pip"
    ran = [c for c in seen.cmdlines if tool in c]
    assert ran, seen.cmdlines  # the resolver was seen while it waited for the index
    assert not [c for c in seen.cmdlines if SECRET in c], "a credential reached a command line"
    # It went through the environment, which only the owner can read.
    assert any(SECRET in e for e in seen.environs)
    assert all(not (m & (stat.S_IRGRP | stat.S_IROTH)) for m in seen.modes)


def test_sources_split_secrets_from_argv() -> None:
    s = Sources((f"https://u:{SECRET}@a.example/simple", "https://b.example/simple?token=" + SECRET),
                (f"https://u:{SECRET}@c.example/links", "/local/wheels"))
    assert SECRET not in " ".join(s.argv()) and s.argv() == ["--find-links", "/local/wheels"]
    uv = s.env("uv")
    assert uv["UV_DEFAULT_INDEX"].endswith("a.example/simple") and uv["UV_INDEX"].endswith("token=" + SECRET)
    assert uv["UV_FIND_LINKS"] == f"https://u:{SECRET}@c.example/links"
    pip = s.env("pip")
    assert pip["PIP_INDEX_URL"].endswith("a.example/simple") and "b.example" in pip["PIP_EXTRA_INDEX_URL"]
    assert Sources(()).argv() == ["--no-index"] and Sources(()).env("pip") == {}
