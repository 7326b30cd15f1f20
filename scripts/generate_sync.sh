#!/usr/bin/env bash
# Regenerate the sync code (src/digitwin_db/_sync, tests/sync) from the async source.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv dev
exec "$PY" tools/generate_sync.py "$@"
