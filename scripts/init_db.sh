#!/usr/bin/env bash
# Bring up the database, apply migrations, seed demo data.
#
#   scripts/init_db.sh [start] [--seed]   set up (idempotent: a second run changes nothing);
#                                demo data goes into the embedded server, into the server
#                                in DATABASE_URL only with --seed
#   scripts/init_db.sh stop      stop the embedded server
#   scripts/init_db.sh status    is the embedded server running? what is applied?
#
# Without DATABASE_URL in the environment an embedded PostgreSQL cluster lives in .pgdata/
# (run as the 'postgres' system user when this script runs as root), listening on
# 127.0.0.1 on a free port, with generated passwords; three roles (SPEC §2.12): the owner
# runs migrations (OWNER_DATABASE_URL), the application role is what services use
# (DATABASE_URL), the maintenance role runs the cleanup (MAINTENANCE_DATABASE_URL); all
# three URLs are written to .env.
# With DATABASE_URL set, that server is used as it is.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PGLINK="$ROOT/.pgdata"
# resolve_paths: the real cluster directories (.pgdata may be a symlink, see prepare_base_dir).
resolve_paths() {
    PGBASE="$(readlink -f "$PGLINK" 2>/dev/null || echo "$PGLINK")"
    PGDATA_DIR="$PGBASE/data"
    SOCKET_DIR="$PGBASE/run"
}
resolve_paths
DB_NAME="${DIGITWIN_DB_NAME:-digitwin}"
DB_USER="digitwin"
OWNER_URL=""  # set by start_embedded: the embedded cluster's owner

# pg BINARY ARGS...: run a server binary from / (the postgres user may not enter $ROOT).
pg() { (cd / && as_pg "$PG_BINDIR/$1" "${@:2}"); }

embedded_running() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && pg pg_ctl status -D "$PGDATA_DIR" >/dev/null 2>&1
}

# The postgres user must be able to reach .pgdata; a checkout under /root is not reachable,
# so the cluster then lives under /var/lib/digitwin-db and .pgdata links to it.
prepare_base_dir() {
    if [ ! -e "$PGLINK" ]; then
        if [ "$(id -u)" -eq 0 ] && ! (cd / && as_pg test -x "$ROOT"); then
            local target
            target="/var/lib/digitwin-db/$(echo "$ROOT" | sha256sum | cut -c1-12)"
            mkdir -p "$target"
            ln -s "$target" "$PGLINK"
            log "$ROOT is not reachable by the postgres user: cluster lives in $target"
        else
            mkdir -p "$PGLINK"
        fi
    fi
    resolve_paths
    chmod 700 "$PGBASE"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PGBASE"; fi
}

init_cluster() {
    prepare_base_dir
    local pwfile
    pwfile="$(mktemp)"
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$pwfile"
    mkdir -p "$SOCKET_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$PGBASE/" "$pwfile"; fi
    log "initialising a PostgreSQL cluster in $PGDATA_DIR"
    pg initdb -D "$PGDATA_DIR" -U "$DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cp "$pwfile" "$PGBASE/password"
    chmod 600 "$PGBASE/password"
    rm -f "$pwfile"
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        > "$PGBASE/port"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$PGBASE/"; fi
}

start_embedded() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] || init_cluster
    local port
    port="$(cat "$PGBASE/port")"
    if embedded_running; then
        log "embedded PostgreSQL already running on 127.0.0.1:$port"
    else
        if ! "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)) != 0)"; then
            :
        else
            die "port $port (from $PGBASE/port) is taken by another program; free it or edit that file"
        fi
        log "starting embedded PostgreSQL on 127.0.0.1:$port"
        pg pg_ctl start -D "$PGDATA_DIR" -l "$PGBASE/server.log" -w -t 60 \
            -o "-p $port -h 127.0.0.1 -k $SOCKET_DIR -c max_connections=200" >/dev/null
    fi
    local password
    password="$(cat "$PGBASE/password")"
    OWNER_URL="postgresql://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
    "$PY" - "$OWNER_URL" <<'PYEOF'
import sys
import psycopg
from psycopg import sql
url = sys.argv[1]
admin = url.rsplit("/", 1)[0] + "/postgres"
with psycopg.connect(admin, autocommit=True) as conn:
    name = url.rsplit("/", 1)[1]
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"==> created database {name}", file=sys.stderr)
PYEOF
    # The roles of SPEC §2.12: the services connect as the application role, the cleanup
    # job as the maintenance role; the cluster's owner ($DB_USER) runs migrations.
    EMBEDDED_URL="$(ensure_role "$APP_ROLE" "$port")"
    MAINTENANCE_URL="$(ensure_role "$MAINTENANCE_ROLE" "$port")"
}

APP_ROLE="digitwin_app"
MAINTENANCE_ROLE="digitwin_maintenance"

