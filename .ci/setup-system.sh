#!/bin/sh
# System tools the test suite needs; each line installs one only where it is missing.
set -eu
command -v ssh-keygen >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends openssh-client; }
