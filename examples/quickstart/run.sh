#!/bin/sh
# The main job on the embedded default: bundle examples/quickstart/requirements.txt
# for this host, prove it (offline install + imports into a throwaway venv), then
# install it with no network into a new venv. Run from the repository root.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
work=${OFFPKG_QUICKSTART_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/offpkg-quickstart.XXXXXX")}
mkdir -p "$work"
# The python that `pip install .` used; `python3 -m offpkg` works even before a shell rehash.
py=${PYTHON:-python3}
echo "== offpkg bundle (connected side) -> $work/bundle.tar"
"$py" -m offpkg bundle -r "$here/requirements.txt" -o "$work/bundle.tar" --verify --force
echo "== offpkg verify"
"$py" -m offpkg verify "$work/bundle.tar"
offline=""
if unshare -n true 2>/dev/null; then offline="unshare -n"; elif unshare -rn true 2>/dev/null; then offline="unshare -rn"; fi
echo "== offpkg install (offline side${offline:+, no network: $offline})"
rm -rf "$work/venv"
$offline "$py" -m offpkg install "$work/bundle.tar" --venv "$work/venv"
"$work/venv/bin/python" -c "import requests, tqdm, packaging; print('imports ok: requests', requests.__version__)"
echo "== done: bundle $work/bundle.tar, venv $work/venv"
