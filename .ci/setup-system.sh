#!/usr/bin/env bash
# System tools the tests need (append lines; each is guarded so a rerun is cheap).
set -euo pipefail
command -v openssl >/dev/null || apt-get install -y --no-install-recommends openssl
