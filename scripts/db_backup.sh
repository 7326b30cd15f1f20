#!/usr/bin/env bash
# Back up the database with pg_dump (custom format) into a timestamped file; keep the last N.
#
#   scripts/db_backup.sh [--keep N] [--dir DIR]
#
# Database: DATABASE_URL from the environment, else from .env (as the library reads it).
# Directory: --dir, else $BACKUP_DIR, else backups/ in the repository.
# Retention: --keep, else $BACKUP_KEEP, else 7 — older digitwin-*.dump files there are removed.
# Prints the path of the new backup on stdout; progress and errors go to stderr.
# Restore with scripts/db_restore.sh FILE. UNLOGGED cache tables are dumped like the others
# (their contents are only a cache: restoring them is harmless).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

keep="${BACKUP_KEEP:-7}"
dir="${BACKUP_DIR:-$ROOT/backups}"
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) [ $# -ge 2 ] || die "--keep needs a number"; keep="$2"; shift 2 ;;
        --dir)  [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; usage_error "unknown argument: $1" ;;
    esac
done
case "$keep" in ''|*[!0-9]*|0) die "--keep / BACKUP_KEEP must be a positive integer, got '$keep'" ;; esac

url="$(database_url)"
pg_dump="$(pg_tool pg_dump)"
# A backup holds every user's data: readable by its owner only.
umask 077
mkdir -p "$dir"
# Nanoseconds in the name: backups taken within one second still sort in order.
stamp="$(date -u +%Y%m%dT%H%M%S.%NZ)"
target="$dir/digitwin-$stamp.dump"
n=1
while [ -e "$target" ]; do n=$((n + 1)); target="$dir/digitwin-$stamp-$n.dump"; done
partial="$target.partial"
trap 'rm -f "$partial"' EXIT

log "backing up $(redact "$url") to $target"
# Custom format: compressed, and pg_restore can restore selectively and in parallel.
"$pg_dump" --format=custom --no-owner --no-privileges --file="$partial" --dbname="$url"
chmod 600 "$partial"
mv "$partial" "$target"
trap - EXIT
log "backup done: $(du -h "$target" | cut -f1)"

# Retention: keep the newest $keep backups in this directory. Names sort by time;
# modification times can tie for backups taken in quick succession.
old="$(ls -1 "$dir"/digitwin-*.dump 2>/dev/null | sort -r | tail -n +"$((keep + 1))" || true)"
if [ -n "$old" ]; then
    while IFS= read -r f; do
        log "removing old backup $f"
        rm -f -- "$f"
    done <<< "$old"
fi
echo "$target"
