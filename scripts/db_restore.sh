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
psql="$(pg_tool psql)"
# pg_restore --clean cannot drop a partition's inherited primary key ("cannot drop inherited
# constraint"): drop the partitioned tables (with their partitions) first, in the same
# transaction as the restore, so a failed restore still changes nothing.
partitioned="$("$psql" -X -A -t -v ON_ERROR_STOP=1 --dbname="$url" -c "
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'p' AND NOT c.relispartition AND n.nspname = 'public'")"
# The whole script is written out first: a pg_restore that fails half-way must not feed
# psql a truncated script that it would then commit.
script="$(mktemp)"
trap 'rm -f "$script"' EXIT
{
    echo "SET client_min_messages = warning;"
    for table in $partitioned; do echo "DROP TABLE IF EXISTS $table CASCADE;"; done
    "$pg_restore" --clean --if-exists --no-owner --no-privileges --file=- "$file"
} > "$script"
"$psql" -X -q -v ON_ERROR_STOP=1 --single-transaction --dbname="$url" --file="$script" >/dev/null
log "restore done"