# ensure_role NAME PORT: create the login role NAME (password kept in $PGBASE/NAME.password)
# unless it exists; print its URL.
ensure_role() {
    local role="$1" port="$2" pwfile="$PGBASE/$1.password"
    if [ ! -s "$pwfile" ]; then
        (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$pwfile")
    fi
    "$PY" - "$OWNER_URL" "$role" "$(cat "$pwfile")" <<'PYEOF'
import sys
import psycopg
from psycopg import sql
url, role, password = sys.argv[1:4]
with psycopg.connect(url, autocommit=True) as conn:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    if not exists:
        print(f"==> created role {role}", file=sys.stderr)
PYEOF
    echo "postgresql://$role:$(cat "$pwfile")@127.0.0.1:$port/$DB_NAME"
}

# write_env NAME=VALUE...: set these variables in .env, keeping every other line.
write_env() {
    local tmp pattern="" pair
    tmp="$(mktemp)"
    for pair in "$@"; do pattern="$pattern|^${pair%%=*}="; done
    if [ -f .env ]; then grep -Ev "${pattern#|}" .env > "$tmp" || true; fi
    for pair in "$@"; do echo "$pair" >> "$tmp"; done
    if [ -f .env ] && cmp -s "$tmp" .env; then rm -f "$tmp"; return 0; fi
    mv "$tmp" .env
    chmod 600 .env
    log "wrote ${*%%=*} to .env"
}

cmd_start() {
    local seed=auto
    while [ $# -gt 0 ]; do
        case "$1" in
            --seed) seed=yes; shift ;;
            *) usage_error "unknown option for start: $1 (start [--seed])" ;;
        esac
    done
    ensure_venv
    # DATABASE_URL exported from this script's own .env names the embedded server: start
    # it (it may be stopped) rather than treat it as an external server.
    if [ -n "${DATABASE_URL:-}" ] && [ -f "$PGDATA_DIR/PG_VERSION" ] && [ -f .env ] \
        && grep -qxF "DATABASE_URL=$DATABASE_URL" .env; then
        log "DATABASE_URL is the embedded server's (from .env)"
        unset DATABASE_URL
    fi
    if [ -n "${DATABASE_URL:-}" ]; then
        log "using the server in DATABASE_URL"
        export DATABASE_URL
        # Migrations run as OWNER_DATABASE_URL when given in the environment, else as
        # DATABASE_URL — never as an owner URL .env holds for the embedded server.
        export OWNER_DATABASE_URL="${OWNER_DATABASE_URL:-$DATABASE_URL}"
        log "applying migrations"
        "$PY" -m digitwin_db migrate
    else
        ensure_pg_binaries
        PG_BINDIR="$(find_pg_bindir)"
        start_embedded
        log "applying migrations (as the owner)"
        DATABASE_URL="$OWNER_URL" OWNER_DATABASE_URL="$OWNER_URL" "$PY" -m digitwin_db migrate
        log "granting the application and maintenance roles their privileges"
        DATABASE_URL="$OWNER_URL" OWNER_DATABASE_URL="$OWNER_URL" "$PY" -m digitwin_db grant \
            --app "$APP_ROLE" --maintenance "$MAINTENANCE_ROLE" >/dev/null
        write_env "DATABASE_URL=$EMBEDDED_URL" "OWNER_DATABASE_URL=$OWNER_URL" \
            "MAINTENANCE_DATABASE_URL=$MAINTENANCE_URL"
        export DATABASE_URL="$EMBEDDED_URL"
    fi
    # Demo users go into the embedded server; into another server only when asked.
    if [ "$seed" = yes ] || [ -n "$OWNER_URL" ]; then
        log "seeding demo data"
        "$PY" -m digitwin_db seed
    else
        log "not seeding demo data into the server in DATABASE_URL (pass --seed to do it)"
    fi
    local safe
    safe="$(redact "$DATABASE_URL")"
    echo "DATABASE_URL=$safe   (full URL with password: .env)"
}

cmd_stop() {
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then log "no embedded cluster in $PGBASE"; return 0; fi
    PG_BINDIR="$(find_pg_bindir)" || die "PostgreSQL binaries not found"
    if embedded_running; then
        pg pg_ctl stop -D "$PGDATA_DIR" -m fast -w >/dev/null
        log "embedded PostgreSQL stopped"
    else
        log "embedded PostgreSQL is not running"
    fi
}

cmd_status() {
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        echo "embedded: not initialised"
    else
        PG_BINDIR="$(find_pg_bindir)" || die "PostgreSQL binaries not found"
        if embedded_running; then
            echo "embedded: running on 127.0.0.1:$(cat "$PGBASE/port") (data: $PGDATA_DIR)"
        else
            echo "embedded: stopped (data: $PGDATA_DIR)"
            return 3
        fi
    fi
    if [ -x "$PY" ]; then "$PY" -m digitwin_db status; fi
}

case "${1:-start}" in
    start) shift || true; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) usage_error "unknown command '$1' (start [--seed] | stop | status)" ;;
esac
