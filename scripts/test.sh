#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, loader,
# reference model at 1/2/4 workers, golden demo output, generator, COST
# baseline, robustness, CLI). Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --release --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The library, the binary and the integration tests (the crate has no doc tests).
cargo test --release --locked --lib --bins --tests 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$log"
