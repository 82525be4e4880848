#!/usr/bin/env bash
# The benchmark: direct routing, gatehouse and Debian's HAProxy on the same transparent L4 path, in one
# run, same topology, same origin, same client. Prints a markdown table (see docs/performance.md).
#
#   +-------------+        +--------------------------------+        +------------------+
#   | ghb90c      |  veth  | ghb90g                         |  veth  | ghb90s           |
#   | wrk, curl,  |--------| direct: ip_forward=1, no rules |--------| nginx :80        |
#   | idle conns  |        | gatehouse | haproxy: TPROXY,   |        | / (small), /big  |
#   | 10.90.1.2   |        | forwarding off, usesrc client  |        | 10.90.2.2        |
#   +-------------+        +--------------------------------+        +------------------+
#
# Columns: keep-alive req/s (wrk, 64 connections), new-connection req/s (wrk, Connection: close),
# bulk MB/s (100 MB object, curl, mean of BENCH_BULK_RUNS), RSS per idle proxied connection (KiB,
# IDLE_CONNS held open; growth of the proxy's VmRSS divided by the count).
# Env: BENCH_SECONDS (default 8), BENCH_BULK_RUNS (3), IDLE_CONNS (2000), GATEHOUSE, HAPROXY.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the bench makes network namespaces: run it as root" >&2; exit 1; }
bash scripts/install-deps.sh
[ -n "${GATEHOUSE:-}" ] || { cargo build --release 2>&1 | tail -n 1; }
SECS=${BENCH_SECONDS:-8}
BULK_RUNS=${BENCH_BULK_RUNS:-3}
IDLE=${IDLE_CONNS:-2000}
HAPROXY=${HAPROXY:-haproxy}
set +e
# shellcheck source=../netns-tests/lib.sh
. netns-tests/lib.sh
set +u
gh_init bench 90
gh_topology
mkdir -p "$GH_TMP/www"
head -c 100M /dev/zero >"$GH_TMP/www/big"
echo "small object" >"$GH_TMP/www/index.html"
gh_nginx "$S" web "listen 80 backlog=4096; access_log off;"

cat >"$GH_TMP/haproxy.cfg" <<EOF
global
    # This machine's hard open-file limit is 20000; HAProxy refuses to start if maxconn needs more.
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend gateway
    bind :::15080 v4v6 transparent
    default_backend original-destination
backend original-destination
    source 0.0.0.0 usesrc clientip
    server original 0.0.0.0
EOF

# The client holding idle connections: opens N, waits until killed.
cat >"$GH_TMP/idle.py" <<'EOF'
import socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[1], 80), timeout=5)
    conns.append(s)
print("open", flush=True)
time.sleep(600)
EOF

plumb() {  # install gatehouse's own unit by hand, for HAProxy (identical rules)
    "$GATEHOUSE" rules | sed -n '/^table/,/^}/p' | gh_x "$G" nft -f - || gh_fail "nft"
    # shellcheck disable=SC2086 # each line is an ip command, split into its words on purpose
    "$GATEHOUSE" rules | grep '^ip ' | while read -r cmd; do gh_x "$G" $cmd; done
}
unplumb() { gh_x "$G" "$GATEHOUSE" rules --remove >/dev/null; }

wrk_rate() {  # wrk_rate [extra wrk args]
    gh_x "$C" wrk -t1 -c64 -d"${SECS}s" "$@" "http://$SRV4/" 2>&1 | awk '/Requests\/sec/ {printf "%.0f", $2}'
}

bulk() {
    local _ total=0 speed
    for _ in $(seq "$BULK_RUNS"); do
        speed=$(gh_x "$C" curl -s -o /dev/null -w '%{speed_download}' --max-time 60 "http://$SRV4/big")
        total=$(awk -v a="$total" -v b="$speed" 'BEGIN {print a + b}')
    done
    awk -v t="$total" -v n="$BULK_RUNS" 'BEGIN {printf "%.0f", t / n / 1048576}'
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

idle_rss() {  # idle_rss PID: KiB per idle proxied connection
    local pid=$1 before after holder
    before=$(rss_kib "$pid")
    ip netns exec "$C" bash -c "ulimit -n 20000; exec python3 $GH_TMP/idle.py $SRV4 $IDLE" >"$GH_TMP/idle.out" 2>&1 &
    holder=$!
    for _ in $(seq 100); do grep -q open "$GH_TMP/idle.out" && break; sleep 0.1; done
    sleep 2
    after=$(rss_kib "$pid")
    kill "$holder"; wait "$holder" 2>/dev/null
    sleep 1
    awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f", (a - b) / n}'
}

declare -A R
measure() {  # measure NAME PID|-
    local name=$1 pid=$2
    echo "-- $name" >&2
    gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$SRV4/" || gh_fail "$name: path does not work"
    R[$name,ka]=$(wrk_rate)
    R[$name,new]=$(wrk_rate -H "Connection: close")
    R[$name,bulk]=$(bulk)
    if [ "$pid" = - ]; then R[$name,rss]="-"; else R[$name,rss]=$(idle_rss "$pid"); fi
}

# 1. direct routing
gh_forwarding 1
measure direct -
gh_forwarding 0

# 2. gatehouse (embedded default config unless BENCH_GATEHOUSE_CFG names one), logs to a file
if [ -n "${BENCH_GATEHOUSE_CFG:-}" ]; then
    gh_gatehouse "$G" gw -f "$BENCH_GATEHOUSE_CFG"
else
    gh_gatehouse "$G" gw
fi
measure gatehouse "${GH_PID[gw]}"
kill -TERM "${GH_PID[gw]}"; wait "${GH_PID[gw]}"

# 3. HAProxy, same plumbing
plumb
# ip netns exec, not the gh_x function, so that $! is HAProxy itself (its RSS is measured).
ip netns exec "$G" bash -c "ulimit -n \$(ulimit -Hn); exec $HAPROXY -db -f $GH_TMP/haproxy.cfg" >"$GH_TMP/haproxy.log" 2>&1 &
hpid=$!
GH_PIDS+=("$hpid")
sleep 1
kill -0 "$hpid" || gh_fail "haproxy did not start: $(cat "$GH_TMP/haproxy.log")"
measure haproxy "$hpid"
kill "$hpid"; wait "$hpid" 2>/dev/null
unplumb

echo
echo "$(date -u +%Y-%m-%d) · $(nproc) cores · kernel $(uname -r) · $("$GATEHOUSE" --version) · $($HAPROXY -v | head -n 1 | cut -d' ' -f1-3) · ${SECS}s per wrk run, $IDLE idle connections"
echo
echo "| path | keep-alive req/s (64 conns) | new-connection req/s | bulk MB/s (100 MB) | RSS per idle proxied conn (KiB) |"
echo "|---|---:|---:|---:|---:|"
for n in direct gatehouse haproxy; do
    echo "| $n | ${R[$n,ka]} | ${R[$n,new]} | ${R[$n,bulk]} | ${R[$n,rss]} |"
done
