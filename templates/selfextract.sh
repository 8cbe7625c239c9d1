#!/bin/sh
# offpkg self-extracting bundle (written by offpkg @OFFPKG_VERSION@).
#
#   sh THIS_FILE --venv /opt/venvs/ml      verify, unpack to a temp dir, install offline
#   sh THIS_FILE --verify-only             verify only, install nothing
#   sh THIS_FILE --extract DIR             verify and unpack the bundle into DIR
#   sh THIS_FILE --trust FILE ...          also require a signature by a key in FILE
#   sh THIS_FILE --help
#
# Needs only python3 on this host: no offpkg, no network, no tar. The payload (a
# plain tar of the bundle) follows the marker line at the end of this header; its
# byte offset, size and sha256 are written below when the file is built. The
# payload's sha256 is checked before anything is unpacked, every member is checked
# (regular files and directories only, no absolute or '..' names) while unpacking,
# and the bundle's install.sh then checks SHA256SUMS and the manifest again.
# Set TMPDIR to unpack somewhere other than /tmp (the bundle needs its size free).
set -eu

OFFPKG_PAYLOAD_OFFSET=@PAYLOAD_OFFSET@
OFFPKG_PAYLOAD_SIZE=@PAYLOAD_SIZE@
OFFPKG_PAYLOAD_SHA256=@PAYLOAD_SHA256@

self=$0
usage() {
    cat <<EOF
usage: sh $self [--python EXE] [--upgrade] [--no-uv] [--trust FILE] --venv DIR
       sh $self [--trust FILE] --verify-only
       sh $self [--trust FILE] --extract DIR
       sh $self --help

An offpkg bundle in one file. It verifies itself (sha256 of the payload, then
every file against SHA256SUMS and the manifest) and installs offline into a new
virtual environment with the bundle's install.sh. Nothing is installed if any
check fails.

  --venv DIR      the virtual environment to create (or: a plain DIR argument)
  --python EXE    the interpreter for the venv (default: python3 on PATH)
  --upgrade       install into an existing venv
  --no-uv         use pip even where the bundled uv runs
  --verify-only   check the bundle and exit
  --extract DIR   unpack the verified bundle into DIR (new or empty) and keep it
  --trust FILE    OpenSSH allowed_signers file: refuse the bundle unless one of
                  its keys signed offpkg.json (checked with ssh-keygen -Y verify;
                  default: \$OFFPKG_TRUST). This header runs before any check:
                  see docs/trust.md for checking it without running it.
  --help          show this help

Payload: $OFFPKG_PAYLOAD_SIZE bytes, sha256 $OFFPKG_PAYLOAD_SHA256
Unpacks under \${TMPDIR:-/tmp}; set TMPDIR to use another disk.
EOF
}

