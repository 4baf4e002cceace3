#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, loader,
# reference model at 1/2/4 workers, golden demo output, generator, COST
# baseline, robustness, CLI, and the continuous job against a real
# Kafka-compatible broker). Ends with one "N passed, N failed" line.
#
# The broker (tansu) is built once into the tool cache
# (${HUNTFLOW_TOOLS:-~/.cache/huntflow/tools}, see scripts/broker.sh); the
# first build takes 10-20 minutes and runs while the project builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export HUNTFLOW_TOOLS="${HUNTFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/huntflow/tools}"

mkdir -p "$HUNTFLOW_TOOLS"
install_log="$HUNTFLOW_TOOLS/install.log"
scripts/broker.sh install >"$install_log" 2>&1 &
install_pid=$!

cargo fmt --all -- --check
cargo clippy --release --all-targets --locked -- -D warnings
cargo test --release --locked --lib --bins --tests --no-run

if ! wait "$install_pid"; then
    echo "installing the test broker failed:" >&2
    tail -40 "$install_log" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The library, the binary and the integration tests (the crate has no doc tests).
status=0
cargo test --release --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
