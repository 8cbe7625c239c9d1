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
pip check → receipt. The venv carries an "incomplete" marker until the end and
is removed if anything fails.
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
    if problems:
        raise Fail("the bundle failed verification; nothing was installed:\n  - " + "\n  - ".join(problems))
    manifest["_signer"] = signer
    return manifest


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


def install(python, venv, upgrade, use_uv, trust=None):
    manifest = verify(HERE, trust)
    index, target = choose_target(manifest, python)
    reqs = "requirements.txt"
    if len(manifest["targets"]) > 1:
        reqs = "requirements/%s.txt" % target_id(target)
    created = False
    if os.path.exists(venv):
        if os.path.exists(os.path.join(venv, INCOMPLETE)):
            sys.stderr.write("offpkg: %s is left from an interrupted install; removing it\n" % venv)
            shutil.rmtree(venv)
        elif os.listdir(venv) and not upgrade:
            raise Fail("%s already exists; pass --upgrade to install into it, or choose a new path" % venv, 9)
    # -I everywhere below: no current directory on sys.path (a project's .egg-info there would
    # show up in pip check), no PYTHON* variables, no user site-packages.
    try:
        if not os.path.exists(os.path.join(venv, "pyvenv.cfg")):
            created = True
            proc = subprocess.run([python, "-I", "-m", "venv", venv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True)
            if proc.returncode != 0:
                # Debian/Ubuntu without python3-venv: no ensurepip. Use the bundle's pip wheel.
                shutil.rmtree(venv, ignore_errors=True)
                pip_whl = tool(manifest, "pip")
                if not pip_whl:
                    raise Fail("cannot create a venv (%s) and the bundle has no pip wheel" % proc.stdout.strip()[-300:], 7)
                run([python, "-I", "-m", "venv", "--without-pip", venv], "creating the venv")
                run([venv_python(venv), os.path.join(pip_whl, "pip"), "install", "--no-index", "--no-deps",
                     "--no-cache-dir", pip_whl], "installing pip from the bundle")
        with open(os.path.join(venv, INCOMPLETE), "w") as f:
            f.write("offpkg bootstrap install in progress\n")
        wd = tempfile.mkdtemp(prefix="offpkg-bootstrap-")
        try:
            uv = uv_binary(manifest, wd) if use_uv else None
            wheels = os.path.join(HERE, "wheels")
            req = os.path.join(HERE, reqs)
            if uv:
                run([uv, "pip", "install", "--offline", "--no-index", "--find-links", wheels, "--require-hashes",
                     "--only-binary", ":all:", "--python", venv_python(venv), "-r", req], "installing with uv")
            else:
                run([venv_python(venv), "-I", "-m", "pip", "install", "--no-index", "--find-links", wheels,
                     "--require-hashes", "--only-binary", ":all:", "--no-cache-dir", "-r", req], "installing with pip")
        finally:
            shutil.rmtree(wd, ignore_errors=True)
        run([venv_python(venv), "-I", "-m", "pip", "check"], "pip check")
        sfx = os.environ.get("OFFPKG_SELF_EXTRACTING")
        with open(os.path.join(HERE, "pip.conf")) as f:
            conf = f.read()
        if sfx:
            # The unpacked payload is deleted afterwards: keep no-index, drop the dangling find-links.
            conf = "".join(line for line in conf.splitlines(True) if not line.startswith("find-links"))
        else:
            conf = conf.replace("find-links = wheels", "find-links = " + os.path.join(HERE, "wheels"))
        with open(os.path.join(venv, "pip.conf"), "w") as f:
            f.write(conf)
        with open(os.path.join(venv, "offpkg-receipt.json"), "w") as f:
            json.dump({"bundle": sfx or HERE, "bundle_created": manifest["created"], "target": index,
                       "installer": "uv" if uv else "pip", "via": "self-extracting" if sfx else "install.sh",
                       "signed_by": manifest.get("_signer")},
                      f, indent=2, sort_keys=True)
        os.unlink(os.path.join(venv, INCOMPLETE))
    except BaseException:
        if created:
            shutil.rmtree(venv, ignore_errors=True)
        raise
    return manifest, uv


def target_id(t):
    py = t["python"]
    prefix = py["abi"] if py["implementation"] == "cpython" else py["implementation"] + py["version"].replace(".", "")
    return "%s-%s" % (prefix, t["platforms"][0])


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(prog="install.sh", description="Install this offpkg bundle offline into a new venv.")
    ap.add_argument("venv", nargs="?", help="the venv directory to create")
    ap.add_argument("--venv", dest="venv_opt", help="the venv directory to create")
    ap.add_argument("--python", default=sys.executable, help="the interpreter for the venv (default: this one)")
    ap.add_argument("--upgrade", action="store_true", help="install into an existing venv")
    ap.add_argument("--no-uv", action="store_true", help="use pip even where the bundled uv runs")
    ap.add_argument("--verify-only", action="store_true", help="only verify the bundle")
    ap.add_argument("--trust", default=os.environ.get("OFFPKG_TRUST") or None, metavar="ALLOWED_SIGNERS",
                    help="refuse the bundle unless a key in this OpenSSH allowed_signers file signed offpkg.json "
                         "(default: $OFFPKG_TRUST)")
    a = ap.parse_args(argv)
    try:
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
