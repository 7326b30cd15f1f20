# Shared shell helpers for scripts/*.sh (sourced, not run).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# usage_error MESSAGE: bad usage (unknown command or option) exits 2, like the CLI.
usage_error() { printf 'error: %s\n' "$*" >&2; exit 2; }

# find_pg_bindir: print the directory holding initdb/postgres/pg_ctl, or nothing.
find_pg_bindir() {
    local d
    for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
             $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"; return 0
        fi
    done
    return 1
}

# ensure_pg_binaries: make sure the server binaries exist; install them when root on Debian.
ensure_pg_binaries() {
    if find_pg_bindir >/dev/null; then return 0; fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL server binaries missing: installing Debian's postgresql packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql postgresql-contrib >/dev/null
        find_pg_bindir >/dev/null && return 0
    fi
    die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found.
  Debian/Ubuntu: sudo apt-get install -y postgresql postgresql-contrib
  macOS:         brew install postgresql@15
  or set PG_BINDIR to the directory that holds them."
}

# ensure_pgbouncer: the test suite runs a workload through a real pgbouncer (Debian's 1.18
# is enough); install it when root on Debian, otherwise say how.
ensure_pgbouncer() {
    if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then return 0; fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "pgbouncer missing: installing Debian's pgbouncer package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq pgbouncer >/dev/null
        # The package enables a system service; the tests start their own instances.
        systemctl disable --now pgbouncer >/dev/null 2>&1 || true
        { command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } && return 0
    fi
    die "pgbouncer not found (the tests run a workload through it).
  Debian/Ubuntu: sudo apt-get install -y pgbouncer
  macOS:         brew install pgbouncer"
}

# ensure_redis_server: the benchmarks' Redis baselines (never a dependency of the package;
# the bench smoke test runs them when redis-server is there). Installed when root on Debian.
ensure_redis_server() {
    if command -v redis-server >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "redis-server missing (benchmark baselines only): installing Debian's redis-server"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq redis-server >/dev/null
        # The package enables a system service; the benchmarks start their own instances.
        systemctl disable --now redis-server >/dev/null 2>&1 || true
        command -v redis-server >/dev/null 2>&1 && return 0
    fi
    log "redis-server not found: the benchmarks will report their Redis baselines as unavailable"
}

# ensure_venv [EXTRA]: create .venv and install the package (with extras EXTRA, e.g. "dev")
# when missing or when pyproject.toml changed since the last install.
ensure_venv() {
    local extra="${1:-}" spec="." stamp want python
    [ -n "$extra" ] && spec=".[$extra]"
    if [ ! -x "$PY" ]; then
        python="${PYTHON:-}"
        if [ -z "$python" ]; then
            for candidate in python3.13 python3.12 python3.11 python3; do
                if command -v "$candidate" >/dev/null 2>&1 && \
                   "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                    python="$candidate"; break
                fi
            done
        fi
        [ -n "$python" ] || die "Python >= 3.11 not found (set PYTHON=/path/to/python3.11)"
        log "creating $VENV with $python"
        "$python" -m venv "$VENV"
    fi
    stamp="$VENV/.digitwin-installed-$(echo "$extra" | tr -c 'a-z0-9' '_')"
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing digitwin-db$([ -n "$extra" ] && echo "[$extra]") into $VENV"
        "$PY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
        "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT$( [ -n "$extra" ] && echo "[$extra]")" \
            2> >(grep -v "^WARNING: Location" >&2)
        echo "$want" > "$stamp"
    fi
}

# as_pg CMD...: run a PostgreSQL server binary; as the postgres system user when root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"
    else
        "$@"
    fi
}

# ---- helpers of the backup/restore scripts

# database_url: the owner's URL when there is one (backup and restore need every table:
# OWNER_DATABASE_URL, SPEC §2.12), else DATABASE_URL; from the environment, else from the
# last such line of .env.
database_url() {
    if [ -n "${OWNER_DATABASE_URL:-}" ]; then echo "$OWNER_DATABASE_URL"; return; fi
    if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; return; fi
    if [ -f "$ROOT/.env" ]; then
        local line
        line="$(grep -E '^[[:space:]]*OWNER_DATABASE_URL=' "$ROOT/.env" | tail -n 1 || true)"
        [ -n "$line" ] || line="$(grep -E '^[[:space:]]*DATABASE_URL=' "$ROOT/.env" | tail -n 1 || true)"
        line="${line#*=}"; line="${line%\"}"; line="${line#\"}"; line="${line%\'}"; line="${line#\'}"
        if [ -n "$line" ]; then echo "$line"; return; fi
    fi
    die "DATABASE_URL is not set (environment or .env); run scripts/init_db.sh first"
}

# redact URL: the URL (or key=value string) with its password masked, for messages — by the
# package's one redaction function (digitwin_db.redaction); without the venv, hide it all.
redact() {
    # On stdin, not argv: a password in argv shows in `ps`.
    if [ -x "$PY" ] && printf '%s' "$1" | "$PY" -m digitwin_db.redaction 2>/dev/null; then
        return 0
    fi
    echo "<connection string hidden>"
}

# pg_tool NAME: path of a PostgreSQL client program, newest server version first (pg_dump
# must not be older than the server).
pg_tool() {
    local d
    for d in "${PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
             $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
        if [ -n "$d" ] && [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    command -v "$1" 2>/dev/null && return 0
    die "$1 not found: install the PostgreSQL client (Debian: apt-get install postgresql-client) or set PG_BINDIR"
}
