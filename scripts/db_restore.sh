#!/usr/bin/env bash
# Restore a backup made by scripts/db_backup.sh (pg_restore --clean --if-exists).
#
#   scripts/db_restore.sh FILE [--yes]
#
# Database: DATABASE_URL from the environment, else from .env. Every object in the backup
# is dropped and re-created in that database, so its current contents are OVERWRITTEN: the
# script asks first (answer 'yes') unless --yes is given. The restore runs in a single
# transaction: it applies completely or not at all. Stop the services (or at least the
# cleanup job) while it runs. The audit log's append-only guard does not get in the way:
# --clean drops the table (allowed), it never deletes audit rows one by one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

file=""
yes=0
while [ $# -gt 0 ]; do
    case "$1" in
        --yes|-y) yes=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) [ -z "$file" ] || die "only one backup file, got '$file' and '$1'"; file="$1"; shift ;;
    esac
done
[ -n "$file" ] || { usage >&2; die "which backup file? e.g. scripts/db_restore.sh backups/digitwin-<time>.dump"; }
[ -f "$file" ] || die "backup file not found: $file"

database_url() {
    if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; return; fi
    if [ -f "$ROOT/.env" ]; then
        local line
        line="$(grep -E '^[[:space:]]*DATABASE_URL=' "$ROOT/.env" | tail -n 1 || true)"
        line="${line#*=}"; line="${line%\"}"; line="${line#\"}"; line="${line%\'}"; line="${line#\'}"
        if [ -n "$line" ]; then echo "$line"; return; fi
    fi
    die "DATABASE_URL is not set (environment or .env)"
}
redact() { echo "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }
pg_tool() {
    local d
    for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
             $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
        if [ -n "$d" ] && [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    command -v "$1" 2>/dev/null && return 0
    die "$1 not found: install the PostgreSQL client (Debian: apt-get install postgresql-client) or set PG_BINDIR"
}

url="$(database_url)"
pg_restore="$(pg_tool pg_restore)"
"$pg_restore" --list "$file" >/dev/null 2>&1 || die "$file is not a pg_dump custom-format backup"

if [ "$yes" -ne 1 ]; then
    printf 'This OVERWRITES database %s with %s.\nType yes to continue: ' \
        "$(redact "$url")" "$file" >&2
    answer=""
    read -r answer || true
    [ "$answer" = "yes" ] || die "not confirmed: nothing was changed"
fi

log "restoring $file into $(redact "$url")"
"$pg_restore" --clean --if-exists --no-owner --no-privileges --single-transaction \
    --exit-on-error --dbname="$url" "$file"
log "restore done"
