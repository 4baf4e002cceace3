#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, loader,
# reference model at 1/2/4 workers, golden demo output, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --release --all-targets --locked -- -D warnings
cargo test --release --locked
