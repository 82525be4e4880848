#!/usr/bin/env bash
# The one test command: formatting, lints, unit and loopback tests, the release build, then the netns
# tests against that build. Run as root on Debian (the netns tests need it); installs what it needs
# first. Works from any directory.
set -euo pipefail
cd "$(dirname "$0")/.."
section() { printf '\n==== %s\n' "$*"; }

section "dependencies"
# Sourced: it may add ~/.cargo/bin to PATH for the steps below.
# shellcheck source=install-deps.sh
. scripts/install-deps.sh

section "cargo fmt --check"
cargo fmt --check

section "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

section "cargo test"
cargo test

section "fuzz targets compile (cargo check --manifest-path fuzz/Cargo.toml)"
cargo check --manifest-path fuzz/Cargo.toml

section "benches/loadgen (the bench's load tool, its own crate): fmt, clippy, test"
lg=benches/loadgen/Cargo.toml
cargo fmt --check --manifest-path "$lg"
cargo clippy --manifest-path "$lg" --all-targets -- -D warnings
cargo test --manifest-path "$lg"

section "cargo build --release"
cargo build --release

# The binary just built (cargo honours CARGO_TARGET_DIR, relative to this directory).
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/gatehouse")
section "netns tests ($bin)"
GATEHOUSE=$bin bash netns-tests/run.sh
