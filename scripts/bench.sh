#!/usr/bin/env bash
# The benchmark suite: digitwin-db beside bare psycopg, Redis, limits and pyrate-limiter.
# Starts its own throw-away PostgreSQL and a local redis-server (both stopped at the end),
# prints the results table and writes bench/results/latest.json. See bench/README.md.
# Usage: scripts/bench.sh [--quick] [--json PATH] [--only GROUP ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_pg_binaries
ensure_venv dev,bench

# Redis is only a comparison baseline: install Debian's redis-server when missing and
# root; otherwise the Redis columns say "skipped".
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "redis-server missing: installing Debian's redis-server (comparison baseline only)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
            || log "could not install redis-server: the Redis columns will say 'skipped'"
        # Debian starts a system-wide redis on :6379; the benchmark runs its own.
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now redis-server >/dev/null 2>&1 || true
        fi
    else
        log "redis-server not installed (and not root): the Redis columns will say 'skipped'"
    fi
fi

exec "$PY" -m bench "$@"
