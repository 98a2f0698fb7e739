#!/usr/bin/env bash
# The Debian packages the cluster test (tests/cluster) starts on loopback: PostgreSQL's server and Redis.
# Installs them with apt-get when they are absent and this user may (root, or passwordless sudo); otherwise
# says in one line that the cluster test will skip (it fails instead under CI=true).
set -uo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "postgresql or redis-server missing and no root: the cluster test will skip" \
      "(apt-get install -y postgresql redis-server)"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "postgresql or redis-server missing and no apt-get: the cluster test will skip"
  exit 0
fi
echo "Installing postgresql and redis-server (apt-get) for the cluster test"
log=$(mktemp)
if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server; } >"$log" 2>&1; then
  tail -n 30 "$log"
  rm -f "$log"
  exit 1
fi
rm -f "$log"
