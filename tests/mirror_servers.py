"""Real HTTP mirrors on 127.0.0.1 for the mirror tests.

Each :class:`MirrorServer` is a ThreadingHTTPServer in a daemon thread serving a
tiny PEP 503 index of one fake project, with one behaviour: good, slow (sleeps
before the first byte), failing (answers 503), broken (closes mid-response), stale
(misses the newest release) or lying (a file whose sha256 differs from the index).
Servers are bounded: they stop on leaving the ``with`` block, and on their own
after ``lifetime`` seconds whatever happens.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from dataclasses import dataclass, field

PROJECT = "offpkg-probe"
FILE_SIZE = 256 * 1024


def wheel_name(version: str) -> str:
    return f"offpkg_probe-{version}-py3-none-any.whl"


def file_bytes(name: str) -> bytes:
    """Deterministic content for a fake distribution file."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (FILE_SIZE // len(seed) + 1))[:FILE_SIZE]


@dataclass
class Behaviour:
    versions: tuple[str, ...] = ("1.0", "1.1")
    delay: float = 0.0  # seconds before the status line
    status: int | None = None  # answer every request with this status
    truncate_page: bool = False  # announce the whole page, send half, close
    wrong_hash: bool = False  # serve files whose bytes do not match the index
    hits: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]
    timeout = 10  # a stuck client never holds a server thread for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str, *, cut: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        b = self.server.behaviour
        b.hits.append(self.path)
        if b.delay:
            time.sleep(b.delay)
        if b.status:
            self._send(b.status, b"temporarily unavailable\n", "text/plain")
            return
        path = self.path.split("?", 1)[0]
        if path.rstrip("/") == f"/simple/{PROJECT}":
            links = []
            for v in b.versions:
                name = wheel_name(v)
                digest = hashlib.sha256(file_bytes(name)).hexdigest()
                links.append(f'<a href="/files/{name}#sha256={digest}">{name}</a><br/>')
            page = ("<!DOCTYPE html><html><body><h1>Links for offpkg-probe</h1>\n" + "\n".join(links) +
                    "\n" + "<!-- padding -->\n" * 200 + "</body></html>\n").encode()
            self._send(200, page, "text/html", cut=b.truncate_page)
            return
        if path.startswith("/files/"):
            name = path[len("/files/"):]
            if any(name == wheel_name(v) for v in b.versions):
                data = file_bytes(name)
                if b.wrong_hash:
                    data = b"x" + data[1:]
                self._send(200, data, "application/octet-stream")
                return
        self._send(404, b"not found\n", "text/plain")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


class MirrorServer:
    """``with MirrorServer(Behaviour(...)) as s: s.url`` -> http://127.0.0.1:PORT/simple"""

    def __init__(self, behaviour: Behaviour | None = None, *, lifetime: float = 60.0) -> None:
        self.behaviour = behaviour or Behaviour()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.behaviour = self.behaviour
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = threading.Lock()
        self._done = False

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def start(self) -> MirrorServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._stopped:
            if self._done:
                return
            self._done = True
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
