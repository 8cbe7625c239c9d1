"""The index page cache (warm bundles): HTTP freshness and revalidation against a real server on 127.0.0.1,
and never a secret or an error answer on disk."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from offpkg.net.index import IndexClient


class _Server:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str | None]] = []
        self.mode = {"cc": "max-age=600", "etag": '"v1"', "link": "https://files.example/x/alpha-1.0-py3-none-any.whl"}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.hits.append((self.path, self.headers.get("If-None-Match")))
                m = outer.mode
                if "missing" in self.path:
                    self.send_response(404)
                    self.end_headers()
                    return
                if m["etag"] and self.headers.get("If-None-Match") == m["etag"]:
                    self.send_response(304)
                    self.send_header("Cache-Control", m["cc"])
                    self.end_headers()
                    return
                body = json.dumps({"meta": {"api-version": "1.0"}, "name": "alpha", "files": [
                    {"filename": "alpha-1.0-py3-none-any.whl", "url": m["link"], "hashes": {"sha256": "a" * 64}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                if m["cc"]:
                    self.send_header("Cache-Control", m["cc"])
                if m["etag"]:
                    self.send_header("ETag", m["etag"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}/simple/"


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


def _client(cache: Path, url: str) -> IndexClient:
    return IndexClient([url], page_cache=cache, retries=0)


def _stored(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir()] if cache.exists() else []


def test_fresh_pages_are_reused_and_stale_ones_revalidated(server, tmp_path) -> None:
    cache = tmp_path / "index"
    a = _client(cache, server.base).files("alpha")
    b = _client(cache, server.base).files("alpha")
    assert a == b and len(a) == 1 and len(server.hits) == 1  # fresh (max-age=600): no second request
    server.mode["cc"] = "max-age=0"
    for p in _stored(cache):
        p.unlink()
    server.hits.clear()
    a = _client(cache, server.base).files("alpha")
    b = _client(cache, server.base).files("alpha")
    assert a == b and len(server.hits) == 2 and server.hits[1][1] == '"v1"'  # revalidated, 304 reused
    server.mode.update(etag='"v2"', link="https://files.example/y/alpha-1.0-py3-none-any.whl")
    assert _client(cache, server.base).files("alpha")[0].url.endswith("/y/alpha-1.0-py3-none-any.whl")


@pytest.mark.parametrize("cc", ["no-store", "private, max-age=600"])
def test_uncacheable_answers_are_not_stored(server, tmp_path, cc) -> None:
    server.mode["cc"] = cc
    _client(tmp_path / "index", server.base).files("alpha")
    assert not _stored(tmp_path / "index")


def test_secrets_errors_and_damage(server, tmp_path) -> None:
    cache = tmp_path / "index"
    # A signed link in the page, a token in the URL, credentials in the URL: never stored.
    server.mode["link"] = "https://files.example/x/alpha-1.0-py3-none-any.whl?X-Amz-Signature=SEKRIT"
    _client(cache, server.base).files("alpha")
    server.mode["link"] = "https://files.example/x/alpha-1.0-py3-none-any.whl"
    _client(cache, server.base + "?token=SEKRIT").files("alpha")
    _client(cache, server.base.replace("http://", "http://tok:SEKRIT@")).files("alpha")
    assert not _stored(cache)
    # A 404 is not cached; a good page is.
    _client(cache, server.base).files("missing")
    assert not _stored(cache)
    _client(cache, server.base).files("alpha")
    assert len(_stored(cache)) == 1
    # A torn or corrupt cache file is fetched again, not trusted.
    f = _stored(cache)[0]
    f.write_bytes(f.read_bytes()[:-5])
    server.hits.clear()
    assert _client(cache, server.base).files("alpha")[0].filename.startswith("alpha") and len(server.hits) == 1
    f.write_bytes(b'{"bad json\n')
    server.hits.clear()
    assert _client(cache, server.base).files("alpha") and len(server.hits) == 1
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert b"SEKRIT" not in p.read_bytes(), p
