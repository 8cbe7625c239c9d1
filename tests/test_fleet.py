"""Fleet: push/pull bundles through a real OCI registry (Debian's docker-registry) and publish wheels to
a real pypiserver, all on 127.0.0.1; with authentication, faults (a registry that stops mid-transfer, a
corrupted blob) and a hostile artifact."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import assert_clean_error, serve
from pkgfactory import Dist, build_wheel, write_simple_index
from registry_servers import PyPIServer, Registry, free_port, need

PASSWORD = "reg-S3CRET-pass-9"


@pytest.fixture
def registry(tmp_path: Path):
    r = Registry(tmp_path / "registry").start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, index, session_uv_cache):
    """Two bundles of the suite's index that differ in one package (beta 1.1 / beta 1.0)."""
    from helpers import run_offpkg

    base = tmp_path_factory.mktemp("fleet-bundles")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), CI="1")
    out = {}
    for name, reqs in (("one", ["alpha"]), ("two", ["alpha", "beta==1.0"])):
        proc = run_offpkg(["bundle", *reqs, "-i", index.url, "-o", str(base / name), "--no-tools"], env)
        assert proc.returncode == 0, proc.stderr
        out[name] = base / name
    return out


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_push_twice_pull_verify_install_offline(offpkg, env, registry, bundles, tmp_path, offline) -> None:
    ref = f"oci://{registry.host}/ml/stack:1"
    first = _json(offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env))
    assert first["uploaded_blobs"] == first["blobs"] and first["manifest_uploaded"]
    again = _json(offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env))
    assert again["uploaded_blobs"] == 0 and again["uploaded_bytes"] == 0 and not again["manifest_uploaded"]
    assert again["digest"] == first["digest"]
    pulled = _json(offpkg(["pull", ref, "-o", str(tmp_path / "pulled"), "--plain-http", "--json"], env))
    assert pulled["digest"] == first["digest"]
    # The pulled bundle is the pushed one, file for file.
    for p in bundles["one"].rglob("*"):
        if p.is_file():
            assert (tmp_path / "pulled" / p.relative_to(bundles["one"])).read_bytes() == p.read_bytes()
    assert not (tmp_path / "pulled.offpkg-pull").exists()
    proc = offpkg(["install", str(tmp_path / "pulled"), "--venv", str(tmp_path / "v"), "--json"], env, offline=offline)
    assert _json(proc)["ok"]
    check = subprocess.run([str(tmp_path / "v" / "bin" / "python"), "-c", "import alpha, beta, gamma"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_install_straight_from_the_registry(offpkg, env, registry, bundles, tmp_path) -> None:
    ref = f"oci://{registry.host}/ml/stack:direct"
    _json(offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env))
    res = _json(offpkg(["install", ref, "--plain-http", "--venv", str(tmp_path / "v"), "--json"], env))
    assert res["ok"]
    assert subprocess.run([str(tmp_path / "v" / "bin" / "python"), "-c", "import alpha"]).returncode == 0


def test_second_push_uploads_only_what_changed(offpkg, env, registry, bundles) -> None:
    one = _json(offpkg(["push", str(bundles["one"]), f"oci://{registry.host}/ml/stack:1", "--plain-http",
                        "--json"], env))
    two = _json(offpkg(["push", str(bundles["two"]), f"oci://{registry.host}/ml/stack:2", "--plain-http",
                        "--json"], env))
    m1 = json.loads((bundles["one"] / "offpkg.json").read_text())
    m2 = json.loads((bundles["two"] / "offpkg.json").read_text())
    shared = {p["sha256"] for p in m1["packages"]} & {p["sha256"] for p in m2["packages"]}
    assert len(shared) == 2  # alpha and gamma; beta changed
    beta = next(p for p in m2["packages"] if p["name"] == "beta")
    assert 0 < two["uploaded_blobs"] < two["blobs"]
    assert two["uploaded_bytes"] < two["total_bytes"]
    assert two["uploaded_bytes"] >= beta["size"]
    # Nothing of the shared wheels went up again.
    assert two["uploaded_bytes"] <= two["total_bytes"] - sum(p["size"] for p in m2["packages"]
                                                             if p["sha256"] in shared)
    assert one["uploaded_blobs"] == one["blobs"]


def test_registry_with_htpasswd_auth(offpkg, env, bundles, tmp_path) -> None:
    need("htpasswd")
    pw_file = tmp_path / "htpasswd"
    entry = subprocess.run(["htpasswd", "-Bbn", "ci", PASSWORD], capture_output=True, text=True, check=True).stdout
    pw_file.write_text(entry)
    reg = Registry(tmp_path / "authreg", htpasswd=pw_file).start()
    try:
        ref = f"oci://{reg.host}/ml/stack:auth"
        refused = offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env)
        assert_clean_error(refused, 5, "refused access")
        assert json.loads(refused.stdout)["error"]["exit_code"] == 5
        with_env = dict(env, OFFPKG_REGISTRY_USERNAME="ci", OFFPKG_REGISTRY_PASSWORD=PASSWORD)
        pushed = offpkg(["-vv", "push", str(bundles["one"]), ref, "--plain-http", "--json"], with_env)
        _json(pushed)
        # The Docker config works as well (what `docker login` writes).
        home = Path(env["HOME"])
        (home / ".docker").mkdir(exist_ok=True)
        (home / ".docker" / "config.json").write_text(json.dumps(
            {"auths": {reg.host: {"auth": base64.b64encode(f"ci:{PASSWORD}".encode()).decode()}}}))
        pulled = offpkg(["-vv", "pull", ref, "-o", str(tmp_path / "p"), "--plain-http", "--json"], env)
        _json(pulled)
        for proc in (refused, pushed, pulled):
            assert PASSWORD not in proc.stdout + proc.stderr
            assert base64.b64encode(f"ci:{PASSWORD}".encode()).decode() not in proc.stdout + proc.stderr
        for root in (tmp_path / "p", Path(env["OFFPKG_CACHE_DIR"]), reg.storage):
            for f in root.rglob("*") if root.exists() else ():
                if f.is_file() and f.stat().st_size < (8 << 20):
                    assert PASSWORD.encode() not in f.read_bytes(), f
    finally:
        reg.stop()


