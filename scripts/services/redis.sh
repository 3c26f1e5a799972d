#!/usr/bin/env bash
# Redis for the integration tests (the Celery broker and result backend):
# redis-server from Debian's packages on 127.0.0.1:56379, no persistence.
#
# Usage: scripts/services/redis.sh up|down|status
# Normally called through scripts/services.sh.
set -euo pipefail

SVC=redis
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REDIS_PORT=56379
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

DATA_DIR="$SVC_DIR/data"
LOG_FILE="$SVC_DIR/redis.log"
PID_FILE="$SVC_DIR/redis.pid"
# Matches the command line in all three of its states: "bash -c ... 56379"
# before exec, "redis-server --port 56379" after it, and the title Redis
# sets once it runs ("redis-server 127.0.0.1:56379"). Matching ":56379"
# alone raced the title change and took a starting server for dead.
PROC_MATCH="$REDIS_PORT"

REDIS_SERVER=""
find_redis() {
    REDIS_SERVER="$(command -v redis-server || true)"
    [[ -n "$REDIS_SERVER" ]] || { [[ -x /usr/bin/redis-server ]] && REDIS_SERVER=/usr/bin/redis-server; }
    [[ -n "$REDIS_SERVER" ]]
}

install_redis() {
    if [[ $EUID -ne 0 ]]; then
        fail "redis-server is not installed and we are not root; install it with 'sudo apt-get install redis-server'"
    fi
    command -v apt-get >/dev/null || fail "redis-server is not installed and there is no apt-get to install it"
    local apt_log="$STATE_ROOT/redis-apt.log"
    mkdir -p "$STATE_ROOT"
    : >"$apt_log"
    export DEBIAN_FRONTEND=noninteractive
    say "installing redis-server from Debian packages (first run only; log: $apt_log)..."
    apt-get update >>"$apt_log" 2>&1 || fail "apt-get update failed" "$apt_log"
    # policy-rc.d: the package must not start (or enable) its own server on :6379.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get install -y --no-install-recommends redis-server >>"$apt_log" 2>&1 \
        || { [[ $created_policy -eq 1 ]] && rm -f "$policy"; fail "apt-get install redis-server failed" "$apt_log"; }
    [[ $created_policy -eq 1 ]] && rm -f "$policy"
    find_redis || fail "redis-server installed, but not found on PATH"
    say "installed $("$REDIS_SERVER" --version | head -n 1)"
}

# PING over bash's /dev/tcp: no redis-cli or Python client needed.
redis_answers() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || { exec 3>&-; return 1; }
    exec 3>&-
    [[ "$reply" == "+PONG"* ]]
}

is_running() {
    pid_alive "$PID_FILE"
}

cmd_up() {
    find_redis || install_redis
    if is_running; then
        if redis_answers; then
            say "already running (pid $(cat "$PID_FILE")) at $REDIS_URL; nothing to do"
            return 0
        fi
        wait_ready "Redis (already started, pid $(cat "$PID_FILE")) to answer" "$PID_FILE" "$LOG_FILE" redis_answers
        return 0
    fi
    ensure_port_free "$REDIS_PORT"
    fresh_state_dir
    mkdir -p "$DATA_DIR"
    say "starting $("$REDIS_SERVER" --version | head -n 1 | cut -d' ' -f1-3) on 127.0.0.1:$REDIS_PORT (log: $LOG_FILE)..."
    # Throwaway broker data: no RDB snapshots, no AOF; 64 databases so that
    # concurrent test runs can each take their own.
    start_detached "$PID_FILE" "$LOG_FILE" "$REDIS_SERVER" \
        --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA_DIR" \
        --save "" --appendonly no --daemonize no --protected-mode yes \
        --databases 64 --loglevel notice
    wait_ready "Redis to answer PING on 127.0.0.1:$REDIS_PORT" "$PID_FILE" "$LOG_FILE" redis_answers
    say "running (pid $(cat "$PID_FILE")) at $REDIS_URL"
}

case "${1:-}" in
    up) cmd_up ;;
    down) down_by_pid_file ;;
    status) status_by_pid_file "$REDIS_URL" redis_answers ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
