#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ with cargo-fuzz (nightly). With --smoke, each target runs briefly
# (FUZZ_SECONDS, default 20) as a check that it builds and survives its seed corpus; scripts/test.sh
# uses that. Without it, each target runs for FUZZ_SECONDS (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-300}
[ "${1:-}" = "--smoke" ] && seconds=${FUZZ_SECONDS:-20}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain here; cargo-fuzz needs one (rustup toolchain install nightly)" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

cd fuzz
for target in $(cargo +nightly fuzz list); do
    # Seed corpus: the real configs we ship and test with.
    mkdir -p "corpus/$target"
    case $target in
        config) cp ../config/*.cfg ../tests/examples/*.cfg ../src/plumbing/golden/*.cfg "corpus/$target/" ;;
        client_hello) cp ../tests/captures/curl.bin ../tests/captures/openssl.bin ../tests/captures/python.bin "corpus/$target/" ;;
        http_request) cp ../tests/captures/*-http.bin "corpus/$target/" ;;
        chunked) printf '\0014\r\nWiki\r\n0\r\n\r\n' >"corpus/$target/seed" ;;
        proxy_header)
            printf 'PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\nGET' >"corpus/$target/v1"
            printf 'PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n' >"corpus/$target/v1-tcp6"
            printf 'PROXY UNKNOWN\r\n' >"corpus/$target/v1-unknown"
            # v2, TCP over IPv4, with an authority TLV; then with a (zero, so wrong) CRC32C TLV too.
            printf '\r\n\r\n\0\r\nQUIT\n\041\021\000\025\300\000\002\001\306\063\144\007\307\070\001\273\002\000\006a.test' >"corpus/$target/v2"
            printf '\r\n\r\n\0\r\nQUIT\n\041\021\000\034\300\000\002\001\306\063\144\007\307\070\001\273\002\000\006a.test\003\000\004\000\000\000\000' >"corpus/$target/v2-crc"
            ;;
    esac
    echo "fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tail -n 3
done
