"""The one network layer (offpkg.net): its public API against real servers on 127.0.0.1.

Range reads of a remote wheel, credentials on every request (``token@`` userinfo too),
a server that ignores Range refused instead of downloading everything, one page parser,
and one proxy setting honoured by both the index client and ``mirror test``."""

from __future__ import annotations

import http.server
import json
import random
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fault_servers import FaultServer
from offpkg import net
from offpkg.errors import NetworkError
from offpkg.net.index import IndexClient
from offpkg.net.pages import parse_page
from offpkg.net.ranged import RangeFile, RangesUnsupported
from pkgfactory import Dist, build_wheel, write_simple_index

PAYLOAD = 2 << 20  # incompressible: the wheel is about 2 MiB


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("netidx")
    files = root / "files"
    build_wheel(Dist("huge", "1.0", ["numpy>=1"]), files, payload=random.Random(7).randbytes(PAYLOAD))
    build_wheel(Dist("small", "2.0"), files)
    write_simple_index(files, root)
    return root


def _huge(srv: FaultServer, prefix: str = "") -> str:
    url = srv.base + "/files/huge-1.0-py3-none-any.whl"
    return url.replace("http://", f"http://{prefix}") if prefix else url


def test_read_range_returns_exact_bytes(repo: Path) -> None:
    data = (repo / "files/huge-1.0-py3-none-any.whl").read_bytes()
    with FaultServer(repo) as srv:
        assert net.read_range(_huge(srv), 100, 1100) == data[100:1100]
        assert net.read_range(_huge(srv), -50, 0) == data[-50:]
        ranges = [h.range for h in srv.gets("huge")]
    assert ranges == ["bytes=100-1099", "bytes=-50"]


def test_remote_wheel_member_without_downloading_it(repo: Path) -> None:
    size = (repo / "files/huge-1.0-py3-none-any.whl").stat().st_size
    with FaultServer(repo) as srv:
        rf = RangeFile(_huge(srv))
        with zipfile.ZipFile(rf) as zf:
            meta = zf.read("huge-1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: numpy>=1" in meta
    assert rf.size == size
    assert rf.fetched < size // 4, (rf.fetched, size)


def test_credentials_reach_every_request(repo: Path) -> None:
    """A ``token@`` URL (no password) is sent as basic auth by range reads, page reads and metadata reads."""
    with FaultServer(repo, auth=("s3cr3t-token", "")) as srv:
        url = _huge(srv, "s3cr3t-token@")
        assert len(net.read_range(url, 0, 10)) == 10
        files = net.get_page(srv.url.replace("http://", "http://s3cr3t-token@") + "/huge/")
        assert [f.filename for f in files] == ["huge-1.0-py3-none-any.whl"]
        meta = net.wheel_metadata(files[0])
        assert meta is not None and "Name: huge" in meta
        assert all(h.authorization for h in srv.hits), srv.hits
        with pytest.raises(NetworkError, match="HTTP 401"):
            net.get_page(srv.url + "/huge/")  # and none without


def test_server_without_ranges_is_refused_not_downloaded(repo: Path) -> None:
    with FaultServer(repo, ranges=False) as srv:
        with pytest.raises(RangesUnsupported, match="does not answer range requests"):
            net.read_range(_huge(srv), 0, 10)
        with pytest.raises(RangesUnsupported):
            RangeFile(_huge(srv))


def test_one_parser_for_html_and_json() -> None:
    html = b'<a href="../../f/x-1.0-py3-none-any.whl#sha256=' + b"a" * 64 + \
        b'" data-requires-python="&gt;=3.9" data-core-metadata="sha256=bb">x-1.0-py3-none-any.whl</a>'
    h = parse_page(html, "text/html", "https://idx.example/simple/x/")
    doc = {"files": [{"filename": "x-1.0-py3-none-any.whl", "url": "../../f/x-1.0-py3-none-any.whl",
                      "hashes": {"sha256": "A" * 64}, "requires-python": ">=3.9", "core-metadata": True}]}
    j = parse_page(json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json", "https://idx.example/simple/x/")
    for page in (h, j):
        (f,) = page
        assert (f.filename, f.url, f.sha256, f.requires_python, f.has_metadata) == \
            ("x-1.0-py3-none-any.whl", "https://idx.example/f/x-1.0-py3-none-any.whl", "a" * 64, ">=3.9", True)


class _Proxy(http.server.ThreadingHTTPServer):
    """A forward HTTP proxy on 127.0.0.1 that records the absolute URLs it is asked for and relays them."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                import urllib.request

                outer.seen.append(self.path)
                req = urllib.request.Request(self.path, headers={k: v for k, v in self.headers.items()
                                                                 if k.lower() not in ("host", "proxy-connection")})
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(req, timeout=10) as r:
                        body, status, headers = r.read(), r.status, r.headers
                except urllib.error.HTTPError as e:
                    body, status, headers = e.read(), e.code, e.headers
                self.send_response(status)
                for k in ("Content-Type", "Content-Range"):
                    if headers.get(k):
                        self.send_header(k, headers[k])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)

    def __enter__(self) -> _Proxy:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def test_index_client_and_mirror_test_share_the_proxy(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offpkg.mirrors.catalog import user_mirror
    from offpkg.mirrors.probe import probe

    with FaultServer(repo) as srv, _Proxy() as proxy:
        for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
        files = IndexClient([srv.url]).files("small")
        assert [f.filename for f in files] == ["small-2.0-py3-none-any.whl"]
        result = probe(user_mirror("local", srv.url), project="small", timeout=10)
        assert result.ok, result.error
        assert result.sample == "small-2.0-py3-none-any.whl"
    host = urlsplit(srv.url).netloc
    assert proxy.seen.count(f"http://{host}/simple/small/") == 2, proxy.seen
    assert f"http://{host}/files/small-2.0-py3-none-any.whl" in proxy.seen


def test_pip_proxy_is_honoured_like_pip(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with FaultServer(repo) as srv, _Proxy() as proxy:
        monkeypatch.setenv("PIP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        assert [f.filename for f in IndexClient([srv.url]).files("small")] == ["small-2.0-py3-none-any.whl"]
    assert proxy.seen == [srv.url + "/small/"]


def test_netrc_credentials_when_the_url_has_none(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultServer(repo, auth=("alice", "n3trc-pass")) as srv:
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login alice password n3trc-pass\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        files = IndexClient([srv.url]).files("small")
        assert [f.filename for f in files] == ["small-2.0-py3-none-any.whl"]
        assert srv.hits and all(h.authorization for h in srv.hits)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private CA (as a corporate proxy has) and a certificate for 127.0.0.1 signed by it (openssl)."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=offpkg test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "ext.cnf", "-out", "srv.pem")
    (d / "chain.pem").write_text((d / "srv.pem").read_text() + (d / "srv.key").read_text())
    return d / "ca.pem", d / "chain.pem"


def test_one_ca_bundle_for_index_client_and_mirror_test(repo: Path, tls: tuple[Path, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a TLS-inspecting proxy the CA comes from PIP_CERT; bundle's client and `mirror test` both use it."""
    import ssl

    from offpkg.mirrors.catalog import user_mirror
    from offpkg.mirrors.probe import probe

    ca, chain = tls
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    with FaultServer(repo) as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chain))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        url = srv.url.replace("http://", "https://")
        with pytest.raises(NetworkError):
            IndexClient([url], retries=0).files("small")  # certifi's CAs do not know ours
        bad = probe(user_mirror("tls", url), project="small", timeout=10)
        assert not bad.ok and "TLS" in (bad.error or "")
        monkeypatch.setenv("PIP_CERT", str(ca))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(chain))  # pip's variable wins, as documented
        assert [f.filename for f in IndexClient([url]).files("small")] == ["small-2.0-py3-none-any.whl"]
        good = probe(user_mirror("tls", url), project="small", timeout=10)
        assert good.ok, good.error