class _CuttingProxy:
    """A TCP proxy to the registry that breaks one transfer after ``after`` bytes in ``direction``
    ('up': client to registry, 'down': registry to client), calling ``on_cut`` first."""

    def __init__(self, target_port: int, direction: str, after: int, on_cut=None) -> None:
        self.target_port, self.direction, self.after, self.on_cut = target_port, direction, after, on_cut
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, direction: str) -> None:
        n = 0
        try:
            while data := a.recv(65536):
                if direction == self.direction and not self.cut.is_set() and n + len(data) > self.after:
                    self.cut.set()
                    if self.on_cut:
                        self.on_cut()
                    break
                b.sendall(data)
                n += len(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def big_bundle(tmp_path_factory, session_uv_cache):
    """A bundle with a 24 MiB wheel, for transfers that can be broken off half-way."""
    from helpers import run_offpkg

    base = tmp_path_factory.mktemp("big")
    files = base / "files"
    build_wheel(Dist("bigwheel", "1.0"), files, payload=os.urandom(24 << 20))
    build_wheel(Dist("smallwheel", "1.0", ["bigwheel"]), files)
    write_simple_index(files, base)
    server, url = serve(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), CI="1")
    proc = run_offpkg(["bundle", "smallwheel", "-i", f"{url}/simple", "-o", str(base / "b"), "--no-tools"], env)
    server.shutdown()
    assert proc.returncode == 0, proc.stderr
    return base / "b"


def test_registry_stops_mid_push_then_resumes(offpkg, env, big_bundle, tmp_path) -> None:
    reg = Registry(tmp_path / "reg").start()
    proxy = _CuttingProxy(reg.port, "up", 8 << 20, on_cut=reg.stop)
    try:
        ref_via_proxy = f"oci://127.0.0.1:{proxy.port}/ml/big:1"
        broken = offpkg(["push", str(big_bundle), ref_via_proxy, "--plain-http", "--json"], env)
        assert broken.returncode == 5, broken.stdout + broken.stderr
        assert "Traceback" not in broken.stderr and json.loads(broken.stdout)["error"]["exit_code"] == 5
        reg.start()  # the same storage and port: what was uploaded before the stop is still there
        done = _json(offpkg(["push", str(big_bundle), f"oci://{reg.host}/ml/big:1", "--plain-http", "--json"], env))
        assert 0 < done["uploaded_blobs"] < done["blobs"]  # the blobs that made it before the stop were not sent again
        _json(offpkg(["pull", f"oci://{reg.host}/ml/big:1", "-o", str(tmp_path / "p"), "--plain-http", "--json"],
                     env))
    finally:
        proxy.close()
        reg.stop()


def test_pull_broken_off_resumes(offpkg, env, registry, big_bundle, tmp_path) -> None:
    ref = f"oci://{registry.host}/ml/big:1"
    _json(offpkg(["push", str(big_bundle), ref, "--plain-http", "--json"], env))
    proxy = _CuttingProxy(registry.port, "down", 10 << 20)
    try:
        out = tmp_path / "p"
        broken = offpkg(["pull", f"oci://127.0.0.1:{proxy.port}/ml/big:1", "-o", str(out), "--plain-http", "--json"],
                        env)
        assert_clean_error(broken, 5, "broke off", "run the same command again")
        assert not out.exists()
        done = _json(offpkg(["pull", ref, "-o", str(out), "--plain-http", "--json"], env))
        assert done["resumed"] == 1
        big = next(p for p in json.loads((big_bundle / "offpkg.json").read_text())["packages"]
                   if p["name"] == "bigwheel")
        assert done["downloaded_bytes"] < big["size"]  # the bytes before the break were not fetched again
        assert (out / big["path"]).read_bytes() == (big_bundle / big["path"]).read_bytes()
    finally:
        proxy.close()


