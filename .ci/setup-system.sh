#!/usr/bin/env bash
# System tools the tests need; each line installs one only when it is missing (append, never rewrite).
set -euo pipefail
command -v chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
