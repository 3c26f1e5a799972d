#!/usr/bin/env bash
# Start, stop and inspect the real services the integration tests talk to,
# natively on 127.0.0.1 (no Docker needed):
#
#   postgres  PostgreSQL (Debian packages)    127.0.0.1:55432
#   kafka     Apache Kafka, KRaft single node 127.0.0.1:59092 (controller :59093)
#   mongodb   SecantusDB (MongoDB wire)       127.0.0.1:57017
#   ferretdb  FerretDB 1.24 (MongoDB wire, SQLite, SCRAM) 127.0.0.1:57027
#             (built once with Go from the module proxy, cached)
#   redis     Redis (Debian packages)         127.0.0.1:56379 (the Celery broker)
#
# Usage: scripts/services.sh up|down|status [postgres|kafka|mongodb|ferretdb|redis ...]
#        scripts/services.sh restart postgres
#
# No service names means all of them. 'up' is idempotent; 'down' stops what
# 'up' started (by pid file) and removes its data, keeping the logs.
#
# Environment:
#   PYTHON                   interpreter with pymongo/confluent_kafka for the
#                            readiness checks (default: .venv/bin/python, else python3)
#   DICTAMESH_SERVICES_DIR   state dir: data, logs, pid files (default /tmp/dictamesh-services)
#   XDG_CACHE_HOME           Kafka jars are cached in $XDG_CACHE_HOME/dictamesh-connectors
#                            (default ~/.cache/dictamesh-connectors)
#   DICTAMESH_SERVICES_TIMEOUT  readiness timeout per service, seconds (default 120)
#   DICTAMESH_KAFKA_VERSION  Kafka version to download and run (default pinned in scripts/services/kafka.sh)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL_SERVICES=(postgres kafka mongodb ferretdb redis)

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
action="$1"; shift
case "$action" in
    up|down|status|restart) ;;
    -h|--help|help) usage ;;
    *) echo "services.sh: unknown action '$action'" >&2; usage ;;
esac

services=("$@")
if [[ ${#services[@]} -eq 0 ]]; then
    if [[ "$action" == restart ]]; then
        echo "services.sh: restart needs a service name (only 'postgres' supports it)" >&2
        exit 2
    fi
    services=("${ALL_SERVICES[@]}")
    # Stop in reverse order of starting.
    if [[ "$action" == down ]]; then
        services=(redis ferretdb mongodb kafka postgres)
    fi
fi
for s in "${services[@]}"; do
    case "$s" in
        postgres|kafka|mongodb|ferretdb|redis) ;;
        *) echo "services.sh: unknown service '$s' (expected: ${ALL_SERVICES[*]})" >&2; exit 2 ;;
    esac
    if [[ "$action" == restart && "$s" != postgres ]]; then
        echo "services.sh: restart is only supported for postgres" >&2
        exit 2
    fi
done

failed=()
for s in "${services[@]}"; do
    start=$(date +%s)
    if [[ "$action" == status ]]; then
        # status reports; a stopped service is not an error.
        bash "$HERE/services/$s.sh" status || true
        continue
    fi
    if bash "$HERE/services/$s.sh" "$action"; then
        if [[ "$action" == up ]]; then
            echo "$s: up ($(( $(date +%s) - start ))s)"
        fi
    else
        failed+=("$s")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "services.sh: '$action' FAILED for: ${failed[*]}" >&2
    exit 1
fi
if [[ "$action" == up ]]; then
    echo "services.sh: all requested services are up (stop them with 'scripts/services.sh down')"
fi