def test_corrupted_blob_in_storage_is_refused(offpkg, env, registry, bundles, tmp_path) -> None:
    ref = f"oci://{registry.host}/ml/stack:1"
    _json(offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env))
    m = json.loads((bundles["one"] / "offpkg.json").read_text())
    victim = next(p for p in m["packages"] if p["name"] == "gamma")
    blob = registry.blob_file("sha256:" + victim["sha256"])
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    proc = offpkg(["pull", ref, "-o", str(tmp_path / "p"), "--plain-http", "--json"], env)
    assert_clean_error(proc, 1, "does not match its digest")
    assert not (tmp_path / "p").exists()


def test_hostile_artifact_paths_are_refused(offpkg, env, registry, bundles, tmp_path) -> None:
    """A registry (or whoever writes to it) that names a layer ../../x or adds a file the bundle does not list."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from offpkg.fleet.oci import Reference
    from offpkg.fleet.oci import Registry as Client

    ref = f"oci://{registry.host}/ml/stack:1"
    _json(offpkg(["push", str(bundles["one"]), ref, "--plain-http", "--json"], env))
    client = Client(Reference.parse(ref), plain_http=True)
    manifest, _ = client.get_manifest("1")
    for title, expect in (("../../escaped.txt", "unsafe path"), ("wheels/extra-1.0-py3-none-any.whl", "does not list")):
        evil = json.loads(json.dumps(manifest))
        evil["layers"].append(dict(evil["layers"][0], annotations={"org.opencontainers.image.title": title}))
        client.put_manifest(json.dumps(evil).encode(), "evil")
        proc = offpkg(["pull", f"oci://{registry.host}/ml/stack:evil", "-o", str(tmp_path / "p"), "--plain-http",
                       "--json"], env)
        assert_clean_error(proc, 1, expect)
        assert not (tmp_path / "p").exists() and not (tmp_path.parent / "escaped.txt").exists()


# ---------------------------------------------------------------- publish to pypiserver

@pytest.fixture
def pypiserver(tmp_path: Path):
    pytest.importorskip("pypiserver") if not os.environ.get("CI") else None
    s = PyPIServer(tmp_path / "pypi").start()
    yield s
    s.stop()


def test_publish_then_plain_pip_installs(offpkg, env, pypiserver, bundles, tmp_path, session_uv_cache) -> None:
    first = _json(offpkg(["publish", str(bundles["one"]), "--to", pypiserver.url, "--json"], env))
    assert sorted(first["uploaded"]) == sorted(p.name for p in (bundles["one"] / "wheels").iterdir())
    again = _json(offpkg(["publish", str(bundles["one"]), "--to", pypiserver.url, "--json"], env))
    assert again["uploaded"] == [] and len(again["skipped"]) == len(first["uploaded"])
    venv = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--index-url",
                          pypiserver.url + "simple/", "--require-hashes", "-r",
                          str(bundles["one"] / "requirements.txt")], env=env, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import alpha, beta, gamma"]).returncode == 0


def test_publish_with_a_password(offpkg, env, bundles, tmp_path) -> None:
    need("htpasswd")
    pw = tmp_path / "pypi.htpasswd"
    subprocess.run(["htpasswd", "-bc", str(pw), "ci", PASSWORD], check=True, capture_output=True)
    s = PyPIServer(tmp_path / "authpypi", htpasswd=pw).start()
    try:
        refused = offpkg(["publish", str(bundles["one"]), "--to", s.url, "--json"], env)
        assert_clean_error(refused, 5, "uploading to")
        ok = offpkg(["publish", str(bundles["one"]), "--to", s.url, "--json"],
                    dict(env, OFFPKG_PUBLISH_USERNAME="ci", OFFPKG_PUBLISH_PASSWORD=PASSWORD))
        assert len(_json(ok)["uploaded"]) == 3
        for proc in (refused, ok):
            assert PASSWORD not in proc.stdout + proc.stderr
    finally:
        s.stop()


def test_bad_references_are_clear_errors(offpkg, env, bundles) -> None:
    proc = offpkg(["push", str(bundles["one"]), "docker://nope", "--json"], env)
    assert_clean_error(proc, 2, "is not an OCI reference")
    port = free_port()
    proc = offpkg(["pull", f"oci://127.0.0.1:{port}/x/y:1", "-o", "/tmp/never", "--plain-http", "--json"], env)
    assert_clean_error(proc, 5, "cannot reach the registry")
