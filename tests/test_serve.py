"""Fleets: `offpkg serve` (PEP 503/691 with content negotiation) and `offpkg index` (static simple/).

Installs use plain pip and uv against 127.0.0.1, with isolated environments.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg, serve
from offpkg._subprocess import isolated_env
from offpkg.manifest import Manifest
from offpkg.fleet.simpleindex import JSON_TYPE, negotiate, project_html, project_json, projects, root_json

def offpkg_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "offpkg", *args]


def run_cmd(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(offpkg_cmd(args), env=env, capture_output=True, text=True, timeout=timeout)


def _env(base: Path, uv_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(uv_cache), CI="1", NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, index, session_uv_cache) -> Path:
    base = tmp_path_factory.mktemp("fleet")
    out = base / "b"
    proc = run_offpkg(["bundle", "alpha", "tokenlike", "compiled", "-i", index.url, "-o", str(out)],
                      _env(base, session_uv_cache))
    assert proc.returncode == 0, proc.stderr
    return out


class Server:
    """`offpkg serve` in a subprocess on a free port; stderr (the request log) collected."""

    def __init__(self, target: Path, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(offpkg_cmd(["serve", str(target), "--port", "0", *extra]), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:(\d+)/simple/)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"no URL in {line!r}: {self.proc.stderr.read()}")
        self.url, self.port = m.group(1), int(m.group(2))
        self.log: list[str] = []
        self._t = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self._t.start()

    def get(self, path: str, accept: str | None = None, method: str = "GET") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.putrequest(method, path, skip_accept_encoding=True)  # the path is sent exactly as given
        if accept is not None:
            conn.putheader("Accept", accept)
        conn.endheaders()
        resp = conn.getresponse()
        resp.body = resp.read()  # type: ignore[attr-defined]
        conn.close()
        return resp

    def stop(self) -> int:
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        self._t.join(timeout=5)
        return rc


def test_pages_follow_pep503_and_pep691(bundle: Path) -> None:
    m = Manifest.read(bundle)
    projs = projects(m)
    assert set(projs) >= {"alpha", "beta", "gamma", "tokenlike", "compiled", "pip"}
    alpha = projs["alpha"]
    pkg = replace(alpha.files[0], requires_python=">=3.8,<4")
    proj = replace(alpha, files=(pkg,))
    page = project_html(proj)
    assert f'href="../../wheels/alpha-1.0-py3-none-any.whl#sha256={pkg.sha256}"' in page
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    doc = json.loads(project_json(proj))
    assert doc["meta"]["api-version"] == "1.1" and doc["name"] == "alpha" and doc["versions"] == ["1.0"]
    f = doc["files"][0]
    assert f == {"filename": pkg.filename, "url": "../../wheels/alpha-1.0-py3-none-any.whl",
                 "hashes": {"sha256": pkg.sha256}, "size": pkg.size, "yanked": False, "requires-python": ">=3.8,<4"}
    assert {"name": "alpha"} in json.loads(root_json(projs))["projects"]
    # Content negotiation (PEP 691): what pip sends, browsers, and nothing acceptable.
    assert negotiate(f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01") == JSON_TYPE
    assert negotiate(None) == "text/html" and negotiate("*/*") == "text/html"
    assert negotiate("text/html;q=0.5, application/vnd.pypi.simple.latest+json") == JSON_TYPE
    assert negotiate("application/xml") is None and negotiate(f"{JSON_TYPE};q=0") is None


def test_serve_installs_with_plain_pip_and_uv(bundle: Path, tmp_path: Path, env: dict[str, str]) -> None:
    server = Server(bundle, env)
    try:
        iso = isolated_env(home=str(tmp_path))
        # Plain pip, hashes enforced from the bundle's own requirements.txt against the served index.
        py = tmp_path / "v" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
        pip = subprocess.run([str(py), "-m", "pip", "install", "--index-url", server.url, "--require-hashes",
                              "--only-binary", ":all:", "-r", str(bundle / "requirements.txt")],
                             env=iso, capture_output=True, text=True, timeout=300)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert server.url in pip.stdout  # "Looking in indexes: ..."
        out = subprocess.run([str(py), "-c", "import alpha, beta, gamma, tokenlike, compiled; print(beta.__version__)"],
                             capture_output=True, text=True)
        assert out.stdout.strip() == "1.1"
        # uv, by name only (resolution against the served index).
        uvpy = tmp_path / "u" / "bin" / "python"
        subprocess.run(["uv", "venv", "-q", "--no-config", str(tmp_path / "u")], env=iso, check=True)
        uv = subprocess.run(["uv", "pip", "install", "--no-config", "--python", str(uvpy), "--index-url", server.url,
                             "alpha"], env=dict(iso, UV_CACHE_DIR=str(tmp_path / "uvc")),
                            capture_output=True, text=True, timeout=300)
        assert uv.returncode == 0, uv.stdout + uv.stderr
        assert subprocess.run([str(uvpy), "-c", "import alpha, gamma"]).returncode == 0
        # The log shows each request on one line.
        log = "".join(server.log)
        assert '"GET /simple/alpha/ HTTP/1.1" 200' in log and '"GET /wheels/alpha-1.0-py3-none-any.whl' in log
    finally:
        assert server.stop() in (0, -15)


def test_serve_http_rules(bundle: Path, env: dict[str, str]) -> None:
    server = Server(bundle, env)
    try:
        r = server.get("/simple/alpha/", accept=JSON_TYPE)
        assert r.status == 200 and r.getheader("Content-Type") == JSON_TYPE and r.getheader("Vary") == "Accept"
        files = json.loads(r.body)["files"]
        # Relative URLs resolve to the served wheel, whose bytes match the advertised hash.
        import hashlib
        from urllib.parse import urljoin

        assert urljoin("/simple/alpha/", files[0]["url"]) == "/wheels/alpha-1.0-py3-none-any.whl"
        w = server.get(urljoin("/simple/alpha/", files[0]["url"]))

        assert w.status == 200 and hashlib.sha256(w.body).hexdigest() == files[0]["hashes"]["sha256"]
        assert int(w.getheader("Content-Length")) == files[0]["size"]
        h = server.get("/simple/alpha/")
        assert h.status == 200 and h.getheader("Content-Type").startswith("text/html") and b"#sha256=" in h.body
        assert server.get("/simple/", accept="application/xml").status == 406
        assert server.get("/simple/?format=" + JSON_TYPE).getheader("Content-Type") == JSON_TYPE
        # Non-normalised names redirect to the PEP 503 name; unknown projects are 404.
        red = server.get("/simple/Alpha")
        assert red.status == 301 and red.getheader("Location") == "/simple/alpha/"
        assert server.get("/simple/nope/").status == 404
        assert server.get("/").getheader("Location") == "/simple/"
        # Only files the manifest lists are served; nothing outside the bundle.
        req = server.get("/requirements.txt")
        assert req.status == 200 and b"--hash=sha256:" in req.body
        for evil in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/wheels/../../../etc/passwd",
                     "/wheels/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/simple/../../etc/passwd", "//etc/passwd",
                     "/wheels/", "/wheels", "/%00"):
            r = server.get(evil)
            assert r.status in (301, 400, 404), (evil, r.status)
            assert b"root:" not in r.body
            if r.status == 301:
                assert r.getheader("Location").startswith("/simple/")
        head = server.get("/wheels/alpha-1.0-py3-none-any.whl", method="HEAD")
        assert head.status == 200 and head.body == b""
        assert server.get("/wheels/alpha-1.0-py3-none-any.whl", method="DELETE").status == 501
        # Secrets in query strings never reach the log; control characters are escaped.
        server.get("/simple/?token=s3cr3tvalue")
        import socket

        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET /simple/\x1b[31mred HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 404")
    finally:
        server.stop()
    log = "".join(server.log)
    assert "s3cr3tvalue" not in log and "token=****" in log
    assert "\x1b" not in log and "GET /simple/\\x1b[31mred" in log


def test_serve_archive_and_refuse_a_bad_bundle(bundle: Path, tmp_path: Path, env: dict[str, str]) -> None:
    from offpkg.archive import write_tar

    tar = tmp_path / "b.tar"
    write_tar(bundle, tar)
    server = Server(tar, env)
    try:
        r = server.get("/simple/", accept=JSON_TYPE)
        assert r.status == 200 and {"name": "gamma"} in json.loads(r.body)["projects"]
    finally:
        server.stop()
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    (bad / "wheels" / "gamma-2.0-py3-none-any.whl").write_bytes(b"not a wheel")
    proc = run_cmd(["serve", str(bad), "--port", "0"], env, timeout=60)
    assert_clean_error(proc, 1, "failed verification", "gamma-2.0-py3-none-any.whl")
    # A port already in use: one clear error.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        busy = run_cmd(["serve", str(bundle), "--port", str(s.getsockname()[1])], env, timeout=60)
        assert_clean_error(busy, 10, "already in use", "--port 0")
    finally:
        s.close()


def test_index_writes_a_static_index_pip_can_use(bundle: Path, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    proc = run_cmd(["index", str(b), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["ok"] and "simple/alpha/index.html" in res["files"] and "simple/index.json" in res["files"]
    # Listed and hashed: the bundle still verifies, with offpkg and with coreutils.
    m = Manifest.read(b)
    assert {"simple/index.html", "simple/alpha/index.html", "simple/alpha/index.json"} <= {f.path for f in m.files}
    assert offpkg(["verify", str(b)], env).returncode == 0
    assert subprocess.run(["sha256sum", "-c", "--strict", "--quiet", "SHA256SUMS"], cwd=b).returncode == 0
    assert not list(b.glob(".offpkg-index-*"))
    # Any static web server: python's http.server on the bundle root, then plain pip.
    srv, base = serve(b)
    try:
        py = tmp_path / "v" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
        pip = subprocess.run([str(py), "-m", "pip", "install", "--index-url", f"{base}/simple", "alpha"],
                             env=isolated_env(home=str(tmp_path)), capture_output=True, text=True, timeout=300)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert subprocess.run([str(py), "-c", "import alpha, beta, gamma"]).returncode == 0
    finally:
        srv.shutdown()
    # Running it again regenerates the same files, also after an interrupted run.
    before = (b / "offpkg.json").read_bytes()
    (b / ".offpkg-index-new-x").mkdir()
    (b / "SHA256SUMS").write_text((b / "SHA256SUMS").read_text().replace("simple/index.html", "simple/gone.html"))
    again = run_cmd(["index", str(b)], env)
    assert again.returncode == 0, again.stderr
    assert (b / "offpkg.json").read_bytes() == before
    assert offpkg(["verify", str(b)], env).returncode == 0 and not (b / ".offpkg-index-new-x").exists()


def test_index_archives_and_bad_input(bundle: Path, tmp_path: Path, env: dict[str, str], offpkg) -> None:
    from offpkg.archive import hash_members, write_tar

    tar = tmp_path / "b.tar"
    write_tar(bundle, tar)
    plain = run_cmd(["index", str(tar)], env)
    assert_clean_error(plain, 2, "archive", "-o")
    out = tmp_path / "indexed.tar.zst"
    proc = run_cmd(["index", str(tar), "-o", str(out)], env)
    assert proc.returncode == 0, proc.stderr
    assert "simple/compiled/index.html" in hash_members(out)
    assert offpkg(["verify", str(out)], env).returncode == 0
    # The source bundle is untouched.
    assert not (bundle / "simple").exists() and offpkg(["verify", str(bundle)], env).returncode == 0
    assert_clean_error(run_cmd(["index", str(tar), "-o", str(out)], env), 9, "already exists")
    # A corrupt bundle is not indexed, and nothing in it changes.
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    (bad / "wheels" / "gamma-2.0-py3-none-any.whl").write_bytes(b"x")
    before = (bad / "offpkg.json").read_bytes()
    assert_clean_error(run_cmd(["index", str(bad)], env), 1, "failed verification")
    assert (bad / "offpkg.json").read_bytes() == before and not (bad / "simple").exists()
    assert_clean_error(run_cmd(["index", str(tmp_path / "missing")], env), 3, "does not exist")


def test_completion(env: dict[str, str]) -> None:
    script = run_cmd(["completion", "bash"], env)
    assert script.returncode == 0 and "_OFFPKG_COMPLETE" in script.stdout
    for shell, needle in (("zsh", "compdef"), ("fish", "complete")):
        out = run_cmd(["completion", shell], env)
        assert out.returncode == 0 and needle in out.stdout
    done = subprocess.run(offpkg_cmd([]), env=dict(env, _OFFPKG_COMPLETE="bash_complete", COMP_WORDS="offpkg bun",
                                                   COMP_CWORD="1"), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["plain,bundle"]
    opts = subprocess.run(offpkg_cmd([]), env=dict(env, _OFFPKG_COMPLETE="bash_complete",
                                                   COMP_WORDS="offpkg serve --po", COMP_CWORD="2"),
                          capture_output=True, text=True)
    assert "plain,--port" in opts.stdout.split()
    js = run_cmd(["completion", "fish", "--json"], env)
    assert json.loads(js.stdout)["shell"] == "fish"
    nosh = run_cmd(["completion"], dict(env, SHELL="/bin/tcsh"))
    assert_clean_error(nosh, 2, "bash|zsh|fish")
