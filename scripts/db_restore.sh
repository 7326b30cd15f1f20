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
        -*) usage >&2; usage_error "unknown option: $1" ;;
        *) [ -z "$file" ] || die "only one backup file, got '$file' and '$1'"; file="$1"; shift ;;
    esac
done
[ -n "$file" ] || { usage >&2; usage_error "which backup file? e.g. scripts/db_restore.sh backups/digitwin-<time>.dump"; }
[ -f "$file" ] || die "backup file not found: $file"

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