mode=install
extract_dir=""
python=""
trust=${OFFPKG_TRUST:-}
prev=""
for arg in "$@"; do
    case $prev in
        --python) python=$arg ;;
        --extract) extract_dir=$arg ;;
        --trust) trust=$arg ;;
    esac
    case $arg in
        -h|--help) usage; exit 0 ;;
        --verify-only) mode=verify ;;
        --extract) mode=extract ;;
        --extract=*) mode=extract; extract_dir=${arg#--extract=} ;;
        --python=*) python=${arg#--python=} ;;
        --trust=*) trust=${arg#--trust=} ;;
    esac
    prev=$arg
done
if [ -n "$trust" ]; then
    case $trust in /*) ;; *) trust=$(pwd)/$trust ;; esac
    if [ ! -f "$trust" ]; then
        echo "error: trust anchor $trust does not exist; give an OpenSSH allowed_signers file" >&2
        exit 3
    fi
fi
if [ "$mode" = extract ] && [ -z "$extract_dir" ]; then
    echo "error: --extract needs a directory: sh $self --extract DIR" >&2
    exit 2
fi
if [ ! -f "$self" ]; then
    echo "error: cannot read this installer from '$self'; run it as a file: sh path/to/bundle.sh ..." >&2
    exit 3
fi
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$(command -v "$candidate"); break; fi
    done
fi
if [ -z "$python" ]; then
    echo "error: no python3 found; pass --python /path/to/python3" >&2
    exit 10
fi
# The bundle's bootstrap.py needs Python 3.6 or newer (TARGET_PYTHON_FLOOR in offpkg/_probe.py).
if ! pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then
    echo "error: cannot run $python; pass --python /path/to/python3" >&2
    exit 10
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 6) else 1)' >/dev/null 2>&1; then
    echo "error: $python is Python $pyver; this installer needs Python 3.6 or newer; pass --python /path/to/python3" >&2
    exit 6
fi

# Verify the payload, then unpack it with python's tarfile under our own member checks.
unpack() {
    "$python" -I - "$self" "$OFFPKG_PAYLOAD_OFFSET" "$OFFPKG_PAYLOAD_SIZE" "$OFFPKG_PAYLOAD_SHA256" "$1" <<'PYEOF'
import hashlib, os, shutil, sys, tarfile, tempfile
path, offset, size, want, dest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def fail(msg, code=1):
    sys.stderr.write("error: %s\n" % msg)
    sys.exit(code)

actual = os.path.getsize(path)
if actual != offset + size:
    fail("%s is %s: %d bytes, expected %d; nothing was installed (copy it again and compare its sha256)"
         % (path, "truncated" if actual < offset + size else "longer than it was built", actual, offset + size))
h = hashlib.sha256()
with open(path, "rb") as f:
    f.seek(offset)
    left = size
    while left:
        b = f.read(min(left, 1 << 20))
        if not b:
            fail("%s is truncated; nothing was installed" % path)
        h.update(b)
        left -= len(b)
if h.hexdigest() != want:
    fail("%s is corrupt: the payload's sha256 is %s, expected %s; nothing was installed "
         "(copy it again and compare its sha256)" % (path, h.hexdigest(), want))

parent = os.path.dirname(os.path.abspath(dest))
if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)):
    fail("%s already exists and is not an empty directory; choose a new path" % dest, 9)
work = tempfile.mkdtemp(prefix=".offpkg-unpack-", dir=parent)
try:
    with open(path, "rb") as f:
        f.seek(offset)
        with tarfile.open(fileobj=f, mode="r:") as tar:
            members = tar.getmembers()
            seen = set()
            total = 0
            for m in members:
                parts = [p for p in m.name.split("/") if p not in ("", ".")]
                bad = (m.name.startswith("/") or "\\" in m.name or "\x00" in m.name or ".." in parts
                       or not (m.isreg() or m.isdir()))
                if bad or (m.isreg() and not parts) or "/".join(parts) in seen:
                    fail("unsafe or corrupt member %r in the payload; nothing was installed" % m.name)
                seen.add("/".join(parts))
                total += m.size if m.isreg() else 0
            free = shutil.disk_usage(work).free
            if total > free:
                fail("not enough space to unpack: %d bytes needed, %d free in %s (set TMPDIR to another disk)"
                     % (total, free, parent), 10)
            for m in members:
                parts = [p for p in m.name.split("/") if p not in ("", ".")]
                out = os.path.join(work, *parts) if parts else work
                if m.isdir():
                    if not os.path.isdir(out):
                        os.makedirs(out, 0o755)
                    continue
                if not os.path.isdir(os.path.dirname(out)):
                    os.makedirs(os.path.dirname(out), 0o755)
                src = tar.extractfile(m)
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if m.mode & 0o111 else 0o644)
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    if os.path.isdir(dest):
        os.rmdir(dest)
    os.rename(work, dest)
except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
PYEOF
}

# install.sh checks the signature (with --trust) and every file before anything else runs.
if [ "$mode" = extract ]; then
    unpack "$extract_dir"
    if ! OFFPKG_TRUST=$trust sh "$extract_dir/install.sh" --verify-only --python "$python"; then
        rm -rf "$extract_dir"
        exit 1
    fi
    echo "offpkg: bundle unpacked into $extract_dir; install it with: sh $extract_dir/install.sh --venv DIR"
    exit 0
fi

tmp=""
cleanup() {
    if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$("$python" -I -c 'import tempfile; print(tempfile.mkdtemp(prefix="offpkg-sfx-"))')
unpack "$tmp/bundle"
# Tell the bootstrap where the bundle came from (the unpacked copy is removed afterwards).
OFFPKG_SELF_EXTRACTING=$(cd "$(dirname -- "$self")" && pwd)/$(basename -- "$self")
export OFFPKG_SELF_EXTRACTING
set +e
OFFPKG_TRUST=$trust
export OFFPKG_TRUST
if [ "$mode" = verify ]; then
    sh "$tmp/bundle/install.sh" --verify-only --python "$python"
else
    sh "$tmp/bundle/install.sh" "$@"
fi
rc=$?
set -e
exit $rc
