"""Signed bundles: real ``ssh-keygen`` keys, real bundles from the loopback index, plain OpenSSH as a referee.

A "resealed" bundle is the attacker's bundle: a wheel edited and every hash that
covers it (manifest, requirements.txt, pylock.toml, SHA256SUMS) rewritten to match.
It is consistent, so ``verify`` without a trust anchor accepts it (it proves
integrity against accidents only); with ``--trust`` it is refused, because the
builder's signature no longer matches the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_offpkg
from offpkg.archive import payload_offset
from offpkg.selfextract import check_header, read_header
from pkgfactory import Dist, build_wheel

# Under CI a missing ssh-keygen is a failure (.ci/setup-system.sh installs it), never a skip.
pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None and not os.environ.get("CI"),
                                reason="needs OpenSSH's ssh-keygen")

EPOCH = "1700000000"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _base_env(base: Path, uv_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "PYTHONPATH", "SSH_"))}
    env.update(HOME=str(base), XDG_CONFIG_HOME=str(base / ".config"), PIP_CONFIG_FILE=os.devnull,
               OFFPKG_CACHE_DIR=str(base / "cache"), UV_CACHE_DIR=str(uv_cache), CI="1", NO_COLOR="1",
               SOURCE_DATE_EPOCH=EPOCH)
    return env


class Keys:
    def __init__(self, root: Path) -> None:
        self.root = root
        for who in ("builder", "reviewer", "stranger"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{who}@site", "-f",
                            str(root / who)], check=True, capture_output=True)
        self.builder, self.reviewer, self.stranger = (root / w for w in ("builder", "reviewer", "stranger"))
        self.allow_builder = self.allowed("builder")
        self.allow_reviewer = self.allowed("reviewer")

    def allowed(self, *who: str) -> Path:
        path = self.root / ("allowed-" + "-".join(who))
        path.write_text("".join(f"{w}@site namespaces=\"offpkg\" {(self.root / (w + '.pub')).read_text().strip()}\n"
                                for w in who))
        return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, index, session_uv_cache, keys: Keys) -> dict[str, Path]:
    """alpha (-> beta -> gamma) as a signed directory, .tar and .sh, and unsigned .tar, .sh and .tar.zst."""
    base = tmp_path_factory.mktemp("trust")
    env = _base_env(base, session_uv_cache)
    out: dict[str, Path] = {}
    for name, sign in (("dir", True), ("signed.tar", True), ("plain.tar", False), ("signed.sh", True),
                       ("plain.sh", False), ("plain.tar.zst", False)):
        path = base / name / ("bundle" if name == "dir" else "stack." + name.split(".", 1)[1])
        argv = ["bundle", "alpha", "-i", index.url, "-o", str(path)] + (["--sign", str(keys.builder)] if sign else [])
        proc = run_offpkg(argv, env)
        assert proc.returncode == 0, proc.stderr
        out[name] = path
    return out


@pytest.fixture
def bundle_dir(built, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(built["dir"], dst)
    return dst


def _verify(path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return run_offpkg(["verify", str(path), *extra], env)


def reseal(root: Path) -> None:
    """What an attacker with write access does: make every hash agree with the files again."""
    m = json.loads((root / "offpkg.json").read_text())
    for entry in m["packages"] + m["files"]:
        p = root / entry["path"]
        old, new = entry["sha256"], _sha(p)
        if old != new:
            for text in ("requirements.txt", "pylock.toml"):
                t = root / text
                t.write_text(t.read_text().replace(old, new))
    for entry in m["packages"] + m["files"]:  # the locks changed too: hash everything again
        p = root / entry["path"]
        entry["sha256"], entry["size"] = _sha(p), p.stat().st_size
    (root / "offpkg.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    paths = sorted([e["path"] for e in m["packages"] + m["files"]] + ["offpkg.json"])
    (root / "SHA256SUMS").write_text("".join(f"{_sha(root / p)}  {p}\n" for p in paths))


def tamper_wheel(root: Path, marker: Path) -> None:
    """Replace gamma's wheel by one (same name) whose module writes ``marker`` when imported."""
    whl = next((root / "wheels").glob("gamma-*.whl"))
    tmp = root.parent / "evil"
    build_wheel(Dist("gamma", "2.0"), tmp)
    src = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(whl, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "gamma/__init__.py":
                data += f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
            zout.writestr(item, data)
    shutil.rmtree(tmp)


def test_signed_directory_is_trusted_and_plain_openssh_agrees(bundle_dir: Path, keys: Keys, env) -> None:
    sig = bundle_dir / "offpkg.json.sig"
    assert sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    proc = _verify(bundle_dir, env, "--trust", str(keys.allow_builder), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["trust"]["trusted"] is True
    assert [s["principal"] for s in doc["trust"]["signatures"]] == ["builder@site"]
    # The digest to record out of band: offpkg.json's for a directory.
    assert doc["sha256"] == _sha(bundle_dir / "offpkg.json") and doc["sha256_of"] == "offpkg.json"
    human = _verify(bundle_dir, env, "--trust", str(keys.allow_builder))
    assert f"sha256 (offpkg.json): {doc['sha256']}" in human.stdout
    assert "signed by builder@site (trusted)" in human.stdout
    # Plain OpenSSH accepts the same file, with no offpkg involved.
    with open(bundle_dir / "offpkg.json", "rb") as m:
        plain = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(keys.allow_builder), "-I", "builder@site",
                                "-n", "offpkg", "-s", str(sig)], stdin=m, capture_output=True, text=True)
    assert plain.returncode == 0 and "Good \"offpkg\" signature for builder@site" in plain.stdout, plain.stderr


