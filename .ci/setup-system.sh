#!/usr/bin/env bash
# System tools the test suite needs in CI (one guarded line per tool; append, never rewrite).
set -euo pipefail
command -v git >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends git)
command -v docker-registry >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends docker-registry)
command -v htpasswd >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends apache2-utils)
command -v ssh-keygen >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends openssh-client)
command -v unshare >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends util-linux)
command -v openssl >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends openssl)
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y --no-install-recommends chromium)
