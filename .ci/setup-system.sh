#!/usr/bin/env bash
# System tools CI needs, installed only where missing (.ci/run calls this first; append lines).
set -euo pipefail
command -v unshare >/dev/null || apt-get install -y --no-install-recommends util-linux