def test_unsigned_refused_only_with_a_trust_anchor(bundle_dir: Path, keys: Keys, env, tmp_path: Path) -> None:
    (bundle_dir / "offpkg.json.sig").unlink()
    assert _verify(bundle_dir, env).returncode == 0
    proc = _verify(bundle_dir, env, "--trust", str(keys.allow_builder))
    assert_clean_error(proc, 1, "not signed by a trusted key", "unsigned", "builder@site", str(keys.allow_builder))
    # OFFPKG_TRUST and the `trust` config key make it mandatory without the option.
    assert_clean_error(_verify(bundle_dir, dict(env, OFFPKG_TRUST=str(keys.allow_builder))), 1, "unsigned")
    cfg = tmp_path / "offpkg.toml"
    cfg.write_text(f"trust = {str(keys.allow_builder)!r}\n")
    assert_clean_error(_verify(bundle_dir, dict(env, OFFPKG_CONFIG=str(cfg))), 1, "not signed by a trusted key")
    j = run_offpkg(["verify", str(bundle_dir), "--trust", str(keys.allow_builder), "--json"], env)
    assert j.returncode == 1 and json.loads(j.stdout)["trust"]["trusted"] is False
    # A trust anchor that does not exist is bad input, not a pass.
    assert_clean_error(_verify(bundle_dir, env, "--trust", str(tmp_path / "nope")), 3, "does not exist")


def test_unknown_key_refused(bundle_dir: Path, keys: Keys, env) -> None:
    (bundle_dir / "offpkg.json.sig").unlink()
    assert run_offpkg(["sign", str(bundle_dir), "--key", str(keys.stranger)], env).returncode == 0
    proc = _verify(bundle_dir, env, "--trust", str(keys.allow_builder))
    assert_clean_error(proc, 1, "not signed by a trusted key", "not in the trust anchor")


def test_resealed_bundle_refused_with_trust_accepted_without(bundle_dir: Path, keys: Keys, env, tmp_path: Path,
                                                             offline) -> None:
    marker = tmp_path / "MARKER"
    tamper_wheel(bundle_dir, marker)
    reseal(bundle_dir)
    # Consistent again, so verify without an anchor passes it: integrity is not authenticity.
    # It says the stale signature no longer matches, which an attacker avoids by deleting it.
    plain = _verify(bundle_dir, env)
    assert plain.returncode == 0 and "changed after it was signed" in plain.stderr, plain.stdout + plain.stderr
    proc = _verify(bundle_dir, env, "--trust", str(keys.allow_builder))
    assert_clean_error(proc, 1, "does not match offpkg.json", "changed after it was signed")
    venv = tmp_path / "venv"
    inst = run_offpkg(["install", str(bundle_dir), "--venv", str(venv), "--trust", str(keys.allow_builder)], env,
                      offline=offline)
    assert_clean_error(inst, 1, "not signed by a trusted key")
    assert not venv.exists() and not marker.exists()
    # install.sh on a host without offpkg refuses it the same way, before running anything.
    sh = subprocess.run(["sh", str(bundle_dir / "install.sh"), "--trust", str(keys.allow_builder), str(venv)],
                        env=env, capture_output=True, text=True)
    assert sh.returncode == 1 and "not signed by a trusted key" in sh.stderr, sh.stderr
    assert not venv.exists() and not marker.exists()


