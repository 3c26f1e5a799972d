#!/usr/bin/env bash
# Second MongoDB-wire server for the integration tests: FerretDB 1.24 on its
# SQLite backend, with real SCRAM authentication, on 127.0.0.1:57027.
#
# FerretDB is built once from its Go module source (github.com/FerretDB/FerretDB
# v1.24.2 from the Go module proxy) with the machine's Go toolchain and cached
# in $XDG_CACHE_HOME/dictamesh-connectors/ferretdb-v1.24.2/. A plain
# 'go install' binary panics at start: the module source lacks the generated
# build/version/version.txt, so the build writes it first.
#
# User: dictamesh / dictamesh-test-pw in the admin database (created at first
# start). Wrong credentials get code 18, unauthenticated commands code 13.
# The data lives on tmpfs (/dev/shm) when there is one, else under the state
# dir; it is emptied at each start.
# Telemetry is disabled; the debug/metrics listener is on 127.0.0.1:57028.
#
# Usage: scripts/services/ferretdb.sh up|down|status|build
# Normally called through scripts/services.sh.
set -euo pipefail

SVC=ferretdb
# shellcheck source=scripts/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FERRET_MODULE="github.com/FerretDB/FerretDB"
FERRET_VERSION="${DICTAMESH_FERRETDB_VERSION:-v1.24.2}"
FERRET_PORT=57027
FERRET_DEBUG_PORT=57028
FERRET_USER=dictamesh
FERRET_PASSWORD=dictamesh-test-pw
FERRET_URI="mongodb://$FERRET_USER:$FERRET_PASSWORD@127.0.0.1:$FERRET_PORT/?authSource=admin&directConnection=true"

BUILD_DIR="$CACHE_ROOT/ferretdb-$FERRET_VERSION"
FERRET_BIN="$BUILD_DIR/bin/ferretdb"
# The SQLite files on tmpfs when the machine has one (/dev/shm): a test
# database needs no durability, and each commit's fsync to a shared VM disk
# made write rates vary by 20-27% from one second to the next (11% on
# tmpfs), more than the 5% a benchmark ratio here must resolve. Named after
# the state dir, so two state roots never share one.
if [[ -d /dev/shm && -w /dev/shm ]]; then
    DATA_DIR="/dev/shm/dictamesh-$(printf '%s' "$SVC_DIR" | cksum | cut -d' ' -f1)-ferretdb"
else
    DATA_DIR="$SVC_DIR/data"
fi
LOG_FILE="$SVC_DIR/ferretdb.log"
PID_FILE="$SVC_DIR/ferretdb.pid"
PROC_MATCH="$DATA_DIR"

build() {
    if [[ -x "$FERRET_BIN" ]] && "$FERRET_BIN" --version 2>/dev/null | grep -q "version: $FERRET_VERSION"; then
        return 0
    fi
    command -v go >/dev/null 2>&1 || fail "Go is needed to build FerretDB $FERRET_VERSION (install the 'golang' package)"
    say "building FerretDB $FERRET_VERSION from the Go module proxy into $BUILD_DIR (once; about a minute)..."
    mkdir -p "$BUILD_DIR"
    local build_log="$BUILD_DIR/build.log" src
    # Keep Go's caches with ours, so nothing outside the cache dir is touched.
    export GOPATH="$CACHE_ROOT/go" GOMODCACHE="$CACHE_ROOT/go-mod" GOCACHE="$CACHE_ROOT/go-build"
    export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
    src="$(cd "$BUILD_DIR" && go mod download -json "$FERRET_MODULE@$FERRET_VERSION" 2>>"$build_log" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
    [[ -n "$src" && -d "$src" ]] || fail "could not download $FERRET_MODULE@$FERRET_VERSION" "$build_log"
    rm -rf "$BUILD_DIR/src" "$BUILD_DIR/bin"
    cp -r "$src" "$BUILD_DIR/src"
    chmod -R u+w "$BUILD_DIR/src"
    printf '%s\n' "$FERRET_VERSION" >"$BUILD_DIR/src/build/version/version.txt"
    if ! (cd "$BUILD_DIR/src" && go build -trimpath -o "$FERRET_BIN.tmp" ./cmd/ferretdb) >>"$build_log" 2>&1; then
        fail "go build of FerretDB failed" "$build_log"
    fi
    mv "$FERRET_BIN.tmp" "$FERRET_BIN"
    rm -rf "$BUILD_DIR/src"
    say "built $("$FERRET_BIN" --version | head -1)"
}

ferret_answers() {
    "$PY" - "$FERRET_URI" <<'PY'
import sys
import pymongo
client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
try:
    client.admin.command("ping")
finally:
    client.close()
PY
}

cmd_up() {
    "$PY" -c 'import pymongo' >/dev/null 2>&1 \
        || fail "pymongo is not importable with $PY (needed for the readiness check); install the test dependencies into the virtualenv first"
    if pid_alive "$PID_FILE"; then
        wait_ready "FerretDB (already started, pid $(cat "$PID_FILE")) to answer" "$PID_FILE" "$LOG_FILE" ferret_answers
        say "running at 127.0.0.1:$FERRET_PORT"
        return 0
    fi
    ensure_port_free "$FERRET_PORT"
    build
    fresh_state_dir
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR" "$SVC_DIR/state"
    say "starting FerretDB $FERRET_VERSION (SQLite backend, SCRAM auth) on 127.0.0.1:$FERRET_PORT (log: $LOG_FILE)..."
    start_detached "$PID_FILE" "$LOG_FILE" "$FERRET_BIN" \
        --handler=sqlite --sqlite-url="file:$DATA_DIR/" --state-dir="$SVC_DIR/state" \
        --listen-addr="127.0.0.1:$FERRET_PORT" --debug-addr="127.0.0.1:$FERRET_DEBUG_PORT" \
        --telemetry=disable --log-level=WARN \
        --test-enable-new-auth --setup-database=admin \
        --setup-username="$FERRET_USER" --setup-password="$FERRET_PASSWORD"
    wait_ready "FerretDB to answer an authenticated ping on 127.0.0.1:$FERRET_PORT" "$PID_FILE" "$LOG_FILE" ferret_answers
    say "running (pid $(cat "$PID_FILE")) at 127.0.0.1:$FERRET_PORT"
}

cmd_down() {
    down_by_pid_file
    [[ "$DATA_DIR" == "$SVC_DIR/"* ]] || rm -rf "$DATA_DIR"  # tmpfs holds memory
}

cmd_status() {
    status_by_pid_file "127.0.0.1:$FERRET_PORT" ferret_answers
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    build) build ;;
    *) echo "usage: $0 up|down|status|build" >&2; exit 2 ;;
esac
