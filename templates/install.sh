#!/bin/sh
# Install this offpkg bundle offline into a new virtual environment.
#
#   sh install.sh [--python EXE] [--no-uv] [--trust FILE] VENV_DIR
#   sh install.sh [--trust FILE] --verify-only
#
# --trust FILE (or OFFPKG_TRUST): refuse the bundle unless a key in that OpenSSH
# allowed_signers file signed offpkg.json (checked with ssh-keygen -Y verify
# before anything is installed or run from tools/). This script is part of the bundle: to rule out an
# edited copy of it, check it first without running it (docs/trust.md).
#
# Needs only python3 on this host: no offpkg, no network. It checks SHA256SUMS
# (with sha256sum where present, always again in python against offpkg.json),
# creates the venv (using the bundle's pip wheel where ensurepip is missing),
# installs with --require-hashes --only-binary :all: and runs pip check.
# It never upgrades an existing venv (that is `offpkg install --upgrade`: atomic, with rollback).
set -eu

for arg in "$@"; do
    if [ "$arg" = "--upgrade" ]; then
        echo "error: install.sh does not upgrade a venv: without offpkg it cannot do it atomically, remove what the" >&2
        echo "  new lock drops, or keep the old state for a rollback; nothing was changed." >&2
        echo "hint: use 'offpkg install BUNDLE --venv DIR --upgrade' on a host with offpkg, or install into a new venv" >&2
        exit 2
    fi
done

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
python=""
prev=""
for arg in "$@"; do
    if [ "$prev" = "--python" ]; then python=$arg; fi
    case $arg in --python=*) python=${arg#--python=} ;; esac
    prev=$arg
done
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

if command -v sha256sum >/dev/null 2>&1; then
    if ! (cd "$here" && sha256sum -c --quiet --strict SHA256SUMS); then
        echo "error: SHA256SUMS check failed: the bundle is corrupt or incomplete; nothing was installed" >&2
        exit 1
    fi
fi

exec "$python" "$here/tools/bootstrap.py" "$@"
