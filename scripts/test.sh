#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, doc, loader,
# reference model at 1/2/4 workers, golden demo output, generator, COST
# baseline, robustness, CLI, the HTTP API, the map page in a real browser,
# and the continuous job against Apache Kafka). Ends with one
# "N passed, N failed" line.
#
# Apache Kafka is fetched once into the tool cache
# (${HUNTFLOW_TOOLS:-~/.cache/huntflow/tools}, see scripts/kafka.sh) and
# Debian's chromium installed (scripts/browser.sh) while the project builds;
# one broker, on free ports and in a fresh directory, serves the whole suite
# (HUNTFLOW_KAFKA_BROKERS) and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export HUNTFLOW_TOOLS="${HUNTFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/huntflow/tools}"

mkdir -p "$HUNTFLOW_TOOLS"
install_log="$HUNTFLOW_TOOLS/install.log"
scripts/kafka.sh install >"$install_log" 2>&1 &
install_pid=$!
browser_log="$HUNTFLOW_TOOLS/browser-install.log"
scripts/browser.sh install >"$browser_log" 2>&1 &
browser_pid=$!

cargo fmt --all -- --check
cargo clippy --release --all-targets --locked -- -D warnings
cargo test --release --locked --lib --bins --tests --no-run

if ! wait "$install_pid"; then
    echo "installing Apache Kafka failed:" >&2
    tail -40 "$install_log" >&2
    exit 1
fi
# A missing browser is not fatal here: the browser tests then fail and say why.
if ! wait "$browser_pid"; then
    echo "installing chromium failed (the browser tests will fail):" >&2
    tail -20 "$browser_log" >&2
fi

# Two consecutive ports nothing listens on, for the broker and its controller.
port=$((20000 + RANDOM % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
    (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; do
    port=$((port + 2))
done
kafka_dir=$(mktemp -d)
kafka() { HUNTFLOW_KAFKA_PORT=$port HUNTFLOW_KAFKA_DIR=$kafka_dir scripts/kafka.sh "$@"; }
log=$(mktemp)
trap 'kafka stop; rm -rf "$kafka_dir" "$log"' EXIT
kafka start
export HUNTFLOW_KAFKA_BROKERS="127.0.0.1:$port"
# The library, the binary, the integration tests and the doc tests.
status=0
cargo test --release --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "$log" || status=$?
cargo test --release --locked --doc 2>&1 | tee -a "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