def test_two_signatures_builder_and_reviewer(bundle_dir: Path, keys: Keys, env) -> None:
    before = (bundle_dir / "offpkg.json").read_bytes()
    proc = run_offpkg(["sign", str(bundle_dir), "--key", str(keys.reviewer), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["signatures"] == 2
    assert (bundle_dir / "offpkg.json").read_bytes() == before  # signing changes no file of the bundle
    assert (bundle_dir / "offpkg.json.sig").read_text().count("BEGIN SSH SIGNATURE") == 2
    for allowed, who in ((keys.allow_builder, "builder@site"), (keys.allow_reviewer, "reviewer@site")):
        doc = json.loads(_verify(bundle_dir, env, "--trust", str(allowed), "--json").stdout)
        assert doc["ok"] and [s["principal"] for s in doc["trust"]["signatures"] if s["status"] == "trusted"] == [who]
    # The first signature is the builder's: plain ssh-keygen still accepts the file.
    with open(bundle_dir / "offpkg.json", "rb") as m:
        assert subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(keys.allow_builder), "-I", "builder@site",
                               "-n", "offpkg", "-s", str(bundle_dir / "offpkg.json.sig")], stdin=m,
                              capture_output=True).returncode == 0
    # Signing again with the same key adds nothing.
    again = run_offpkg(["sign", str(bundle_dir), "--key", str(keys.reviewer)], env)
    assert again.returncode == 0 and "already signed" in again.stdout
    assert (bundle_dir / "offpkg.json.sig").read_text().count("BEGIN SSH SIGNATURE") == 2


def test_signing_with_ssh_agent(bundle_dir: Path, keys: Keys, env, tmp_path: Path) -> None:
    if not shutil.which("ssh-agent"):
        pytest.skip("no ssh-agent")
    (bundle_dir / "offpkg.json.sig").unlink()
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        aenv = dict(env, SSH_AUTH_SOCK=str(sock))
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        subprocess.run(["ssh-add", "-q", str(keys.reviewer)], env=aenv, check=True, capture_output=True)
        # Only the public key is named: the agent signs.
        proc = run_offpkg(["sign", str(bundle_dir), "--key", str(keys.reviewer) + ".pub"], aenv)
        assert proc.returncode == 0, proc.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    assert _verify(bundle_dir, env, "--trust", str(keys.allow_reviewer)).returncode == 0


def test_tar_signed_later_is_byte_identical_and_trusted(built, keys: Keys, env, tmp_path: Path) -> None:
    plain = tmp_path / "stack.tar"
    shutil.copy(built["plain.tar"], plain)
    assert _verify(plain, env, "--trust", str(keys.allow_builder)).returncode == 1
    proc = run_offpkg(["sign", str(plain), "--key", str(keys.builder)], env)
    assert proc.returncode == 0, proc.stderr
    # bundle --sign and bundle-then-sign give the same bytes (Ed25519 is deterministic).
    assert _sha(plain) == _sha(built["signed.tar"])
    with tarfile.open(plain) as tar:
        names = tar.getnames()
        assert names.index("offpkg.json.sig") == names.index("offpkg.json") + 1  # sorted, deterministic order
        assert {t.mtime for t in tar.getmembers()} == {int(EPOCH)}
        assert "offpkg.json.sig" not in json.loads(tar.extractfile("offpkg.json").read())["files"]
    doc = json.loads(_verify(plain, env, "--trust", str(keys.allow_builder), "--json").stdout)
    assert doc["ok"] and doc["trust"]["trusted"]
    assert doc["sha256"] == _sha(plain) and doc["sha256_of"] == "bundle file"


def test_sh_and_zst_signed_later(built, keys: Keys, env, tmp_path: Path, offline) -> None:
    sh = tmp_path / "stack.sh"
    shutil.copy(built["plain.sh"], sh)
    assert run_offpkg(["sign", str(sh), "--key", str(keys.builder)], env).returncode == 0
    assert _sha(sh) == _sha(built["signed.sh"]) and os.access(sh, os.X_OK)
    zst = tmp_path / "stack.tar.zst"
    shutil.copy(built["plain.tar.zst"], zst)
    assert run_offpkg(["sign", str(zst), "--key", str(keys.reviewer)], env).returncode == 0
    assert json.loads(_verify(zst, env, "--trust", str(keys.allow_reviewer), "--json").stdout)["trust"]["trusted"]
    # An archive is installed from its extracted copy: the signature travels with it.
    venv = tmp_path / "venv"
    inst = run_offpkg(["install", str(zst), "--venv", str(venv), "--trust", str(keys.allow_reviewer)], env,
                      offline=offline)
    assert inst.returncode == 0 and "signed by reviewer@site (trusted)" in inst.stdout, inst.stderr
    refused = run_offpkg(["install", str(zst), "--venv", str(tmp_path / "v2"), "--trust", str(keys.allow_builder)],
                         env, offline=offline)
    assert_clean_error(refused, 1, "not signed by a trusted key")
    assert not (tmp_path / "v2").exists()