def test_importing_the_network_layer_loads_no_http_stack() -> None:
    """`offpkg verify` and `install` never talk to a network: `import offpkg.net` must not cost them requests."""
    import subprocess
    import sys

    code = "import sys, offpkg.net, offpkg.verify; print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_range_read_cut_short_is_a_network_error(repo: Path) -> None:
    from fault_servers import Fault

    with FaultServer(repo, [Fault("truncate", match="huge", after=100)]) as srv:
        with pytest.raises(NetworkError, match="connection closed after 100 of 5000 bytes|while reading"):
            net.read_range(_huge(srv), 0, 5000)


def test_request_retries_an_upload_with_the_same_body() -> None:
    """`net.request` (for uploads later): a 503 is retried, the body sent again whole, credentials included."""
    got: list[tuple[int, bytes, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = 503 if not got else 201
            got.append((code, body, self.headers.get("Authorization")))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://up-token@127.0.0.1:{srv.server_address[1]}/bundles/b.tar"
        r = net.request("PUT", url, data=b"x" * 1000, backoff=0.01)
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.status_code == 201
    assert [(c, len(b)) for c, b, _ in got] == [(503, 1000), (201, 1000)]
    assert all(a and a.startswith("Basic ") for _, _, a in got)


def test_wheel_metadata_uses_pep_658_where_the_index_offers_it(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    files = root / "files"
    wheel = build_wheel(Dist("meta", "1.0", ["six"]), files, payload=random.Random(1).randbytes(300_000))
    write_simple_index(files, root)
    with zipfile.ZipFile(wheel) as zf:
        (files / (wheel.name + ".metadata")).write_bytes(zf.read("meta-1.0.dist-info/METADATA"))
    page = root / "simple" / "meta" / "index.html"
    page.write_text(page.read_text().replace("<a href=", '<a data-core-metadata="true" href='))
    with FaultServer(root) as srv:
        (f,) = net.get_page(srv.url + "/meta/")
        assert f.has_metadata
        assert "Requires-Dist: six" in (net.wheel_metadata(f) or "")
        wheel_hits = [h for h in srv.hits if h.path.endswith(".whl")]
        assert [h.path for h in srv.hits if h.path.endswith(".metadata")] == [f"/files/{wheel.name}.metadata"]
    assert wheel_hits == []  # not one byte of the wheel itself
