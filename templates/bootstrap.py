#!/usr/bin/env python3
"""Install an offpkg bundle on a host that has only python3 (no offpkg, no network).

Shipped in every bundle as tools/bootstrap.py and run by install.sh / install.ps1.
Standard library only. Steps: with --trust FILE (or OFFPKG_TRUST), check the
signature of offpkg.json with ``ssh-keygen -Y verify`` against that allowed_signers
file → verify the bundle both ways against exactly those manifest bytes
(SHA256SUMS and the manifest; no file missing, none extra; tools/ included, so
nothing from tools/ runs unchecked) → pick the bundle target this python can
install → create the venv (pip from tools/ when the host has no ensurepip) →
install offline with --require-hashes (uv from tools/ when it runs, else pip) →
pip check → receipt. Like `offpkg install` (offpkg/ownership.py, same files): the
run holds a lock beside the venv, records what it is doing there, and marks a venv
it creates with its run id; only such a venv is ever removed (on failure, or by the
next run after a kill). An upgrade never marks the user's venv.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INCOMPLETE = ".offpkg-incomplete"
LOCK_TIMEOUT = float(os.environ.get("OFFPKG_LOCK_TIMEOUT") or 60)


class Fail(Exception):
    def __init__(self, msg, code=1):
        Exception.__init__(self, msg)
        self.code = code


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


SIG_NAME = "offpkg.json.sig"
SIG_BLOCK = re.compile(b"-----BEGIN SSH SIGNATURE-----\r?\n[A-Za-z0-9+/=\r\n]{1,16384}?-----END SSH SIGNATURE-----")


def check_signature(root, manifest_bytes, trust):
    """The allowed_signers principal whose key signed these manifest bytes, else Fail."""
    if not os.path.isfile(trust):
        raise Fail("trust anchor %s does not exist; give an OpenSSH allowed_signers file" % trust, 3)
    exe = shutil.which("ssh-keygen")
    if not exe:
        raise Fail("--trust needs ssh-keygen (OpenSSH 8.2 or newer) on this host; nothing was installed", 10)
    probe = subprocess.run([exe, "-Y", "find-principals", "-s", os.devnull, "-f", os.devnull],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if "usage: ssh-keygen" in probe.stderr or "illegal option" in probe.stderr:
        raise Fail("--trust needs ssh-keygen from OpenSSH 8.2 or newer (%s has no -Y); nothing was installed" % exe, 10)
    expected = "a valid signature of offpkg.json by one of the signers in %s; nothing was installed" % trust
    sig = os.path.join(root, SIG_NAME)
    if os.path.islink(sig) or not os.path.isfile(sig):
        raise Fail("the bundle is unsigned (no %s): expected %s" % (SIG_NAME, expected))
    with open(sig, "rb") as f:
        data = f.read(256 << 10)
    wd = tempfile.mkdtemp(prefix="offpkg-sig-")
    try:
        for i, block in enumerate(SIG_BLOCK.findall(data)[:16]):
            path = os.path.join(wd, "sig%d" % i)
            with open(path, "wb") as f:
                f.write(block + b"\n")
            found = subprocess.run([exe, "-Y", "find-principals", "-s", path, "-f", trust],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
            if found.returncode != 0:
                continue
            for principal in [p.strip() for line in found.stdout.splitlines() for p in line.split(",") if p.strip()]:
                proc = subprocess.run([exe, "-Y", "verify", "-f", trust, "-I", principal, "-n", "offpkg", "-s", path],
                                      input=manifest_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if proc.returncode == 0:
                    return principal
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    raise Fail("not signed by a trusted key (a signature by an unknown key, or offpkg.json was changed after "
               "signing): expected %s" % expected)


def verify(root, trust=None):
    """The manifest, after checking every file against it (and its signature against ``trust``)."""
    problems = []
    with open(os.path.join(root, "offpkg.json"), "rb") as f:
        manifest_bytes = f.read()
    # One read: the signature, SHA256SUMS and every file are checked against these same bytes.
    signer = check_signature(root, manifest_bytes, trust) if trust else None
    manifest = json.loads(manifest_bytes.decode("utf-8"))
    expected = {}
    for entry in manifest["packages"] + manifest["files"]:
        path = entry["path"]
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or ".." in parts or "" in parts:
            raise Fail("manifest names a path outside the bundle: %r; refusing this bundle" % path)
        expected[path] = (entry["sha256"], entry["size"])
    # A delta bundle (offpkg bundle --base) does not carry what its base provides.
    for path in (manifest.get("delta") or {}).get("provided", []):
        expected.pop(path, None)
    sums = {}
    with open(os.path.join(root, "SHA256SUMS")) as f:
        for line in f:
            digest, _, path = line.rstrip("\n").partition("  ")
            sums[path] = digest
    present = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                problems.append("%s: symbolic link in the bundle" % os.path.relpath(p, root))
        for name in filenames:
            present.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    for path, (digest, size) in sorted(expected.items()):
        full = os.path.join(root, *path.split("/"))
        if path not in present:
            problems.append("%s: missing" % path)
        elif os.path.getsize(full) != size:
            problems.append("%s: wrong size" % path)
        elif sha256(full) != digest:
            problems.append("%s: sha256 mismatch" % path)
        elif sums.get(path) != digest:
            problems.append("%s: SHA256SUMS disagrees with the manifest" % path)
    if sums.get("offpkg.json") != hashlib.sha256(manifest_bytes).hexdigest():
        problems.append("offpkg.json: does not match SHA256SUMS")
    for path in sorted(present - set(expected) - {"offpkg.json", "SHA256SUMS", SIG_NAME}):
        problems.append("%s: not listed in the manifest" % path)
    problems += check_locks(root, manifest, present)
    if problems:
        raise Fail("the bundle failed verification; nothing was installed:\n  - " + "\n  - ".join(problems))
    manifest["_signer"] = signer
    return manifest


# A requirements line pip reads as nothing but a pin: `name==version` then --hash=sha256 options.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)((?:\s+--hash=sha256:[0-9a-f]{64})*)$")


def check_locks(root, manifest, present):
    """The same allowlist as `offpkg verify`: the requirements files hold only pins with the wheels' hashes.

    pip reads options from a requirements file (--find-links, --index-url, --no-binary,
    -r, -c, URLs, ${VARIABLES}); a line that is not a plain pin would let the bundle
    install something else than what was verified.
    """
    problems = []
    hashes = {}
    for p in manifest["packages"]:
        if p.get("role", "requirement") == "requirement":
            hashes.setdefault(re.sub(r"[-_.]+", "-", p["name"]).lower(), set()).add(p["sha256"])
    for rel in sorted(x for x in present if x == "requirements.txt" or
                      (x.startswith("requirements/") and x.endswith(".txt"))):
        with open(os.path.join(root, *rel.split("/")), "rb") as f:
            text = f.read().decode("ascii", "replace")
        logical = re.sub(r"\\[ \t]*\n[ \t]*", " ", text)
        for line in logical.split("\n"):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            m = _PIN.match(s)
            if not m or "\ufffd" in s:
                problems.append("%s: %r is not allowed in a bundle's requirements file" % (rel, s[:80]))
                continue
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            listed = set(re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
            if not listed or not listed <= hashes.get(name, set()):
                problems.append("%s: the hashes of %s are not exactly its bundled wheels'" % (rel, name))
    return problems


def run(argv, what):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          env=dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
                                   PIP_NO_INPUT="1", UV_NO_CONFIG="1"))
    if proc.returncode != 0:
        raise Fail("%s failed (exit %d):\n%s" % (what, proc.returncode, proc.stdout[-4000:]), 7)
    return proc.stdout


def choose_target(manifest, python):
    info = json.loads(run([python, "-I", os.path.join(HERE, "tools", "probe.py")], "probing %s" % python))
    tags = set(info["tags"])
    reasons = []
    targets = manifest["targets"]
    # Pure-Python wheels fit every target: try the targets of this host's OS and arch first.
    order = sorted(range(len(targets)),
                   key=lambda i: (targets[i].get("os"), targets[i].get("arch")) != (info.get("os"), info.get("arch")))
    for i in order:
        t = targets[i]
        if (t["python"]["implementation"], t["python"]["version"], t["python"]["abi"]) != (
                info["python"]["implementation"], info["python"]["version"], info["python"]["abi"]):
            reasons.append("target %d is %s %s (%s)" % (i, t["python"]["implementation"], t["python"]["version"],
                                                        t["python"]["abi"]))
            continue
        bad = []
        for p in manifest["packages"]:
            if p.get("role", "requirement") != "requirement" or i not in p.get("targets", [0]):
                continue
            parts = p["filename"][:-4].split("-")
            wtags = set("%s-%s-%s" % (a, b, c) for a in parts[-3].split(".") for b in parts[-2].split(".")
                        for c in parts[-1].split("."))
            if not wtags & tags:
                bad.append(p["filename"])
        if bad:
            reasons.append("target %d has wheels this host cannot install: %s" % (i, ", ".join(bad[:3])))
            continue
        return i, t
    raise Fail("this bundle does not fit %s (python %s %s): %s" % (
        python, info["python"]["version"], info["python"]["abi"], "; ".join(reasons)), 6)


def venv_python(venv):
    return os.path.join(venv, "Scripts", "python.exe") if os.name == "nt" else os.path.join(venv, "bin", "python")


def tool(manifest, name):
    for p in manifest["packages"]:
        if p.get("role") == "tool" and p["name"] == name:
            return os.path.join(HERE, *p["path"].split("/"))
    return None


def uv_binary(manifest, workdir):
    whl = tool(manifest, "uv")
    if not whl:
        return None
    try:
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if n.endswith("/scripts/uv") or n.endswith("/scripts/uv.exe"):
                    out = os.path.join(workdir, os.path.basename(n))
                    with z.open(n) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    os.chmod(out, 0o755)
                    subprocess.run([out, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=True)
                    return out
    except (OSError, zipfile.BadZipFile, subprocess.CalledProcessError):
        return None
    return None


def _beside(venv, what):
    return os.path.join(os.path.dirname(venv), ".%s.offpkg-%s" % (os.path.basename(venv), what))


def _lock(venv):
    """Hold the venv's lock (the file offpkg's filelock uses) or fail with exit 9 after LOCK_TIMEOUT s."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        return None
    import time

    parent = os.path.dirname(venv)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    fd = os.open(_beside(venv, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.time() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.time() >= deadline:
                os.close(fd)
                raise Fail("%s is in use by another offpkg run; waited %d s (set OFFPKG_LOCK_TIMEOUT to wait "
                           "longer)" % (venv, LOCK_TIMEOUT), 9)
            time.sleep(0.2)


def _read_record(venv):
    try:
        with open(_beside(venv, "run.json")) as f:
            rec = json.load(f)
        return rec if isinstance(rec, dict) and isinstance(rec.get("run"), str) else None
    except (OSError, ValueError):
        return None


def _begin(venv, action):
    import datetime
    import socket
    import uuid

    rec = {"action": action, "dest": venv, "bundle": HERE, "run": uuid.uuid4().hex, "pid": os.getpid(),
           "host": socket.gethostname(), "before": [],
           "started": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = _beside(venv, "run.json")
    tmp = path + ".tmp%d" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return rec


def _clear(venv, rec):
    cur = _read_record(venv)
    if cur is not None and cur["run"] == rec["run"]:
        os.unlink(_beside(venv, "run.json"))


def _made_by(venv, rec):
    try:
        with open(os.path.join(venv, INCOMPLETE)) as f:
            return json.load(f).get("offpkg_run") == rec["run"]
    except (OSError, ValueError, AttributeError):
        return False


def _clear_interrupted(venv, upgrade):
    """A run record found under the lock is from a run that was killed: undo only what it made."""
    stale = _read_record(venv)
    if stale is None:
        return
    if stale.get("action") == "create":
        if os.path.isdir(venv) and not os.path.islink(venv) and _made_by(venv, stale):
            sys.stderr.write("offpkg: removing %s: an earlier offpkg run (pid %s) was creating it and was "
                             "interrupted\n" % (venv, stale.get("pid")))
            shutil.rmtree(venv)
        _clear(venv, stale)
        return
    if not upgrade:
        raise Fail("an earlier upgrade of %s (pid %s) was interrupted; the venv may hold a mix of old and new "
                   "packages: finish it with --upgrade" % (venv, stale.get("pid")), 9)
    _clear(venv, stale)


def install(python, venv, upgrade, use_uv, trust=None):
    manifest = verify(HERE, trust)
    index, target = choose_target(manifest, python)
    lock = _lock(venv)
    try:
        return _install_locked(manifest, index, target, python, venv, upgrade, use_uv)
    finally:
        if lock is not None:
            os.close(lock)


def _install_locked(manifest, index, target, python, venv, upgrade, use_uv):
    reqs = "requirements.txt"
    if len(manifest["targets"]) > 1:
        reqs = "requirements/%s.txt" % target_id(target)
    _clear_interrupted(venv, upgrade)
    created = False
    was_empty = os.path.isdir(venv) and not os.listdir(venv)
    if os.path.exists(venv) and not was_empty:
        if not upgrade:
            hint = ""
            if os.path.exists(os.path.join(venv, INCOMPLETE)):
                hint = "; it holds %s but no offpkg record says offpkg made it, so it is not removed" % INCOMPLETE
            raise Fail("%s already exists; pass --upgrade to install into it, or choose a new path%s" % (venv, hint),
                       9)
        if not os.path.exists(os.path.join(venv, "pyvenv.cfg")):
            raise Fail("%s is not a virtual environment (no pyvenv.cfg)" % venv, 3)
    # -I everywhere below: no current directory on sys.path (a project's .egg-info there would
    # show up in pip check), no PYTHON* variables, no user site-packages.
    rec = _begin(venv, "upgrade" if os.path.exists(os.path.join(venv, "pyvenv.cfg")) else "create")
    try:
        if rec["action"] == "create":
            created = True
            if not was_empty:
                os.mkdir(venv)
            with open(os.path.join(venv, INCOMPLETE), "w") as f:
                json.dump({"offpkg_run": rec["run"]}, f)
            proc = subprocess.run([python, "-I", "-m", "venv", venv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True)
            if proc.returncode != 0:
                # Debian/Ubuntu without python3-venv: no ensurepip. Use the bundle's pip wheel.
                shutil.rmtree(venv, ignore_errors=True)
                os.mkdir(venv)
                with open(os.path.join(venv, INCOMPLETE), "w") as f:
                    json.dump({"offpkg_run": rec["run"]}, f)
                pip_whl = tool(manifest, "pip")
                if not pip_whl:
                    raise Fail("cannot create a venv (%s) and the bundle has no pip wheel" % proc.stdout.strip()[-300:], 7)
                run([python, "-I", "-m", "venv", "--without-pip", venv], "creating the venv")
                run([venv_python(venv), os.path.join(pip_whl, "pip"), "install", "--no-index", "--no-deps",
                     "--no-cache-dir", pip_whl], "installing pip from the bundle")
        wd = tempfile.mkdtemp(prefix="offpkg-bootstrap-")
        try:
            uv = uv_binary(manifest, wd) if use_uv else None
            wheels = os.path.join(HERE, "wheels")
            req = os.path.join(HERE, reqs)
            if uv:
                run([uv, "pip", "install", "--offline", "--no-index", "--no-build", "--no-config", "--find-links",
                     wheels, "--require-hashes", "--python", venv_python(venv), "-r", req], "installing with uv")
            else:
                run([venv_python(venv), "-I", "-m", "pip", "install", "--isolated", "--no-index", "--find-links", wheels,
                     "--require-hashes", "--only-binary", ":all:", "--no-cache-dir", "-r", req], "installing with pip")
        finally:
            shutil.rmtree(wd, ignore_errors=True)
        run([venv_python(venv), "-I", "-m", "pip", "check"], "pip check")
        sfx = os.environ.get("OFFPKG_SELF_EXTRACTING")
        # Generated here, never copied from the bundle: later pip runs in the venv stay offline.
        conf = "[global]\nno-index = true\nonly-binary = :all:\ndisable-pip-version-check = true\n"
        if not sfx:  # the unpacked payload of a self-extracting bundle is deleted afterwards
            conf += "find-links = %s\n" % os.path.join(HERE, "wheels")
        with open(os.path.join(venv, "pip.conf"), "w") as f:
            f.write(conf)
        with open(os.path.join(venv, "offpkg-receipt.json"), "w") as f:
            json.dump({"bundle": sfx or HERE, "bundle_created": manifest["created"], "target": index,
                       "installer": "uv" if uv else "pip", "via": "self-extracting" if sfx else "install.sh",
                       "signed_by": manifest.get("_signer")},
                      f, indent=2, sort_keys=True)
        if created:
            os.unlink(os.path.join(venv, INCOMPLETE))
        _clear(venv, rec)
    except BaseException:
        if created and _made_by(venv, rec):
            shutil.rmtree(venv, ignore_errors=True)
            if was_empty:
                os.mkdir(venv)
        _clear(venv, rec)
        raise
    return manifest, uv


def target_id(t):
    py = t["python"]
    prefix = py["abi"] if py["implementation"] == "cpython" else py["implementation"] + py["version"].replace(".", "")
    return "%s-%s" % (prefix, t["platforms"][0])


def _delta(root):
    try:
        with open(os.path.join(root, "offpkg.json"), "rb") as f:
            return json.loads(f.read().decode("utf-8")).get("delta")
    except (OSError, ValueError, AttributeError):
        return None  # verify() reports an unreadable manifest


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(prog="install.sh", description="Install this offpkg bundle offline into a new venv.")
    ap.add_argument("venv", nargs="?", help="the venv directory to create")
    ap.add_argument("--venv", dest="venv_opt", help="the venv directory to create")
    ap.add_argument("--python", default=sys.executable, help="the interpreter for the venv (default: this one)")
    ap.add_argument("--upgrade", action="store_true", help="refused: use `offpkg install --upgrade` (atomic, with rollback)")
    ap.add_argument("--no-uv", action="store_true", help="use pip even where the bundled uv runs")
    ap.add_argument("--verify-only", action="store_true", help="only verify the bundle")
    ap.add_argument("--trust", default=os.environ.get("OFFPKG_TRUST") or None, metavar="ALLOWED_SIGNERS",
                    help="refuse the bundle unless a key in this OpenSSH allowed_signers file signed offpkg.json "
                         "(default: $OFFPKG_TRUST)")
    a = ap.parse_args(argv)
    try:
        if a.upgrade:
            raise Fail("install.sh does not upgrade a venv: without offpkg it cannot do it atomically, remove what the "
                       "new lock drops, or keep the old state for a rollback; nothing was changed. Use `offpkg install "
                       "BUNDLE --venv DIR --upgrade` on a host with offpkg, or install into a new venv", 2)
        delta = _delta(HERE)
        if delta and not a.verify_only:
            raise Fail("this is a delta bundle: it carries only what its base (manifest sha256 %s) lacks, so it "
                       "installs only with `offpkg install BUNDLE --venv DIR --upgrade` onto a venv installed from "
                       "that base; nothing was changed" % delta.get("base_manifest_sha256"), 2)
        if a.verify_only:
            manifest = verify(HERE, a.trust)
            print("offpkg: bundle verified" + ("; signed by %s (trusted)" % manifest["_signer"] if a.trust else ""))
            return 0
        venv = a.venv_opt or a.venv
        if not venv:
            ap.error("give the venv directory: install.sh VENV_DIR (or --venv DIR)")
        venv = os.path.abspath(venv)
        manifest, uv = install(a.python, venv, a.upgrade, not a.no_uv, a.trust)
        print("offpkg: installed %d packages into %s (%s)" % (
            sum(1 for p in manifest["packages"] if p.get("role", "requirement") == "requirement"), venv,
            "uv" if uv else "pip") + ("; signed by %s (trusted)" % manifest["_signer"] if a.trust else ""))
        return 0
    except Fail as exc:
        sys.stderr.write("error: %s\n" % exc)
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write("error: %s: %s\n" % (type(exc).__name__, exc))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
