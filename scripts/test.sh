#!/usr/bin/env bash
# The whole test-suite: lint (ruff), types (mypy --strict), the check that the generated
# sync code is current, and pytest against a real, embedded PostgreSQL.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_pg_binaries
ensure_pgbouncer
ensure_redis_server
ensure_venv dev

log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check --quiet src tests tools bench
log "mypy --strict"
"$VENV/bin/mypy"
log "generated sync code is current"
"$PY" tools/generate_sync.py --check
log "pytest"
set +e
"$PY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    die "pytest collected no tests: that is a failure, not a pass"
fi
[ "$status" -ne 0 ] && exit "$status"
# Peer projects' own suites against our integrations (only for a full run, not for a
# selection of our tests).
if [ "$#" -eq 0 ]; then
    log "peer suites"
    "$ROOT/scripts/peer_suites.sh"
fi