def test_self_extracting_bundle_carries_and_checks_the_signature(built, keys: Keys, env, tmp_path: Path) -> None:
    sh = built["signed.sh"]
    assert check_header(sh) == []
    ok = json.loads(_verify(sh, env, "--trust", str(keys.allow_builder), "--json").stdout)
    assert ok["ok"] and ok["trust"]["trusted"] and ok["sha256"] == _sha(sh)
    assert_clean_error(_verify(sh, env, "--trust", str(keys.allow_reviewer)), 1, "not in the trust anchor")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    shenv = dict(env, TMPDIR=str(tmpdir))
    good = subprocess.run(["sh", str(sh), "--trust", str(keys.allow_builder), "--verify-only"], env=shenv,
                          capture_output=True, text=True)
    assert good.returncode == 0 and "signed by builder@site (trusted)" in good.stdout, good.stderr
    bad = subprocess.run(["sh", str(sh), "--verify-only"], env=dict(shenv, OFFPKG_TRUST=str(keys.allow_reviewer)),
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "not signed by a trusted key" in bad.stderr, bad.stderr
    assert list(tmpdir.iterdir()) == []


def test_edited_sh_header_is_refused_without_running_it(built, env, tmp_path: Path) -> None:
    """A command in the header, the payload untouched and every number right: refused, never run."""
    marker = tmp_path / "MARKER"
    data = built["signed.sh"].read_bytes()
    info = read_header(built["signed.sh"])
    head, payload = data[:info.offset], data[info.offset:]
    old = b"# Set TMPDIR to unpack somewhere other than /tmp (the bundle needs its size free).\n"
    assert old in head
    evil = f"touch {marker}; :".encode()
    new = evil + b" " * (len(old) - len(evil) - 1) + b"\n"
    assert len(new) == len(old)
    sh = tmp_path / "stack.sh"
    sh.write_bytes(head.replace(old, new) + payload)
    proc = _verify(sh, env)
    assert_clean_error(proc, 1, "self-extracting header is not the one", "differs at line")
    assert not marker.exists()
    assert payload_offset(sh) == info.offset


def test_install_sh_with_trust_installs_offline(bundle_dir: Path, keys: Keys, env, tmp_path: Path, offline) -> None:
    venv = tmp_path / "venv"
    proc = subprocess.run([*offline, "sh", str(bundle_dir / "install.sh"), "--trust", str(keys.allow_builder),
                           str(venv)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed 3 packages" in proc.stdout and "signed by builder@site (trusted)" in proc.stdout
    check = subprocess.run([str(venv / "bin/python"), "-c", "import alpha, beta, gamma"], capture_output=True)
    assert check.returncode == 0
    assert json.loads((venv / "offpkg-receipt.json").read_text())["signed_by"] == "builder@site"
    # And offpkg itself, with the trust anchor from the environment.
    venv2 = tmp_path / "venv2"
    inst = run_offpkg(["install", str(bundle_dir), "--venv", str(venv2), "--json"],
                      dict(env, OFFPKG_TRUST=str(keys.allow_builder)), offline=offline)
    assert inst.returncode == 0, inst.stderr
    assert json.loads(inst.stdout)["trust"]["trusted"] is True
    assert json.loads((venv2 / "offpkg-receipt.json").read_text())["signed_by"] == ["builder@site"]


def _fake_uv_wheel(tools: Path, marker: Path) -> Path:
    whl = tools / "uv-0.9.0-py3-none-manylinux_2_17_x86_64.whl"
    script = f"#!/bin/sh\ntouch {marker}\nexit 0\n".encode()
    with zipfile.ZipFile(whl, "w") as z:
        zi = zipfile.ZipInfo("uv-0.9.0.data/scripts/uv")
        zi.external_attr = 0o755 << 16
        z.writestr(zi, script)
        z.writestr("uv-0.9.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: uv\nVersion: 0.9.0\n")
    return whl


def test_bundle_tools_never_run_by_offpkg(bundle_dir: Path, env, tmp_path: Path, offline) -> None:
    """tools/uv replaced by a shell script (manifest resealed): offpkg installs with its own uv; the script never runs."""
    marker = tmp_path / "MARKER"
    whl = _fake_uv_wheel(bundle_dir / "tools", marker)
    m = json.loads((bundle_dir / "offpkg.json").read_text())
    m["packages"] = [p for p in m["packages"] if p["name"] != "uv"] + [{
        "name": "uv", "version": "0.9.0", "filename": whl.name, "path": f"tools/{whl.name}", "sha256": _sha(whl),
        "size": whl.stat().st_size, "role": "tool", "targets": [0]}]
    (bundle_dir / "offpkg.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    reseal(bundle_dir)
    assert _verify(bundle_dir, env).returncode == 0
    venv = tmp_path / "venv"
    proc = run_offpkg(["install", str(bundle_dir), "--venv", str(venv), "--json"], env, offline=offline)
    assert not marker.exists()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] in ("uv", "pip")
    smoke = run_offpkg(["verify", str(bundle_dir), "--smoke"], env)
    assert smoke.returncode == 0, smoke.stderr
    assert not marker.exists()


def test_inspect_shows_builder_claims_unless_trusted(bundle_dir: Path, keys: Keys, env) -> None:
    m = json.loads((bundle_dir / "offpkg.json").read_text())
    m["verification"] = {"verified": True, "when": "2026-01-01T00:00:00Z\x1b[2K\rok: all good",
                         "network_isolation": "unshare -n", "checks": [{"name": "imports\x1b]0;pwn\x07", "ok": True}]}
    (bundle_dir / "offpkg.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    reseal(bundle_dir)
    claim = run_offpkg(["inspect", str(bundle_dir), "--trust", str(keys.allow_builder)], env)
    assert claim.returncode == 0, claim.stderr
    assert "the builder claims (not signed by a trusted key, so unchecked): verified: yes" in claim.stdout
    assert "\x1b" not in claim.stdout and "\x07" not in claim.stdout and "\\x1b[2K\\rok" in claim.stdout
    assert json.loads(run_offpkg(["inspect", str(bundle_dir), "--json"], env).stdout)["verification_status"] == "claim"
    # Signed again by the builder (the manifest is theirs now): the record counts.
    (bundle_dir / "offpkg.json.sig").unlink()
    assert run_offpkg(["sign", str(bundle_dir), "--key", str(keys.builder)], env).returncode == 0
    trusted = run_offpkg(["inspect", str(bundle_dir), "--trust", str(keys.allow_builder)], env)
    assert "\nverified: yes" in trusted.stdout and "signed by builder@site (trusted)" in trusted.stdout


def test_bad_signing_key_fails_before_any_work(index, keys: Keys, env, tmp_path: Path) -> None:
    notakey = tmp_path / "key"
    notakey.write_text("hello\n")
    out = tmp_path / "b"
    proc = run_offpkg(["bundle", "alpha", "-i", index.url, "-o", str(out), "--sign", str(notakey), "--json"], env)
    assert proc.returncode == 3 and json.loads(proc.stdout)["error"]["message"].endswith(")")
    assert "is not an SSH key" in proc.stderr and not out.exists()
    assert_clean_error(run_offpkg(["sign", str(tmp_path / "missing"), "--key", str(keys.builder)], env), 3,
                       "does not exist")


def test_damaged_bundle_is_never_signed(bundle_dir: Path, keys: Keys, env) -> None:
    (bundle_dir / "requirements.txt").write_text("alpha==1.0\n")
    sig = (bundle_dir / "offpkg.json.sig").read_bytes()
    assert_clean_error(run_offpkg(["sign", str(bundle_dir), "--key", str(keys.reviewer)], env), 1, "was not signed")
    assert (bundle_dir / "offpkg.json.sig").read_bytes() == sig


def test_damaged_foreign_or_linked_signature_files(bundle_dir: Path, keys: Keys, env, tmp_path: Path) -> None:
    sig = bundle_dir / "offpkg.json.sig"
    sig.write_text("\x1b[2Jnot a signature\n")
    assert_clean_error(_verify(bundle_dir, env), 1, "holds no SSH signature")
    # A good signature by the builder's key, but for another purpose (namespace "git"): not a bundle signature.
    with open(bundle_dir / "offpkg.json", "rb") as m:
        other = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(keys.builder), "-n", "git"], stdin=m,
                               capture_output=True, check=True).stdout
    sig.write_bytes(other)
    assert_clean_error(_verify(bundle_dir, env, "--trust", str(keys.allow_builder)), 1, "namespace 'git'")
    # A symlink instead of the file is never followed.
    sig.unlink()
    outside = tmp_path / "outside.sig"
    outside.write_bytes(other)
    sig.symlink_to(outside)
    assert_clean_error(_verify(bundle_dir, env), 1, "offpkg.json.sig")
