#!/usr/bin/env bash
# PostgreSQL for the integration tests: a private cluster on 127.0.0.1:55432.
#
# Usage: scripts/services/postgres.sh up|down|status|restart
# Normally called through scripts/services.sh.
set -euo pipefail

SVC=postgres
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_PORT=55432
PG_USER=dictamesh
PG_PASSWORD=dictamesh-test-pw
PG_DB=dictamesh_test
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"

DATA_DIR="$SVC_DIR/data"
SOCKET_DIR="$SVC_DIR/run"
LOG_FILE="$SVC_DIR/postgres.log"
PID_FILE="$SVC_DIR/postgres.pid"
PROC_MATCH="$DATA_DIR"

# Newest /usr/lib/postgresql/<major>/bin that has initdb and pg_ctl.
find_pg_bin() {
    local d
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

install_postgres() {
    if [[ $EUID -ne 0 ]]; then
        fail "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin and not root; install them with 'sudo apt-get install postgresql'"
    fi
    command -v apt-get >/dev/null || fail "no PostgreSQL server binaries and no apt-get to install them"
    local apt_log="$STATE_ROOT/postgres-apt.log"
    mkdir -p "$STATE_ROOT"
    : >"$apt_log"
    export DEBIAN_FRONTEND=noninteractive
    say "installing postgresql from Debian packages (first run only; log: $apt_log)..."
    say "  apt-get update..."
    apt-get update >>"$apt_log" 2>&1 || fail "apt-get update failed" "$apt_log"
    # Install postgresql-common first and tell it not to create (and start)
    # the distribution's default cluster on port 5432: we only need binaries.
    say "  apt-get install postgresql-common..."
    apt-get install -y --no-install-recommends postgresql-common >>"$apt_log" 2>&1 \
        || fail "apt-get install postgresql-common failed" "$apt_log"
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
        sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    say "  apt-get install postgresql..."
    apt-get install -y --no-install-recommends postgresql >>"$apt_log" 2>&1 \
        || fail "apt-get install postgresql failed" "$apt_log"
    say "installed $(find_pg_bin || echo '?')"
}

PG_BIN=""
ensure_pg_bin() {
    if ! PG_BIN="$(find_pg_bin)"; then
        install_postgres
        PG_BIN="$(find_pg_bin)" || fail "postgresql installed, but no initdb/pg_ctl found under /usr/lib/postgresql/*/bin"
    fi
}

# initdb refuses to run as root: when root, run the server as the
# unprivileged 'postgres' system user (created by the Debian package).
OS_USER="$(id -un)"
if [[ $EUID -eq 0 ]]; then
    OS_USER=postgres
fi

ensure_os_user() {
    if [[ $EUID -eq 0 ]] && ! id "$OS_USER" >/dev/null 2>&1; then
        say "creating the unprivileged system user '$OS_USER' to run the server..."
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER"
    fi
}

# as_pg CMD...: run CMD as the server's OS user, from a directory it can read.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$OS_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

pg_answers() {
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

is_running() {
    pid_alive "$PID_FILE"
}

record_pid() {
    local _
    for _ in $(seq 1 50); do
        if [[ -s "$DATA_DIR/postmaster.pid" ]]; then
            head -n 1 "$DATA_DIR/postmaster.pid" >"$PID_FILE"
            return 0
        fi
        sleep 0.1
    done
    fail "server started but wrote no postmaster.pid" "$LOG_FILE"
}

bootstrap_sql() {
    # Over the private unix socket as the bootstrap superuser (peer auth).
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PG_PORT" \
        -U postgres -d postgres >>"$LOG_FILE" 2>&1 <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE "$PG_USER" WITH LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
CREATE DATABASE "$PG_DB" OWNER "$PG_USER";
SQL
}

cmd_up() {
    ensure_pg_bin
    if is_running; then
        if pg_answers; then
            say "already running (pid $(cat "$PID_FILE")) at $PG_URL; nothing to do"
            return 0
        fi
        wait_ready "PostgreSQL (already started, pid $(cat "$PID_FILE")) to accept connections" \
            "$PID_FILE" "$LOG_FILE" pg_answers
        say "running at $PG_URL"
        return 0
    fi
    ensure_port_free "$PG_PORT"
    ensure_os_user
    fresh_state_dir
    mkdir -p "$SOCKET_DIR"
    if [[ $EUID -eq 0 ]]; then
        chown -R "$OS_USER:" "$SVC_DIR"
        as_pg test -w "$SVC_DIR" \
            || fail "user '$OS_USER' cannot write $SVC_DIR; set DICTAMESH_SERVICES_DIR to a directory every user can traverse (e.g. under /tmp)"
    fi
    chmod 700 "$SOCKET_DIR"

    say "creating a new cluster with $PG_BIN/initdb in $DATA_DIR (as OS user '$OS_USER')..."
    as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres -E UTF8 --locale=C \
        --auth-local=peer --auth-host=scram-sha-256 --no-sync >"$SVC_DIR/initdb.log" 2>&1 \
        || fail "initdb failed" "$SVC_DIR/initdb.log"

    cat >>"$DATA_DIR/postgresql.conf" <<CONF

# ---- dictamesh-connectors test server (scripts/services/postgres.sh) ----
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
password_encryption = 'scram-sha-256'
# Throwaway test data: trade durability for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
CONF
    cat >"$DATA_DIR/pg_hba.conf" <<HBA
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
host    all       all       127.0.0.1/32   scram-sha-256
HBA

    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $LOG_FILE)..."
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$READY_TIMEOUT" start >>"$SVC_DIR/pg_ctl.log" 2>&1; then
        [[ -s "$DATA_DIR/postmaster.pid" ]] && head -n 1 "$DATA_DIR/postmaster.pid" >"$PID_FILE"
        ( fail "pg_ctl start failed" "$SVC_DIR/pg_ctl.log" "$LOG_FILE" ) || true
        is_running && stop_pid "$PID_FILE"
        exit 1
    fi
    record_pid
    wait_ready "PostgreSQL to accept connections" "$PID_FILE" "$LOG_FILE" pg_answers

    say "creating role '$PG_USER' (superuser, scram-sha-256 password) and database '$PG_DB'..."
    bootstrap_sql || fail "creating the role and database failed" "$LOG_FILE"
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -c 'SELECT 1' >/dev/null 2>>"$LOG_FILE" \
        || fail "password login over TCP as '$PG_USER' failed" "$LOG_FILE"
    say "running (pid $(cat "$PID_FILE")) at $PG_URL"
}

cmd_down() {
    if is_running; then
        local pid
        pid="$(cat "$PID_FILE")"
        say "stopping PostgreSQL (pid $pid) with pg_ctl stop -m fast..."
        PG_BIN="$(find_pg_bin || true)"
        if [[ -n "$PG_BIN" ]] && as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1; then
            # pg_ctl waits for postmaster.pid to go; make sure the process is gone too.
            wait_exit "$PID_FILE" 10 || stop_pid "$PID_FILE"
            rm -f "$PID_FILE"
            say "stopped"
        else
            warn "pg_ctl stop failed; signalling pid $pid directly"
            stop_pid "$PID_FILE"
        fi
    else
        say "not running"
    fi
    remove_state
}

cmd_restart() {
    ensure_pg_bin
    is_running || fail "not running; start it with 'scripts/services.sh up postgres'"
    say "restarting PostgreSQL (pid $(cat "$PID_FILE")) with pg_ctl restart -m fast..."
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -m fast -w -t "$READY_TIMEOUT" restart >>"$SVC_DIR/pg_ctl.log" 2>&1 \
        || fail "pg_ctl restart failed" "$SVC_DIR/pg_ctl.log" "$LOG_FILE"
    record_pid
    wait_ready "PostgreSQL to accept connections" "$PID_FILE" "$LOG_FILE" pg_answers
    say "running (pid $(cat "$PID_FILE")) at $PG_URL"
}

cmd_status() {
    local bin
    bin="$(find_pg_bin || true)"
    if is_running; then
        if [[ -n "$bin" ]] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; then
            say "running (pid $(cat "$PID_FILE")) at $PG_URL"
        else
            say "started (pid $(cat "$PID_FILE")) but NOT answering on 127.0.0.1:$PG_PORT; see $LOG_FILE"
            return 1
        fi
    else
        say "stopped ($PG_URL)"
        return 1
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    restart) cmd_restart ;;
    *) echo "usage: $0 up|down|status|restart" >&2; exit 2 ;;
esac
