#!/usr/bin/env bash
# Runs every netns test (netns-tests/t*.sh), each bounded in time, and prints
# "netns: N passed, N failed". Exits non-zero if any failed. Needs root.
#   netns-tests/run.sh            all tests, one after another
#   netns-tests/run.sh t03 t08    only those
set -u
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "netns tests need root (network namespaces, nft, TPROXY)" >&2; exit 1; }
limit=${GH_TEST_TIMEOUT:-180}
pass=0 fail=0 failed=()
tests=(t*.sh)
if [ $# -gt 0 ]; then
    tests=()
    for t in "$@"; do tests+=("$(ls "$t"*.sh)"); done
fi
for t in "${tests[@]}"; do
    start=$(date +%s)
    if timeout --kill-after=10 "$limit" bash "$t" >"/tmp/netns-$t.out" 2>&1; then
        pass=$((pass + 1)); echo "PASS $t ($(( $(date +%s) - start ))s)"
    else
        fail=$((fail + 1)); failed+=("$t"); echo "FAIL $t ($(( $(date +%s) - start ))s)"
        sed 's/^/    /' "/tmp/netns-$t.out"
    fi
    rm -f "/tmp/netns-$t.out"
done
echo "netns: $pass passed, $fail failed"
[ "$fail" = 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
