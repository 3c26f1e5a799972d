# shellcheck shell=bash
# Helpers shared by scripts/services/*.sh. Sourced, never run directly.
#
# Every per-service script sets SVC (its name) before sourcing this file.

: "${SVC:?SVC must be set before sourcing common.sh}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_ROOT="${DICTAMESH_SERVICES_DIR:-/tmp/dictamesh-services}"
SVC_DIR="$STATE_ROOT/$SVC"
# shellcheck disable=SC2034  # used by the service scripts that source this file
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/dictamesh-connectors"

# Seconds to wait for a service to answer after starting it.
READY_TIMEOUT="${DICTAMESH_SERVICES_TIMEOUT:-120}"
# Seconds to wait for a service to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT="${DICTAMESH_SERVICES_STOP_TIMEOUT:-60}"

say() { printf '%s: %s\n' "$SVC" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$SVC" "$*" >&2; }

# fail MESSAGE [LOGFILE...]: print an error and the tail of each log, exit 1.
fail() {
    local msg="$1"; shift
    printf '%s: ERROR: %s\n' "$SVC" "$msg" >&2
    local f
    for f in "$@"; do
        if [[ -s "$f" ]]; then
            printf '%s: ---- last 40 lines of %s ----\n' "$SVC" "$f" >&2
            tail -n 40 "$f" >&2
            printf '%s: ---- end of %s ----\n' "$SVC" "$f" >&2
        fi
    done
    exit 1
}

# The interpreter used for readiness probes: $PYTHON, else the repo venv,
# else python3 from PATH.
resolve_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        # Relative paths are taken relative to the repository root.
        if [[ "$PYTHON" != /* && "$PYTHON" == */* && -x "$REPO_ROOT/$PYTHON" ]]; then
            echo "$REPO_ROOT/$PYTHON"
        else
            echo "$PYTHON"
        fi
    elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        echo "$REPO_ROOT/.venv/bin/python"
    else
        command -v python3 || echo python3
    fi
}
# shellcheck disable=SC2034  # used by the service scripts that source this file
PY="$(resolve_python)"

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Each service script sets PROC_MATCH to a string that its server's command
# line contains (e.g. its data dir), so a stale pid file whose pid was reused
# by an unrelated process is never taken for our server, nor signalled.
PROC_MATCH="${PROC_MATCH:-}"

# pid_alive PIDFILE: true when the file names a live process that is ours.
pid_alive() {
    local pid cmdline
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n "$PROC_MATCH" && -r "/proc/$pid/cmdline" ]]; then
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        [[ "$cmdline" == *"$PROC_MATCH"* ]] || return 1
    fi
    return 0
}

# start_detached PIDFILE LOGFILE CMD...: start CMD in its own session,
# detached from this shell (stdin from /dev/null, stdout+stderr to LOGFILE),
# and record its pid. The pid is the server process itself (exec).
start_detached() {
    local pidfile="$1" logfile="$2"; shift 2
    rm -f "$pidfile"
    # bash -c writes its own pid and then execs the server in place, so the
    # recorded pid is the server's.
    # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner bash
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 &
    local _
    for _ in $(seq 1 50); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    fail "could not start: no pid file written" "$logfile"
}

# stop_pid PIDFILE: SIGTERM the process, wait up to STOP_TIMEOUT, then
# SIGKILL. Removes the pid file.
stop_pid() {
    local pidfile="$1" pid waited=0
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    say "sending SIGTERM to pid $pid, waiting up to ${STOP_TIMEOUT}s for it to exit..."
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited >= STOP_TIMEOUT * 10 )); then
            warn "pid $pid still running after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$pidfile"
}

# wait_exit PIDFILE SECONDS: wait quietly for the process to exit; true if it did.
wait_exit() {
    local pidfile="$1" limit=$(( $2 * 10 )) n=0
    while pid_alive "$pidfile"; do
        (( n >= limit )) && return 1
        sleep 0.1
        n=$((n + 1))
    done
    return 0
}

# remove_state: delete everything in SVC_DIR except the *.log files, which
# are kept for post-mortems (the next 'up' starts from an empty dir).
remove_state() {
    [[ -d "$SVC_DIR" ]] || return 0
    find "$SVC_DIR" -mindepth 1 -maxdepth 1 ! -name '*.log' -exec rm -rf {} +
    say "removed data in $SVC_DIR (logs kept: $(find "$SVC_DIR" -mindepth 1 -maxdepth 1 -name '*.log' -printf '%f\n' | sort | paste -sd ' ' -))"
}

# fresh_state_dir: empty SVC_DIR (stale data of an earlier run, old logs).
fresh_state_dir() {
    if [[ -d "$SVC_DIR" ]] && [[ -n "$(find "$SVC_DIR" -mindepth 1 -maxdepth 1 ! -name '*.log' -print -quit)" ]]; then
        say "removing stale state of an earlier run in $SVC_DIR..."
    fi
    rm -rf "$SVC_DIR"
    mkdir -p "$SVC_DIR"
}

# wait_ready DESCRIPTION PIDFILE LOGFILE PROBE...: run PROBE until it
# succeeds, READY_TIMEOUT passes, or the process dies.
wait_ready() {
    local what="$1" pidfile="$2" logfile="$3"; shift 3
    local start now
    start=$(date +%s)
    say "waiting up to ${READY_TIMEOUT}s for $what..."
    while true; do
        if "$@" >/dev/null 2>&1; then
            now=$(date +%s)
            say "ready after $((now - start))s"
            return 0
        fi
        if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
            fail "the server process exited during startup" "$logfile"
        fi
        now=$(date +%s)
        if (( now - start >= READY_TIMEOUT )); then
            if [[ -n "$pidfile" ]]; then
                ( fail "not ready after ${READY_TIMEOUT}s ($what); stopping it (logs are kept in $SVC_DIR)" "$logfile" ) || true
                stop_pid "$pidfile"
                exit 1
            fi
            fail "not ready after ${READY_TIMEOUT}s ($what)" "$logfile"
        fi
        sleep 0.5
    done
}

# Refuse to start when the port is held by something we did not start.
ensure_port_free() {
    local port="$1"
    if port_open "$port"; then
        fail "port 127.0.0.1:$port is already in use by a process not started by scripts/services.sh (no live pid file in $SVC_DIR); stop it or free the port"
    fi
}

# down_by_pid_file: the 'down' of a service whose server is the process in
# PID_FILE: SIGTERM it (SIGKILL after STOP_TIMEOUT), then delete its data.
down_by_pid_file() {
    if pid_alive "$PID_FILE"; then
        stop_pid "$PID_FILE"
        say "stopped"
    else
        say "not running"
    fi
    remove_state
}

# status_by_pid_file ADDRESS PROBE...: the 'status' of such a service: says
# whether it runs and answers PROBE; false when it does not.
status_by_pid_file() {
    local address="$1"; shift
    if ! pid_alive "$PID_FILE"; then
        say "stopped ($address)"
        return 1
    fi
    if "$@" >/dev/null 2>&1; then
        say "running (pid $(cat "$PID_FILE")) at $address"
        return 0
    fi
    say "started (pid $(cat "$PID_FILE")) but NOT answering at $address; see $LOG_FILE"
    return 1
}
