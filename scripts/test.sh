#!/usr/bin/env bash
# Every test: formatting, lints, unit and loopback tests, then the netns tests against the release
# build. Run as root on Debian; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
section() { printf '\n==== %s\n' "$*"; }

section "dependencies"
bash scripts/install-deps.sh
section "cargo fmt --check"
cargo fmt --check
section "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
section "cargo test"
cargo test
section "cargo build --release"
cargo build --release
section "netns tests"
bash netns-tests/run.sh
