#!/usr/bin/env bash
# Local Kafka-compatible broker (tansu) for development and tests.
#
#   scripts/broker.sh install            build tansu into the tool cache (once)
#   scripts/broker.sh start [STORAGE]    start on 127.0.0.1:${HUNTFLOW_BROKER_PORT:-9092}
#   scripts/broker.sh stop               stop the broker this script started
#   scripts/broker.sh path               print the tansu binary path
#
# STORAGE is a tansu storage URL: memory://tansu/ (default) or sqlite://FILE.
# The tool cache is ${HUNTFLOW_TOOLS:-~/.cache/huntflow/tools}; the build itself is
# kept under it too, so a second install is instant.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${HUNTFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/huntflow/tools}"
PORT="${HUNTFLOW_BROKER_PORT:-9092}"
RUN_DIR="${HUNTFLOW_BROKER_DIR:-$TOOLS/run-$PORT}"
TANSU_VERSION=0.6.0
BIN="$TOOLS/bin/tansu"

install() {
    if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        return 0
    fi
    mkdir -p "$TOOLS"
    echo "broker: building tansu $TANSU_VERSION into $TOOLS (10-20 minutes the first time)" >&2
    CARGO_TARGET_DIR="$TOOLS/build" cargo install tansu --version "$TANSU_VERSION" \
        --features dynostore,libsql --locked --root "$TOOLS" >&2
}

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker: nothing listens on 127.0.0.1:$PORT after 20 s; log: $RUN_DIR/broker.log" >&2
    tail -20 "$RUN_DIR/broker.log" >&2 || true
    return 1
}

start() {
    if [[ -n "${HUNTFLOW_BROKER_NO_INSTALL:-}" && ! -x "$BIN" ]]; then
        echo "broker: $BIN is missing; run scripts/broker.sh install" >&2
        exit 1
    fi
    install
    local storage="${1:-memory://tansu/}"
    mkdir -p "$RUN_DIR"
    stop_quiet
    (cd "$RUN_DIR" && exec "$BIN" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "$storage" >>"$RUN_DIR/broker.log" 2>&1) &
    echo $! >"$RUN_DIR/pid"
    wait_port
    echo "broker: tansu on 127.0.0.1:$PORT ($storage), pid $(cat "$RUN_DIR/pid")" >&2
}

stop_quiet() {
    if [[ -f "$RUN_DIR/pid" ]]; then
        local pid
        pid="$(cat "$RUN_DIR/pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$RUN_DIR/pid"
    fi
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) stop_quiet ;;
    path) echo "$BIN" ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
