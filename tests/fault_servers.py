"""HTTP servers on 127.0.0.1 that misbehave on purpose, for the fault tests.

A :class:`FaultServer` serves a folder (a PEP 503 index written by
``pkgfactory.write_simple_index``) like a real index, with HTTP Range support
that can be switched off, optional HTTP basic auth or a ``?token=`` in every
URL, and any number of injected :class:`Fault`\\ s: truncated bodies, stalls,
connection resets, 5xx answers, wrong bytes, throttled bodies. Every request is
logged (method, path, Range header, status, fault), and every fault injected is
counted in :data:`INJECTED` so the suite can report how many it tried.

Servers are bounded: they stop on leaving the ``with`` block, after
``max_requests`` requests, and on their own after ``lifetime`` seconds; a
stalled handler wakes up as soon as the server stops.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Faults injected, by kind, across every server of the test session.
INJECTED: collections.Counter[str] = collections.Counter()
_INJECTED_LOCK = threading.Lock()


@dataclass
class Fault:
    """One misbehaviour, applied to requests whose path contains ``match``."""

    kind: str  # truncate | stall | reset | status | corrupt | throttle
    match: str = "/files/"
    times: int = 10**9  # how many matching requests get it; later ones are served normally
    after: int = 0  # truncate / stall: body bytes sent first (stall: -1 = before the status line)
    status: int = 503
    stall: float = 5.0  # seconds of silence
    rate: int = 0  # throttle: bytes per second
    agent: str = ""  # only for clients whose User-Agent contains this ("offpkg/": not uv or pip)
    used: int = 0


@dataclass(frozen=True)
class Hit:
    method: str  # GET or HEAD
    path: str  # the path with its query
    range: str | None
    status: int
    fault: str | None
    authorization: bool
    agent: str = ""


@dataclass
class _Config:
    root: Path
    faults: list[Fault] = field(default_factory=list)
    ranges: bool = True
    auth: tuple[str, str] | None = None
    token: str | None = None
    sign_files: str | None = None  # files need ?X-Amz-Signature=<this>; pages link them with it


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    timeout = 15  # a stuck client never holds a server thread for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    # ------------------------------------------------------------------ helpers
    def _log(self, status: int, fault: str | None) -> None:
        self.server.record(Hit(self.command, self.path, self.headers.get("Range"), status, fault,
                               "Authorization" in self.headers, self.headers.get("User-Agent", "")))

    def _fault(self) -> Fault | None:
        with self.server.lock:
            agent = self.headers.get("User-Agent", "")
            for f in self.server.cfg.faults:
                if f.match in self.path and f.used < f.times and f.agent in agent and self.command == "GET":
                    f.used += 1
                    with _INJECTED_LOCK:
                        INJECTED[f.kind] += 1
                    return f
        return None

    def _plain(self, code: int, text: str, headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        cfg = self.server.cfg
        if cfg.auth:
            want = "Basic " + base64.b64encode(f"{cfg.auth[0]}:{cfg.auth[1]}".encode()).decode()
            if self.headers.get("Authorization") != want:
                self._log(401, None)
                self._plain(401, "authentication required", {"WWW-Authenticate": 'Basic realm="fault"'})
                return False
        if cfg.token:
            q = parse_qs(urlsplit(self.path).query)
            if q.get("token") != [cfg.token]:
                self._log(403, None)
                self._plain(403, "token required")
                return False
        return True

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN, a real "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _sleep(self, seconds: float) -> None:
        self.server.stopped.wait(seconds)

    # ------------------------------------------------------------------ GET
    def do_HEAD(self) -> None:  # noqa: N802 - uv asks HEAD before range requests for metadata
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802 - http.server naming
        self.server.count()
        if not self._authorised():
            return
        cfg = self.server.cfg
        parts = urlsplit(self.path)
        rel = unquote(parts.path).lstrip("/")
        path = (cfg.root / rel).resolve()
        if cfg.root.resolve() not in (path, *path.parents):
            self._log(404, None)
            self._plain(404, "not found")
            return
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            self._log(404, None)
            self._plain(404, "not found")
            return
        if cfg.sign_files and path.suffix in (".whl", ".gz", ".zip"):
            if parse_qs(parts.query).get("X-Amz-Signature") != [cfg.sign_files]:
                self._log(403, None)
                self._plain(403, "signature does not match")
                return
        data = path.read_bytes()
        ctype = "text/html" if path.name.endswith(".html") else "application/octet-stream"
        if path.name == "index.html" and (cfg.token or cfg.sign_files):
            data = self._rewrite_links(data.decode()).encode()
        fault = self._fault()
        if fault and fault.kind == "reset":
            self._log(0, "reset")
            self._reset()
            return
        if fault and fault.kind == "stall" and fault.after < 0:
            self._log(0, "stall")
            self._sleep(fault.stall)
            self.close_connection = True
            return
        if fault and fault.kind == "status":
            self._log(fault.status, "status")
            self._plain(fault.status, f"injected {fault.status}", {"Retry-After": "0"})
            return
        if fault and fault.kind == "corrupt":
            data = bytes(b ^ 0x5A for b in data)
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        status = 200
        if rng and cfg.ranges:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and (m.group(1) or m.group(2)):
                if not m.group(1):  # a suffix: the last N bytes
                    start = max(0, len(data) - int(m.group(2)))
                else:
                    start = int(m.group(1))
                    end = min(end, int(m.group(2))) if m.group(2) else end
                if start >= len(data) or start > end:
                    self._log(416, None)
                    self._plain(416, "range not satisfiable", {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
        body = data[start:end + 1]
        self._log(status, fault.kind if fault else None)  # before answering: a test may look right after
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if cfg.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if head:
            return
        if fault and fault.kind in ("truncate", "stall"):
            self.wfile.write(body[: fault.after])
            self.wfile.flush()
            if fault.kind == "stall":
                self._sleep(fault.stall)
            self.close_connection = True
            return
        if fault and fault.kind == "throttle" and fault.rate:
            step = max(1, fault.rate // 20)
            for i in range(0, len(body), step):
                if self.server.stopped.is_set():
                    self.close_connection = True
                    return
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(step / fault.rate)
            return
        self.wfile.write(body)

    def _rewrite_links(self, page: str) -> str:
        """Links carry the secret the server wants: its token, or a URL signature."""
        cfg = self.server.cfg

        def add(m: re.Match[str]) -> str:
            href, frag = m.group(1), m.group(2) or ""
            q = []
            if cfg.token:
                q.append(f"token={cfg.token}")
            if cfg.sign_files and not href.endswith("/"):
                q.append(f"X-Amz-Expires=300&X-Amz-Signature={cfg.sign_files}")
            return f'href="{href}{"?" + "&".join(q) if q else ""}{frag}"'

        return re.sub(r'href="([^"#?]*)(#[^"]*)?"', add, page)


class FaultServer(ThreadingHTTPServer):
    """A misbehaving index on 127.0.0.1: use as a context manager."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, faults: list[Fault] | tuple[Fault, ...] = (), *, ranges: bool = True,
                 auth: tuple[str, str] | None = None, token: str | None = None, sign_files: str | None = None,
                 max_requests: int = 2000, lifetime: float = 120.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cfg = _Config(Path(root), list(faults), ranges, auth, token, sign_files)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.hits: list[Hit] = []
        self.requests = 0
        self.max_requests = max_requests
        self.lifetime = lifetime
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        """The simple index URL."""
        return self.base + "/simple"

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def count(self) -> None:
        with self.lock:
            self.requests += 1
            over = self.requests > self.max_requests
        if over:
            threading.Thread(target=self.stop, daemon=True).start()

    def gets(self, substring: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.method == "GET" and substring in h.path]

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        # The watchdog: whatever a test does, this server is gone after ``lifetime``.
        threading.Thread(target=lambda: self.stopped.wait(self.lifetime) or self.stop(), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dead_url() -> str:
    """The URL of an index that is down: a 127.0.0.1 port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with _INJECTED_LOCK:
        INJECTED["down"] += 1
    return f"http://127.0.0.1:{port}/simple"


def injected_total() -> int:
    with _INJECTED_LOCK:
        return sum(INJECTED.values())


# Other figures of the suite (CLI runs, tracebacks, secret searches, fuzz examples).
FIGURES: collections.Counter[str] = collections.Counter()


def observe(proc: Any) -> Any:
    """Count a finished CLI run (a CompletedProcess) and whether it printed a traceback."""
    out = (proc.stdout or "") + (proc.stderr or "")
    with _INJECTED_LOCK:
        FIGURES["cli_runs"] += 1
        FIGURES["tracebacks"] += int("Traceback (most recent call last)" in out)
    return proc


def figure(name: str, n: int = 1) -> None:
    with _INJECTED_LOCK:
        FIGURES[name] += n


@contextlib.contextmanager
def counting(name: str) -> Iterator[None]:
    """Write the faults injected and the figures counted inside the block to ``$OFFPKG_FAULT_TALLY``."""
    with _INJECTED_LOCK:
        before, fig_before = collections.Counter(INJECTED), collections.Counter(FIGURES)
    try:
        yield
    finally:
        path = os.environ.get("OFFPKG_FAULT_TALLY")
        if path:
            import json

            with _INJECTED_LOCK:
                delta = dict(INJECTED - before)
                figs = {k: FIGURES[k] - fig_before[k] for k in FIGURES}
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"module": name, "faults": delta, "figures": figs}, sort_keys=True) + "\n")
