#!/usr/bin/env bash
# Runs every netns test (netns-tests/t*.sh, in order), each bounded in time, prints PASS/FAIL per test
# (with the output of a failing one) and finally "netns: N passed, N failed". Exits non-zero if any
# test failed. Needs root.
#   netns-tests/run.sh             all tests, one after another
#   netns-tests/run.sh -j 4        all tests, up to 4 at a time (every test has its own namespaces)
#   netns-tests/run.sh t03 t08     only those
# GH_TEST_TIMEOUT (seconds, default 120) bounds each test; GATEHOUSE names the binary under test.
set -u
cd "$(dirname "$0")" || exit 1
[ "$(id -u)" = 0 ] || { echo "netns tests need root (network namespaces, nft, TPROXY): run as root" >&2; exit 1; }

parallel=1
while getopts j: opt; do
    case $opt in
    j) parallel=$OPTARG ;;
    *) echo "usage: $0 [-j N] [tNN ...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $parallel =~ ^[1-9][0-9]*$ ]] || { echo "-j needs a positive number" >&2; exit 2; }
limit=${GH_TEST_TIMEOUT:-120}

tests=()
if [ $# -gt 0 ]; then
    for t in "$@"; do
        t=${t##*/}
        m=("${t%.sh}"*.sh)
        [ -e "${m[0]}" ] || { echo "no test matches $t" >&2; exit 2; }
        for f in "${m[@]}"; do
            [[ " ${tests[*]} " == *" $f "* ]] || tests+=("$f")
        done
    done
else
    tests=(t*.sh)
fi

out=$(mktemp -d /tmp/gatehouse-netns-run.XXXXXX)
trap 'rm -rf "$out"' EXIT

# run_one TEST: runs it under timeout; leaves its output in $out/TEST.out, its exit code in .rc and
# its duration in .secs.
run_one() {
    local t=$1 start rc
    start=$(date +%s)
    timeout --kill-after=10 "$limit" bash "$t" >"$out/$t.out" 2>&1
    rc=$?
    [ "$rc" = 124 ] && echo "(timed out after ${limit}s)" >>"$out/$t.out"
    echo $(($(date +%s) - start)) >"$out/$t.secs"
    echo "$rc" >"$out/$t.rc"
}

pass=0 fail=0 failed=()
# report TEST: prints its result (and the output of a failure) and counts it.
report() {
    local t=$1
    if [ "$(cat "$out/$t.rc")" = 0 ]; then
        pass=$((pass + 1))
        echo "PASS $t ($(cat "$out/$t.secs")s)"
    else
        fail=$((fail + 1))
        failed+=("$t")
        echo "FAIL $t ($(cat "$out/$t.secs")s, exit $(cat "$out/$t.rc"))"
        sed 's/^/    /' "$out/$t.out"
    fi
}

if [ "$parallel" = 1 ]; then
    for t in "${tests[@]}"; do run_one "$t"; report "$t"; done
else
    # Start up to $parallel at a time; report in test order once all are done.
    for t in "${tests[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
        run_one "$t" &
    done
    wait
    for t in "${tests[@]}"; do report "$t"; done
fi

echo "netns: $pass passed, $fail failed"
[ "$fail" = 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
