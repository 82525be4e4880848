#!/usr/bin/env bash
# The benchmark: direct routing, gatehouse and Debian's HAProxy on the same transparent L4 path, in one
# run, same topology, same origin, same client. Prints the results as a table and as markdown to paste
# into docs/performance.md (which explains the columns and records runs).
#
#   +-------------+        +--------------------------------+        +------------------+
#   | gh90c       |  veth  | gh90g                          |  veth  | gh90s            |
#   | wrk, curl,  |--------| direct: ip_forward=1, no rules |--------| nginx :80, :443  |
#   | idle conns  |        | gatehouse | haproxy: TPROXY,   |        | / (small), /big  |
#   | 10.90.1.2   |        | forwarding off, usesrc client  |        | 10.90.2.2, .3    |
#   +-------------+        +--------------------------------+        +------------------+
#     | 10.90.5.1                 | 10.90.4.1
#   +------------------------------------------------------------------------------------+
#   | gh90d  dnsmasq: 10.90.5.2 for the client: bench.example.test -> 10.90.9.9 (intercepted)
#   |                 10.90.4.2 for the proxies: bench.example.test -> 10.90.2.2 (the server)
#   +------------------------------------------------------------------------------------+
#
# Columns: keep-alive req/s (wrk, 64 connections), new-connection req/s (wrk, Connection: close),
# TLS req/s (wrk over HTTPS with Connection: close, so a full handshake per request, to a name the proxy
# routes by its SNI and resolves through DNS: gatehouse's `server %[req.ssl_sni]:443 resolvers dns`
# against HAProxy's do-resolve + set-dst; direct routing dials the server's address, without SNI),
# L7 http req/s (wrk, 64 connections, to the proxy's own address :8080 in mode http: keep-alive on both
# sides, option forwardfor, round robin over two server addresses 10.90.2.2 and .3 of the same nginx;
# "-" for direct routing; HAProxy runs it twice: as installed, logging nothing, and with `log stdout` and
# `option httplog`, the line per request that gatehouse always writes), TLS termination req/s (the L7
# job over HTTPS to the proxy's own :8443, the same certificate and key for both proxies: keep-alive,
# then Connection: close for a full handshake per request; "-" for direct routing), bulk MiB/s (100 MiB object, curl, mean of BENCH_BULK_RUNS), RSS per idle proxied connection (KiB:
# IDLE_CONNS held open, growth of the proxy's VmRSS divided by their count; "-" for direct routing).
# Latency at a fixed rate (p50 and p99 µs, and for the proxies the p99 added over direct routing):
# benches/loadgen in `rate` mode on the keep-alive column's path and URL, BENCH_LAT_RATE requests/s over
# 64 keep-alive connections, open loop (each request's latency counts from when it was due, so queuing
# shows; wrk's closed loop would hide it), the same rate for every setup; each setup's keep-alive peak is
# printed beside it.
# The scaling run (a table of its own, for each proxy): for each level N of BENCH_SCALE, a freshly
# started proxy, N connections opened through the transparent path with benches/loadgen `hold` (256 at
# a time, one request each) and held, then BENCH_SCALE_RATE requests/s spread over them for
# BENCH_SCALE_SECONDS; per N, the proxy's VmRSS growth per connection (read once they are all open) and
# its CPU per request during the rate phase. Levels that need more open files than the hard limit
# allows are skipped, with the reason printed, and the largest level that fits is run instead.
#
# Env: GATEHOUSE (binary; default target/release/gatehouse, or under CARGO_TARGET_DIR, built with cargo first), HAPROXY (haproxy),
# BENCH_SECONDS (8, per wrk run), BENCH_BULK_RUNS (3), IDLE_CONNS (2000), BENCH_ORDER ("direct gatehouse
# haproxy pairs"), BENCH_GATEHOUSE_CFG (a config file for gatehouse instead of the bench's own, which is the
# embedded default plus the SNI frontend on port 443; keep ports 80 and 443 intercepted),
# LOADGEN (binary; default target/release/loadgen, built with cargo first), BENCH_LAT_RATE (20000),
# BENCH_LAT_SECONDS (5), BENCH_SCALE ("1000 5000 20000"; empty: no scaling run), BENCH_SCALE_RATE
# (5000), BENCH_SCALE_SECONDS (5),
# BENCH_PAIRS (6: the paired rounds, below; 0: none), BENCH_PAIR_SECONDS (5, per column and round),
# BENCH_TIME_LIMIT (1200: the whole run, which takes about 9 minutes with the defaults on 2 cores, of
# which the latency phases take 25 s, the scaling run 90 s and the paired rounds 3.5 minutes; each phase
# has its own, shorter limit; BENCH_ORDER=pairs runs the paired rounds alone),
# GH_KEEP_TMP=1 (keep the temp dir with wrk outputs and logs).
#
# Network safety: every packet stays between the three namespaces made here (addresses 10.90.0.0/16
# exist nowhere else); the only commands run outside them are `gatehouse rules` (prints, touches nothing)
# and the package check. Everything is bounded in time; the exit trap removes namespaces and processes.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" = 0 ] || { echo "the bench makes network namespaces: run it as root" >&2; exit 1; }

# A time limit for the whole run. timeout signals the script and its process group; lib.sh's traps then
# clean up. Each step below has its own, shorter limit as well.
if [ -z "${GH_BENCH_LIMITED:-}" ]; then
    export GH_BENCH_LIMITED=1
    exec timeout -k 20 "${BENCH_TIME_LIMIT:-1200}" bash "$0" "$@"
fi

HAPROXY=${HAPROXY:-haproxy}
missing=0
for t in ip nft wrk nginx curl python3 ss flock "$HAPROXY"; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing=1
done
[ "$missing" = 0 ] || bash scripts/install-deps.sh || true
if [ -z "${GATEHOUSE:-}" ]; then
    # cargo builds into CARGO_TARGET_DIR when it is set: look there.
    GATEHOUSE=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/gatehouse
    if command -v cargo >/dev/null; then
        timeout 1800 cargo build --release 2>&1 | tail -n 1
    fi
fi
if [ -z "${LOADGEN:-}" ]; then
    LOADGEN=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/loadgen
    if command -v cargo >/dev/null; then
        # Its own crate (benches/loadgen/Cargo.toml); built into target/ beside gatehouse.
        timeout 900 cargo build --release --manifest-path benches/loadgen/Cargo.toml \
            --target-dir "$(realpath -m "${CARGO_TARGET_DIR:-target}")" 2>&1 | tail -n 1
    fi
fi
SECS=${BENCH_SECONDS:-8}
LAT_RATE=${BENCH_LAT_RATE:-20000}
LAT_SECS=${BENCH_LAT_SECONDS:-5}
LAT_CONNS=64
SCALE=${BENCH_SCALE-1000 5000 20000}
SCALE_RATE=${BENCH_SCALE_RATE:-5000}
SCALE_SECS=${BENCH_SCALE_SECONDS:-5}
BULK_RUNS=${BENCH_BULK_RUNS:-3}
IDLE=${IDLE_CONNS:-2000}
ORDER=${BENCH_ORDER:-direct gatehouse haproxy pairs}
PAIRS=${BENCH_PAIRS:-6}
PAIR_SECS=${BENCH_PAIR_SECONDS:-5}
[[ $PAIRS =~ ^[0-9]+$ ]] || { echo "BENCH_PAIRS: '$PAIRS' is not a number of rounds" >&2; exit 1; }

# shellcheck source=../netns-tests/lib.sh
. netns-tests/lib.sh
gh_init bench 90
for t in ip nft wrk nginx curl python3 ss "$HAPROXY"; do
    command -v "$t" >/dev/null 2>&1 || gh_fail "$t is missing (scripts/install-deps.sh installs it)"
done

# The scaling run's levels. A proxied connection holds two descriptors in the proxy (client side and
# server side), one in nginx and one in the client; FD_SPARE more cover listeners, logs, epoll and the
# rest. Every process here inherits this shell's hard open-file limit, which only CAP_SYS_RESOURCE can
# raise: try to raise it to what the largest level needs; skip, and say why, the levels that still do
# not fit, and run the largest round level that does instead, so that the curve has a top.
FD_SPARE=200
SCALE_LEVELS=()
SCALE_SKIPPED=()
HARD_NOFILE=$(ulimit -Hn)
[ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=1048576
want=0
for n in $SCALE; do
    [[ $n =~ ^[1-9][0-9]{0,6}$ ]] || gh_fail "BENCH_SCALE: '$n' is not a number of connections"
    [ $((2 * n + FD_SPARE)) -le "$want" ] || want=$((2 * n + FD_SPARE))
done
if [ "$want" -gt "$HARD_NOFILE" ] && ulimit -Hn "$want" 2>/dev/null; then
    HARD_NOFILE=$want
fi
for n in $SCALE; do
    if [ $((2 * n + FD_SPARE)) -gt "$HARD_NOFILE" ]; then
        SCALE_SKIPPED+=("$n connections: skipped, they need $((2 * n + FD_SPARE)) open files in the proxy (2 per proxied connection, + $FD_SPARE) and the hard limit here is $HARD_NOFILE (ulimit -Hn), which only CAP_SYS_RESOURCE could raise")
    else
        SCALE_LEVELS+=("$n")
    fi
done
if [ ${#SCALE_SKIPPED[@]} -gt 0 ]; then
    top=$(((HARD_NOFILE - FD_SPARE) / 2 / 1000 * 1000))
    fits=1
    for n in "${SCALE_LEVELS[@]}"; do [ "$n" -lt "$top" ] || fits=0; done
    if [ "$top" -gt 0 ] && [ "$fits" = 1 ]; then
        SCALE_LEVELS+=("$top")
        SCALE_SKIPPED+=("$top connections: added, the largest round level that fits the hard limit of $HARD_NOFILE")
    fi
fi
mapfile -t SCALE_LEVELS < <(printf '%s\n' "${SCALE_LEVELS[@]}" | sort -n | uniq | grep .)
# nginx holds one descriptor per connection: room for the largest level, and more, because nginx
# closes idle keep-alive connections (32 at a time, as it accepts) once fewer than 1/16 of its
# worker_connections are free: the held connections would be cut under the scaling run.
NGINX_CONNS=4096
for n in "${SCALE_LEVELS[@]}"; do
    [ $((n * 5 / 4 + 512)) -le "$NGINX_CONNS" ] || NGINX_CONNS=$((n * 5 / 4 + 512))
done
[ $((NGINX_CONNS + 64)) -le "$HARD_NOFILE" ] || NGINX_CONNS=$((HARD_NOFILE - 64))
# Run a private copy: a build finishing during the bench must not swap the binary under us.
cp "$GATEHOUSE" "$GH_TMP/gatehouse" || gh_fail "cannot copy $GATEHOUSE"
cp "$LOADGEN" "$GH_TMP/loadgen" || gh_fail "cannot copy $LOADGEN (build it: cargo build --release --manifest-path benches/loadgen/Cargo.toml)"
LOADGEN=$GH_TMP/loadgen
BIN_DESC="$("$GATEHOUSE" --version) ($GATEHOUSE, built $(date -u -r "$GATEHOUSE" '+%Y-%m-%d %H:%M') UTC, sha256 $(sha256sum "$GATEHOUSE" | cut -c1-12))"
GATEHOUSE=$GH_TMP/gatehouse

mkdir -p "$GH_TMP/www"
head -c 100M /dev/zero >"$GH_TMP/www/big"
echo "small object" >"$GH_TMP/www/index.html"
gh_pki "DNS:bench.example.test,IP:10.90.2.2,IP:10.90.1.1"
# The bundle both proxies terminate TLS with (HAProxy's crt format: certificate, then key).
cat "$GH_TMP/pki/server.crt" "$GH_TMP/pki/server.key" >"$GH_TMP/pki/bundle.pem"
NAME=bench.example.test
FAKE=10.90.9.9 # what the client's DNS says NAME is: routed to the gateway, intercepted there

# Each setup gets the topology and origin afresh: new namespaces, so that none inherits the previous
# one's TIME_WAIT sockets (tens of thousands after the Connection: close run, alive for 60 s) or
# conntrack state. gh_ns kills whatever runs in a namespace it replaces.
# forget PID: a process that has ended leaves the cleanup list (its number may be reused).
forget() {
    local p keep=()
    for p in "${GH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    GH_PIDS=("${keep[@]}")
}
NGINX_MASTER=
fresh_topology() {
    gh_topology
    gh_dns_topology
    # A second server address for the L7 run's two servers (the same nginx answers on both).
    SRV4B=10.$GH_N.2.3
    ip -n "$S" addr add "$SRV4B/24" dev "${GH_P}s0"
    printf '%s %s\n' "$SRV4" "$NAME" >"$GH_TMP/honest.hosts"
    printf '%s %s\n' "$FAKE" "$NAME" >"$GH_TMP/steer.hosts"
    # Long TTLs, so that DNS costs a proxy as little as its cache allows: gatehouse keeps an answer for
    # its TTL. HAProxy 2.6 keeps a do-resolve answer ('hold valid') only while some other connection
    # still waits on the same name, so it asks again after every lull; the notes say how often each
    # proxy asked during its TLS run.
    GH_DNS_TTL=300 gh_dnsmasq honest "$DNSG4"
    GH_DNS_TTL=300 gh_dnsmasq steer "$DNSC4"
    if [ -n "$NGINX_MASTER" ]; then
        gh_wait_gone "$NGINX_MASTER"
        forget "$NGINX_MASTER"
    fi
    rm -f "$GH_TMP/nginx-web/nginx.pid"
    # TLS without session resumption: every connection is a full handshake.
    gh_nginx "$S" web "listen 80 backlog=4096; listen 443 ssl backlog=4096; access_log off;
        ssl_certificate $GH_TMP/pki/server.crt; ssl_certificate_key $GH_TMP/pki/server.key;
        ssl_session_cache off; ssl_session_tickets off;" "$NGINX_CONNS"
    NGINX_MASTER=${GH_PIDS[-1]}
    # nginx runs one worker: its CPU use is reported next to the proxy's.
    NGINX_PID=$(pgrep -P "$NGINX_MASTER" | head -n 1)
    [ -n "$NGINX_PID" ] || gh_fail "no nginx worker"
    # Deleting the previous namespaces (and their sockets: up to a hundred thousand in TIME_WAIT after a
    # new-connection run) is the kernel's asynchronous work, and it can take the better part of a core
    # for tens of seconds: the setup measured next would pay for it. Wait until the machine is quiet.
    settle
}

# settle: waits (at most 60 s) until the machine has been quiet, under 10 % of all cores busy, for a
# whole second; says so when it never was.
settle() {
    local m0 m1 busy i
    for i in $(seq 60); do
        m0=$(machine_ticks)
        sleep 1
        m1=$(machine_ticks)
        busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2] + 1e-9)}')
        if [ "$busy" -lt 10 ]; then
            [ "$i" -le 2 ] || NOTES+=("waited $i s for the machine to go quiet before ${setup:-a setup}")
            return 0
        fi
    done
    NOTES+=("the machine never went quiet (under 10 % busy) within 60 s before a setup; last second: $busy %")
}

# HAProxy as its documentation describes a transparent proxy to the original destination (configuration
# manual: "source ... usesrc clientip", "bind ... transparent", "server ... 0.0.0.0"); threads default to
# one per core. maxconn: this machine's hard open-file limit is 20000 and HAProxy refuses to start when
# maxconn needs more file descriptors than that; 9000 is far above anything the bench opens but the
# scaling run's top level (which is 9000 here: the hard limit stops both proxies near 10000).
HAPROXY_MAXCONN=9000
cat >"$GH_TMP/haproxy.cfg" <<EOF
global
    maxconn $HAPROXY_MAXCONN
    # Only the l7log frontend logs (the same httplog line per request that gatehouse writes).
    log stdout format raw local0
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
resolvers dns
    nameserver honest 10.90.4.2:53
    hold valid 300s
frontend gateway
    bind :::15080 v4v6 transparent
    default_backend original-destination
backend original-destination
    source 0.0.0.0 usesrc clientip
    server original 0.0.0.0
# Routing by SNI through DNS, HAProxy's way (configuration manual: do-resolve, set-dst): resolve the
# name into a variable, make it the destination, and let a 0.0.0.0 server dial it.
# IPv4 only: on a dual-stack socket the client's address is IPv4-mapped IPv6, which HAProxy cannot
# use as the source towards the IPv4 address do-resolve found ("Cannot bind to tproxy source address").
frontend tls
    bind 0.0.0.0:15443 transparent
    tcp-request inspect-delay 5s
    tcp-request content do-resolve(txn.dstip,dns,ipv4) req.ssl_sni,lower
    tcp-request content set-dst var(txn.dstip)
    tcp-request content accept if { req.ssl_hello_type 1 }
    default_backend by-name
backend by-name
    source 0.0.0.0 usesrc clientip
    server by-name 0.0.0.0:443
# L7: http mode with keep-alive on both sides (HAProxy's default), X-Forwarded-For, two servers.
frontend l7
    mode http
    bind 10.90.1.1:8080
    option forwardfor
    default_backend two
backend two
    mode http
    balance roundrobin
    server a 10.90.2.2:80
    server b 10.90.2.3:80
# TLS termination: the L7 job over HTTPS, the same certificate as gatehouse's.
frontend l7tls
    mode http
    bind 10.90.1.1:8443 ssl crt $GH_TMP/pki/bundle.pem
    option forwardfor
    default_backend two
# The same, writing an httplog line per request as gatehouse does (HAProxy writes each to stdout).
frontend l7log
    mode http
    bind 10.90.1.1:8081
    log global
    option httplog
    option forwardfor
    default_backend two
EOF

# gatehouse: the embedded default (port 80 to the original destination) plus the same SNI job on 443.
cat >"$GH_TMP/gatehouse.cfg" <<EOF
resolvers dns
    nameserver honest 10.90.4.2:53
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend gateway
    bind [::]:15080 transparent v4v6
    intercept tcp dport 80 iif !lo
    default_backend original-destination
frontend tls
    bind [::]:15443 transparent v4v6
    intercept tcp dport 443 iif !lo
    tcp-request inspect-delay 5s
    default_backend by-name
backend original-destination
    source 0.0.0.0 usesrc clientip
    server original 0.0.0.0
backend by-name
    source 0.0.0.0 usesrc clientip
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name .example.test
    allow-net 10.90.0.0/16
# L7: http mode with keep-alive on both sides, X-Forwarded-For, two servers (the same as HAProxy's).
# Not logged, as HAProxy's l7 frontend (it has no log line); l7log on 8081 logs each request in
# both proxies (raw lines on standard output), the same job with its log.
frontend l7
    mode http
    bind 10.90.1.1:8080
    no log
    option forwardfor
    default_backend two
frontend l7log
    mode http
    bind 10.90.1.1:8081
    option forwardfor
    default_backend two
# TLS termination: the L7 job over HTTPS, the same certificate as HAProxy's; not logged either.
frontend l7tls
    mode http
    bind 10.90.1.1:8443 ssl crt $GH_TMP/pki/bundle.pem
    no log
    option forwardfor
    default_backend two
backend two
    mode http
    balance roundrobin
    server a 10.90.2.2:80
    server b 10.90.2.3:80
EOF
GATEHOUSE_CFG=${BENCH_GATEHOUSE_CFG:-$GH_TMP/gatehouse.cfg}

# The client holding idle connections: opens N to HOST:80, says so, and waits until killed (at most
# 120 s). Exits 1 if any connection cannot be made.
cat >"$GH_TMP/idle.py" <<'EOF'
import socket, sys, time
conns = []
try:
    for _ in range(int(sys.argv[2])):
        conns.append(socket.create_connection((sys.argv[1], 80), timeout=5))
except OSError as e:
    print(f"failed after {len(conns)}: {e}", flush=True)
    sys.exit(1)
print(f"open {len(conns)}", flush=True)
time.sleep(120)
EOF

# HAProxy gets gatehouse's own plumbing, installed by hand: the nft table and the ip rule/route lines
# that `gatehouse rules` prints for gatehouse's config.
"$GATEHOUSE" rules -f "$GATEHOUSE_CFG" >"$GH_TMP/rules.txt" || gh_fail "gatehouse rules"
plumb() {
    sed -n '/^table/,/^}/p' "$GH_TMP/rules.txt" | gh_x "$G" nft -f - || gh_fail "nft"
    local cmd
    while read -r cmd; do
        # shellcheck disable=SC2086 # each line is an ip command, split into its words on purpose
        gh_x "$G" $cmd || gh_fail "plumbing: $cmd"
    done < <(grep '^ip ' "$GH_TMP/rules.txt")
}
unplumb() { gh_x "$G" "$GATEHOUSE" rules --remove >/dev/null 2>&1; }

# CPU seconds (user + system) a process has used, in clock ticks; user_ticks: user space alone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
user_ticks() { awk '{print $14}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The whole machine's busy and total time so far, in clock ticks (all cores; steal counts as busy: time
# the host did not give us).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# ceiling NAME KIND: the req/s NAME's run of KIND could have reached had the proxy's own user-space work
# cost nothing, the machine as busy as it was: each request took busy × cores / rate of the machine, of
# which the proxy's user space was PUSR / rate; take that part away. (Meaningful when the machine was
# busy, as it is in every keep-alive run here: then the rate is what the CPU allows.) The kernel's
# work for the proxy (two TCP connections where direct routing has one) is left in: it is the same
# system calls whichever proxy makes them.
ceiling() {
    awk -v r="${R[$1,$2]}" -v b="${BUSY[$1,$2]}" -v u="${PUSR[$1,$2]:-0}" -v n="$(nproc)" \
        'BEGIN {t = b / 100 * n * 1e6 / r; y = u * 1e4 / r; printf "%.0f", (t > y) ? r * t / (t - y) : 0}'
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# wrk_run NAME KIND PID [wrk args]: req/s into R[NAME,KIND]; the proxy's CPU use into PCPU[NAME,KIND]
# (% of a core; its user-space part into PUSR), nginx's into NCPU, the machine's busy share into BUSY (%).
# URL (default http://SRV4/) is the target.
wrk_run() {
    local name=$1 kind=$2 pid=$3 out=$GH_TMP/$1-$2.wrk t0 t1 n0 n1 u0 u1 m0 m1
    shift 3
    t0=$(cpu_ticks "$pid") n0=$(cpu_ticks "$NGINX_PID") u0=$(user_ticks "$pid") m0=$(machine_ticks)
    gh_x "$C" timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" --timeout 5s "$@" "${URL:-http://$SRV4/}" >"$out" 2>&1
    t1=$(cpu_ticks "$pid") n1=$(cpu_ticks "$NGINX_PID") u1=$(user_ticks "$pid") m1=$(machine_ticks)
    BUSY[$name,$kind]=$(awk -v a="$m0" -v b="$m1" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2])}')
    R[$name,$kind]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out")
    [ -n "${R[$name,$kind]}" ] || gh_fail "$name $kind: wrk reported no rate: $(cat "$out")"
    # Errors are reported under the table, not hidden.
    local errs
    errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | paste -sd';' -)
    [ -z "$errs" ] || NOTES+=("$name $kind: wrk:$errs")
    if [ "$pid" != - ]; then
        PCPU[$name,$kind]=$(awk -v t=$((t1 - t0)) -v s="$SECS" 'BEGIN {printf "%.0f", t / s}')
        PUSR[$name,$kind]=$(awk -v t=$((u1 - u0)) -v s="$SECS" 'BEGIN {printf "%.1f", t / s}')
    fi
    NCPU[$name,$kind]=$(awk -v t=$((n1 - n0)) -v s="$SECS" 'BEGIN {printf "%.0f", t / s}')
}

bulk() {  # bulk NAME: mean MiB/s of BULK_RUNS downloads of the 100 MiB object
    local name=$1 _ out code size speed total=0
    for _ in $(seq "$BULK_RUNS"); do
        out=$(gh_x "$C" curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
            --max-time 60 "http://$SRV4/big")
        read -r code size speed <<<"$out"
        if [ "$code" != 200 ] || [ "$size" != 104857600 ]; then gh_fail "$name bulk: got '$out'"; fi
        total=$(awk -v a="$total" -v b="$speed" 'BEGIN {print a + b}')
    done
    R[$name,bulk]=$(awk -v t="$total" -v n="$BULK_RUNS" 'BEGIN {printf "%.0f", t / n / 1048576}')
}

# Queries the proxies' dnsmasq has logged from the gateway so far (the log outlives each topology).
dns_queries() { grep -c "query\\[.* from 10\\.$GH_N\\.4\\.1\$" "$GH_TMP/honest-dns.log"; }

established() { gh_x "$G" ss -Htn state established | wc -l; }

idle_rss() {  # idle_rss NAME PID: KiB per idle proxied connection
    local name=$1 pid=$2 before after holder _ n
    before=$(rss_kib "$pid")
    ip netns exec "$C" bash -c "ulimit -n \$(ulimit -Hn); exec python3 $GH_TMP/idle.py $SRV4 $IDLE" \
        >"$GH_TMP/idle-$name.out" 2>&1 {GH_LOCK_FD}>&- &
    holder=$!
    GH_PIDS+=("$holder")
    for _ in $(seq 300); do
        grep -qE '^(open|failed)' "$GH_TMP/idle-$name.out" && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "^open $IDLE" "$GH_TMP/idle-$name.out" ||
        gh_fail "$name: idle connections: $(cat "$GH_TMP/idle-$name.out")"
    # Each idle connection is two sockets in the gateway (client side and server side).
    for _ in $(seq 100); do
        n=$(established)
        [ "$n" -ge $((2 * IDLE)) ] && break
        sleep 0.1
    done
    [ "$n" -ge $((2 * IDLE)) ] || gh_fail "$name: only $n established sockets in the gateway for $IDLE idle connections"
    # Held idle: gatehouse parks a session after 5 s of quiet (tune.idle-park) and gives the freed
    # memory back within the next second.
    sleep 7
    after=$(rss_kib "$pid")
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    forget "$holder"
    R[$name,rss]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f", (a - b) / n}')
    NOTES+=("$name idle: VmRSS $before -> $after KiB with $IDLE idle connections ($n sockets in the gateway)")
}

# kv KEY LINE: the value of KEY=value in loadgen's result line.
kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2; exit}'; }

# CPU time a process's threads have used, in ns (schedstat: finer than the 10 ms ticks of /proc/PID/stat,
# which would be a few percent of a 5 s run at a few thousand requests per second).
cpu_ns() {
    local t sum=0 v
    for t in /proc/"$1"/task/*/schedstat; do
        read -r v _ 2>/dev/null <"$t" && sum=$((sum + v))
    done
    echo "$sum"
}

# lat_run NAME PID|-: latency at LAT_RATE requests/s on the keep-alive column's path, open loop, into
# R[NAME,p50] and R[NAME,p99] (µs).
lat_run() {
    local name=$1 pid=$2 out=$GH_TMP/$1-lat.out line c0 c1
    c0=$([ "$pid" = - ] || cpu_ns "$pid")
    gh_x "$C" timeout $((LAT_SECS + 30)) "$LOADGEN" rate "$SRV4:80" --conns "$LAT_CONNS" --rate "$LAT_RATE" \
        --secs "$LAT_SECS" --warmup 1 >"$out" 2>&1
    c1=$([ "$pid" = - ] || cpu_ns "$pid")
    line=$(grep '^result ' "$out")
    [ -n "$line" ] || gh_fail "$name latency: loadgen reported nothing: $(cat "$out")"
    R[$name,p50]=$(kv p50_us "$line") R[$name,p99]=$(kv p99_us "$line")
    local ndone errs rate
    ndone=$(kv "done" "$line") errs=$(kv errors "$line") rate=$(kv rate "$line")
    LATNOTE[$name]="$rate req/s done ($(kv unsent "$line") never sent, $errs errors, $(kv queued "$line") waited for a connection); p50 ${R[$name,p50]}, p90 $(kv p90_us "$line"), p99 ${R[$name,p99]}, p99.9 $(kv p999_us "$line"), max $(kv max_us "$line") µs; loadgen's own timer late by p50 $(kv lag_p50_us "$line"), p99 $(kv lag_p99_us "$line") µs (included), loadgen CPU $(kv client_cpu_pct "$line") % of a core"
    if [ "$pid" != - ] && [ "${ndone:-0}" -gt 0 ]; then
        LATNOTE[$name]+="; proxy CPU $(awk -v c=$((c1 - c0)) -v n="$ndone" 'BEGIN {printf "%.1f", c / 1000 / n}') µs per request"
    fi
    # A run that did not keep the rate measured something else: say so where the figures are.
    if [ "${errs:-1}" != 0 ] || [ "${rate:-0}" -lt $((LAT_RATE * 98 / 100)) ]; then
        NOTES+=("$name latency: the rate was not held or requests failed: $(grep -v '^result ' "$out")")
    fi
}

# wait_line PATTERN FILE PID SECONDS: waits for a line matching PATTERN in FILE while PID runs.
wait_line() {
    local _
    for _ in $(seq $(($4 * 20))); do
        grep -qE "$1" "$2" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    grep -qE "$1" "$2" 2>/dev/null
}

# scale_level NAME PID N: N connections through the freshly started proxy PID, held, then SCALE_RATE
# requests/s spread over them for SCALE_SECS. Into S[NAME,N,*]: rss (KiB per connection), cpu (µs per
# request), pct (% of a core), p99 (µs), errors; or S[NAME,N,fail] with what went wrong.
scale_level() {
    local name=$1 pid=$2 n=$3 out=$GH_TMP/$1-scale-$3.out lg before after socks c0 c1 open line ok ndone
    # One request first, and a moment: a proxy that has just said it is ready may still be starting
    # threads and touching its code for the first time (a first try read gatehouse's VmRSS at 2.9 MiB
    # where it settles at 11.4), which is not per-connection memory.
    gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$SRV4/" || gh_fail "$name: the path does not work"
    sleep 1
    before=$(rss_kib "$pid")
    # The client and the gateway hold tens of thousands of TIME_WAIT sockets by the last level: the
    # whole port range, and reuse, so that none of that stands in the way.
    gh_x "$C" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
    gh_x "$G" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
    # Opening is bounded by loadgen (5 s per connect and per first request, 256 at a time); the whole
    # level by this timeout.
    ip netns exec "$C" bash -c "ulimit -n \$(ulimit -Hn); exec timeout $((SCALE_SECS + 120)) $LOADGEN hold $SRV4:80 \
        --conns $n --rate $SCALE_RATE --secs $SCALE_SECS --pause 2 --linger 1" >"$out" 2>&1 {GH_LOCK_FD}>&- &
    lg=$!
    GH_PIDS+=("$lg")
    if wait_line '^open ' "$out" "$lg" 100; then
        sleep 1
        after=$(rss_kib "$pid")
        socks=$(established)
        wait_line '^rate-start' "$out" "$lg" 10
        c0=$(cpu_ns "$pid")
        wait_line '^rate-end' "$out" "$lg" $((SCALE_SECS + 10))
        c1=$(cpu_ns "$pid")
    fi
    wait_line '^result ' "$out" "$lg" 30
    { kill "$lg" && wait "$lg"; } 2>/dev/null
    forget "$lg"
    open=$(grep '^open ' "$out") line=$(grep '^result ' "$out")
    ok=$(kv first_ok "$open") ndone=$(kv "done" "$line")
    if [ -z "$line" ] || [ -z "${c1:-}" ] || [ "${ok:-0}" = 0 ] || [ "${ndone:-0}" = 0 ]; then
        S[$name,$n,fail]="no result: $(tr '\n' ' ' <"$out" | cut -c1-300)"
        return
    fi
    S[$name,$n,rss]=$(awk -v a="$after" -v b="$before" -v n="$ok" 'BEGIN {printf "%.2f", (a - b) / n}')
    S[$name,$n,cpu]=$(awk -v c=$((c1 - c0)) -v n="$ndone" 'BEGIN {printf "%.1f", c / 1000 / n}')
    S[$name,$n,pct]=$(awk -v c=$((c1 - c0)) -v s="$SCALE_SECS" 'BEGIN {printf "%.0f", c / 1e7 / s}')
    S[$name,$n,p99]=$(kv p99_us "$line")
    S[$name,$n,errors]=$(($(kv errors "$line") + $(kv unsent "$line") + $(kv first_failed "$open") + $(kv connect_failed "$open")))
    S[$name,$n,note]="$ok of $n open ($socks sockets in the gateway), VmRSS $before -> $after KiB; $ndone requests ($(kv rate "$line")/s)"
}

# scale NAME START STOP: the scaling run's levels, each on a proxy started afresh by START (which sets
# SPID) and stopped by STOP, so that memory freed by one level cannot be reused by the next.
scale() {
    local name=$1 start=$2 stop=$3 n
    for n in "${SCALE_LEVELS[@]}"; do
        if [ "$name" = haproxy ] && [ "$n" -gt "$HAPROXY_MAXCONN" ]; then
            S[$name,$n,fail]="skipped: above the bench's HAProxy maxconn ($HAPROXY_MAXCONN)"
            continue
        fi
        gh_log "$name: scaling, $n connections"
        "$start"
        scale_level "$name" "$SPID" "$n"
        "$stop"
    done
}

declare -A R PCPU PUSR BUSY NCPU S LATNOTE
NOTES=()
measure() {  # measure NAME PID|-
    local name=$1 pid=$2
    gh_log "$name"
    gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$SRV4/" || gh_fail "$name: the path does not work"
    wrk_run "$name" ka "$pid"
    lat_run "$name" "$pid"
    wrk_run "$name" new "$pid" -H "Connection: close"
    # TLS: a full handshake per request. Through a proxy, to the name (which the client's DNS points
    # at an intercepted address); directly, to the server's address.
    local url=https://$NAME/
    [ "$pid" = - ] && url=https://$SRV4/
    gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" -o /dev/null "$url" ||
        gh_fail "$name: the TLS path does not work ($url)"
    local q0
    q0=$(dns_queries)
    URL=$url wrk_run "$name" tls "$pid" -H "Connection: close"
    [ "$pid" = - ] || NOTES+=("$name tls: $(($(dns_queries) - q0)) DNS queries from the gateway during the TLS run")
    # L7 (http mode, keep-alive, forwardfor, round robin over two servers); no direct equivalent.
    if [ "$pid" = - ]; then
        R[$name,l7]=-
    else
        gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$GWC4:8080/" ||
            gh_fail "$name: the L7 path does not work"
        URL=http://$GWC4:8080/ wrk_run "$name" l7 "$pid"
        # Both again with an httplog line per request.
        URL=http://$GWC4:8081/ wrk_run "$name" l7log "$pid"
    fi
    # TLS termination (the L7 job over HTTPS): keep-alive, then a full handshake per request.
    if [ "$pid" = - ]; then
        R[$name,tlska]=- R[$name,tlsnew]=-
    else
        gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" -o /dev/null "https://$GWC4:8443/" ||
            gh_fail "$name: the TLS termination path does not work"
        URL=https://$GWC4:8443/ wrk_run "$name" tlska "$pid"
        URL=https://$GWC4:8443/ wrk_run "$name" tlsnew "$pid" -H "Connection: close"
    fi
    bulk "$name"
    # Idle memory is measured on a fresh proxy (fresh_idle), not after the runs above.
    [ "$pid" = - ] && R[$name,rss]="-"
}

# fresh_idle NAME START STOP: the idle-memory column on a freshly started proxy, after one request
# and a pause. Measured after the other runs, it would count (or, once gatehouse gives freed memory
# back to the system, subtract) what they left in the allocator.
fresh_idle() {
    local name=$1 start=$2 stop=$3
    "$start"
    gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$SRV4/" || gh_fail "$name: the path does not work"
    sleep 1.5
    idle_rss "$name" "$SPID"
    "$stop"
}

run_direct() {
    gh_forwarding 1
    measure direct -
    gh_forwarding 0
}

start_gatehouse() {
    gh_gatehouse "$G" gw -f "$GATEHOUSE_CFG"
    SPID=${GH_PID[gw]}
}
stop_gatehouse() {
    gh_stop gw
    forget "${GH_PID[gw]}"
}

run_gatehouse() {
    start_gatehouse
    THREADS[gatehouse]=$(find "/proc/$SPID/task" -mindepth 1 -maxdepth 1 | wc -l)
    NOFILE[gatehouse]=$(awk '/^Max open files/ {print $4}' "/proc/$SPID/limits")
    measure gatehouse "$SPID"
    stop_gatehouse
    fresh_idle gatehouse start_gatehouse stop_gatehouse
    scale gatehouse start_gatehouse stop_gatehouse
    gh_x "$G" nft list table inet gatehouse >/dev/null 2>&1 && gh_fail "gatehouse left its nft table behind"
}

start_haproxy() {
    # ip netns exec and exec, so that $! is HAProxy itself (its RSS and CPU are measured); -db: no
    # daemon, no master process.
    ip netns exec "$G" bash -c "exec $HAPROXY -db -f $GH_TMP/haproxy.cfg" >"$GH_TMP/haproxy.log" 2>&1 {GH_LOCK_FD}>&- &
    SPID=$!
    local _
    GH_PIDS+=("$SPID")
    for _ in $(seq 50); do
        gh_x "$G" ss -Hltn 'sport = :15080' | grep -q . && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    gh_x "$G" ss -Hltn 'sport = :15080' | grep -q . || gh_fail "haproxy did not start: $(cat "$GH_TMP/haproxy.log")"
}
stop_haproxy() {
    kill "$SPID"
    gh_wait_gone "$SPID" || kill -9 "$SPID"
    wait "$SPID" 2>/dev/null
    forget "$SPID"
}

run_haproxy() {
    plumb
    start_haproxy
    THREADS[haproxy]=$(find "/proc/$SPID/task" -mindepth 1 -maxdepth 1 | wc -l)
    NOFILE[haproxy]=$(awk '/^Max open files/ {print $4}' "/proc/$SPID/limits")
    measure haproxy "$SPID"
    stop_haproxy
    fresh_idle haproxy start_haproxy stop_haproxy
    scale haproxy start_haproxy stop_haproxy
    unplumb
}

# The paired rounds. The columns above run gatehouse's whole block, then HAProxy's, minutes apart; on two
# cores shared by wrk, nginx and the proxy, a keep-alive figure moves by a fifth between two identical
# runs, so one figure of each proxy cannot say which is faster. Here the keep-alive columns (L4 transparent,
# L7 http, TLS termination) alternate: a round starts one proxy, runs the three columns PAIR_SECS each,
# stops it, then does the same with the other; the order flips every round (gatehouse first, then HAProxy
# first), so that a drift of the machine favours neither. Each round gives a ratio per column; the summary
# is the median of those ratios, with their range.
pair_side() {  # pair_side PROXY ROUND
    local p=$1 i=$2
    if [ "$p" = gatehouse ]; then start_gatehouse; else plumb; start_haproxy; fi
    gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://$SRV4/" || gh_fail "pairs: $p: the path does not work"
    SECS=$PAIR_SECS wrk_run "pair$i" "$p-ka" "$SPID"
    SECS=$PAIR_SECS URL=http://$GWC4:8080/ wrk_run "pair$i" "$p-l7" "$SPID"
    SECS=$PAIR_SECS URL=https://$GWC4:8443/ wrk_run "pair$i" "$p-tlska" "$SPID"
    if [ "$p" = gatehouse ]; then stop_gatehouse; else stop_haproxy; unplumb; fi
}
run_pairs() {
    local i
    for i in $(seq "$PAIRS"); do
        gh_log "paired round $i of $PAIRS"
        if [ $((i % 2)) = 1 ]; then
            pair_side gatehouse "$i"
            pair_side haproxy "$i"
        else
            pair_side haproxy "$i"
            pair_side gatehouse "$i"
        fi
    done
}

declare -A THREADS NOFILE
for setup in $ORDER; do
    case $setup in direct | gatehouse | haproxy | pairs) ;; *) gh_fail "BENCH_ORDER: unknown setup $setup" ;; esac
done
for setup in $ORDER; do
    [ "$setup" != pairs ] || [ "$PAIRS" -gt 0 ] || continue
    fresh_topology
    "run_$setup"
done

# ---- results
rows=()
for n in direct gatehouse haproxy; do
    case " $ORDER " in *" $n "*) rows+=("$n") ;; esac
done
hap=$($HAPROXY -v | head -n 1 | cut -d' ' -f1-3)
echo
echo "$(date -u '+%Y-%m-%d %H:%M') UTC · $(nproc) cores · kernel $(uname -r) · $hap · nginx $(nginx -v 2>&1 | cut -d/ -f2) · wrk $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f2)"
echo "gatehouse: $BIN_DESC${BENCH_GATEHOUSE_CFG:+, config $BENCH_GATEHOUSE_CFG}"
if [ ${#rows[@]} -gt 0 ]; then
    echo "order: $ORDER · ${SECS} s per wrk run (1 thread, 64 connections) · bulk: mean of $BULK_RUNS · $IDLE idle connections"
    echo "threads: gatehouse ${THREADS[gatehouse]:-?}, haproxy ${THREADS[haproxy]:-?} · open-file limit: hard $HARD_NOFILE, gatehouse ${NOFILE[gatehouse]:-?}, haproxy ${NOFILE[haproxy]:-?}"
    echo "latency: loadgen rate, $LAT_RATE req/s over $LAT_CONNS keep-alive connections, ${LAT_SECS} s after 1 s of warm-up"
    echo
    # "added p99 over direct", in µs, for the proxies.
    for n in "${rows[@]}"; do
        R[$n,p99add]=-
        if [ "$n" != direct ] && [ -n "${R[direct,p99]:-}" ] && [ -n "${R[$n,p99]:-}" ]; then
            R[$n,p99add]=$(printf '%+d' $((R[$n,p99] - R[direct,p99])))
        fi
    done
    {
        echo "path keep-alive_req/s lat-p50_us lat-p99_us p99-over-direct_us new-conn_req/s tls-sni_req/s l7-http_req/s tls-term-ka_req/s tls-term-new_req/s bulk_MiB/s idle_KiB/conn"
        for n in "${rows[@]}"; do echo "$n ${R[$n,ka]} ${R[$n,p50]} ${R[$n,p99]} ${R[$n,p99add]} ${R[$n,new]} ${R[$n,tls]} ${R[$n,l7]} ${R[$n,tlska]} ${R[$n,tlsnew]} ${R[$n,bulk]} ${R[$n,rss]}"; done
    } | column -t
    if [ -n "${R[gatehouse,ka]:-}" ] && [ -n "${R[haproxy,ka]:-}" ]; then
        awk -v a="${R[gatehouse,ka]}" -v b="${R[haproxy,ka]}" -v c="${R[gatehouse,new]}" -v d="${R[haproxy,new]}" \
            -v e="${R[gatehouse,bulk]}" -v f="${R[haproxy,bulk]}" -v g="${R[gatehouse,rss]}" -v h="${R[haproxy,rss]}" \
            -v i="${R[gatehouse,tls]}" -v j="${R[haproxy,tls]}" -v k="${R[gatehouse,l7]}" -v l="${R[haproxy,l7]}" \
            -v m="${R[haproxy,l7log]:-0}" -v n="${R[gatehouse,tlska]}" -v o="${R[haproxy,tlska]}" \
            -v p="${R[gatehouse,tlsnew]}" -v q="${R[haproxy,tlsnew]}" -v r="${R[gatehouse,l7log]:-0}" \
            'BEGIN {printf "gatehouse / haproxy: keep-alive %.2fx, new connections %.2fx, TLS by SNI %.2fx, L7 http %.2fx (both logging each request: %.2fx), TLS termination keep-alive %.2fx, full handshakes %.2fx, bulk %.2fx, idle memory %.2fx (lower is better)\n", a/b, c/d, i/j, k/l, (m == 0 ? 0 : r/m), n/o, p/q, e/f, (h == 0 ? 0 : g/h)}'
    fi
    echo
    echo "latency at $LAT_RATE req/s, open loop (each setup's keep-alive peak from wrk beside it):"
    for n in "${rows[@]}"; do
        echo "  $n: peak ${R[$n,ka]} req/s, so $LAT_RATE is $(awk -v r="$LAT_RATE" -v p="${R[$n,ka]}" 'BEGIN {printf "%.0f", 100 * r / p}') % of it; ${LATNOTE[$n]:-}"
    done
    echo
    echo "CPU during the wrk runs, % of one core (proxy / nginx):"
    for n in "${rows[@]}"; do
        echo "  $n: keep-alive ${PCPU[$n,ka]:--} / ${NCPU[$n,ka]}, new connections ${PCPU[$n,new]:--} / ${NCPU[$n,new]}, TLS ${PCPU[$n,tls]:--} / ${NCPU[$n,tls]}, L7 ${PCPU[$n,l7]:--} / ${NCPU[$n,l7]:--}, TLS termination ${PCPU[$n,tlska]:--} / ${NCPU[$n,tlska]:--} and ${PCPU[$n,tlsnew]:--} / ${NCPU[$n,tlsnew]:--}"
    done
    if [ -n "${R[gatehouse,ka]:-}" ] && [ -n "${R[haproxy,ka]:-}" ]; then
        echo "  machine busy, % of all cores, gatehouse / haproxy runs: keep-alive ${BUSY[gatehouse,ka]} / ${BUSY[haproxy,ka]}, new connections ${BUSY[gatehouse,new]} / ${BUSY[haproxy,new]}, TLS ${BUSY[gatehouse,tls]} / ${BUSY[haproxy,tls]}, L7 ${BUSY[gatehouse,l7]} / ${BUSY[haproxy,l7]}, TLS termination ${BUSY[gatehouse,tlska]} / ${BUSY[haproxy,tlska]} and ${BUSY[gatehouse,tlsnew]} / ${BUSY[haproxy,tlsnew]}"
        line="ceiling, had gatehouse's own user-space work cost nothing (the machine as busy as it was; its user space per request in brackets, µs):"
        for k in ka new tls l7 tlska tlsnew; do
            c=$(ceiling gatehouse "$k")
            line+=" $k $(awk -v c="$c" -v h="${R[haproxy,$k]}" 'BEGIN {printf "%.2f", c / h}')x HAProxy ($(awk -v u="${PUSR[gatehouse,$k]:-0}" -v r="${R[gatehouse,$k]}" 'BEGIN {printf "%.1f", u * 10000 / r}'))"
            [ "$k" != new ] || [ -z "${R[direct,new]:-}" ] ||
                line+=" and $(awk -v c="$c" -v d="${R[direct,new]}" 'BEGIN {printf "%.2f", c / d}')x direct"
            line+=","
        done
        echo "${line%,}"
    fi
    for n in gatehouse haproxy; do
        [ -n "${R[$n,l7log]:-}" ] &&
            NOTES+=("$n l7 with an httplog line per request on standard output: ${R[$n,l7log]} req/s, CPU ${PCPU[$n,l7log]:--} / ${NCPU[$n,l7log]:--}")
    done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo "notes:"
        printf '  %s\n' "${NOTES[@]}"
    fi
    echo
    echo "| path | keep-alive req/s (64 conns) | latency p50 / p99 µs at $LAT_RATE req/s | added p99 over direct (µs) | new-connection req/s | TLS by SNI req/s (full handshake) | L7 http req/s (keep-alive, forwardfor, 2 servers) | TLS termination req/s, keep-alive | TLS termination req/s, full handshakes | bulk MiB/s (100 MiB) | RSS per idle proxied conn (KiB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in "${rows[@]}"; do
        echo "| $n | ${R[$n,ka]} | ${R[$n,p50]} / ${R[$n,p99]} | ${R[$n,p99add]} | ${R[$n,new]} | ${R[$n,tls]} | ${R[$n,l7]} | ${R[$n,tlska]} | ${R[$n,tlsnew]} | ${R[$n,bulk]} | ${R[$n,rss]} |"
    done
fi

# ---- the scaling run
scaled=()
for n in gatehouse haproxy; do
    case " $ORDER " in *" $n "*) [ ${#SCALE_LEVELS[@]} -gt 0 ] && scaled+=("$n") ;; esac
done
if [ ${#scaled[@]} -gt 0 ] || { [ ${#rows[@]} -gt 0 ] && [ ${#SCALE_SKIPPED[@]} -gt 0 ]; }; then
    echo
    echo "scaling run: per level, a freshly started proxy; N connections opened through the transparent path (256 at a time, one request each) and held; then $SCALE_RATE req/s spread over them for $SCALE_SECS s"
    [ ${#SCALE_SKIPPED[@]} = 0 ] || printf '  %s\n' "${SCALE_SKIPPED[@]}"
    echo
    echo "| proxy | connections | RSS growth per connection (KiB) | CPU per request (µs) | proxy CPU (% of a core) | p99 (µs) | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for p in "${scaled[@]}"; do
        for n in "${SCALE_LEVELS[@]}"; do
            if [ -n "${S[$p,$n,fail]:-}" ]; then
                echo "| $p | $n | ${S[$p,$n,fail]} | | | | |"
            else
                echo "| $p | $n | ${S[$p,$n,rss]} | ${S[$p,$n,cpu]} | ${S[$p,$n,pct]} | ${S[$p,$n,p99]} | ${S[$p,$n,errors]} |"
            fi
        done
    done
    # Cost per connection across the levels: the largest level measured against the smallest.
    for p in "${scaled[@]}"; do
        lo="" hi=""
        for n in "${SCALE_LEVELS[@]}"; do
            [ -n "${S[$p,$n,cpu]:-}" ] || continue
            [ -n "$lo" ] || lo=$n
            hi=$n
        done
        if [ -n "$lo" ] && [ "$lo" != "$hi" ]; then
            awk -v p="$p" -v lo="$lo" -v hi="$hi" -v r1="${S[$p,$lo,rss]}" -v r2="${S[$p,$hi,rss]}" \
                -v c1="${S[$p,$lo,cpu]}" -v c2="${S[$p,$hi,cpu]}" \
                'BEGIN {printf "%s, %d against %d connections: RSS per connection %.2fx, CPU per request %.2fx\n", p, hi, lo, (r1 == 0 ? 0 : r2 / r1), (c1 == 0 ? 0 : c2 / c1)}'
        fi
        for n in "${SCALE_LEVELS[@]}"; do
            [ -z "${S[$p,$n,note]:-}" ] || echo "  $p $n: ${S[$p,$n,note]}"
        done
    done
fi

# ---- the paired rounds
median() {  # median FORMAT VALUE...
    local f=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v f="$f" '{v[NR] = $1} END {printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }
if [[ " $ORDER " == *" pairs "* ]] && [ "$PAIRS" -gt 0 ]; then
    echo
    echo "paired rounds: $PAIRS rounds; in each, a freshly started gatehouse and HAProxy one after the other (gatehouse first in odd rounds), the three keep-alive columns ${PAIR_SECS} s each (wrk -t1 -c64), one topology"
    echo
    echo "| column | gatehouse req/s, median (range) | HAProxy req/s, median (range) | gatehouse / HAProxy, round by round | median ratio | proxy CPU per request, µs, median: gatehouse / HAProxy (user space) | machine busy, %: gatehouse / HAProxy runs | ceiling: gatehouse with its user space free, × HAProxy |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|"
    summary=()
    for k in ka l7 tlska; do
        case $k in ka) title="L4 keep-alive (transparent)" ;; l7) title="L7 http keep-alive" ;; tlska) title="TLS termination keep-alive" ;; esac
        g=() h=() ratios=() gc=() hc=() gu=() hu=() gb=() hb=() ceil=()
        for i in $(seq "$PAIRS"); do
            a=${R[pair$i,gatehouse-$k]:-} b=${R[pair$i,haproxy-$k]:-}
            [ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ] || continue
            g+=("$a") h+=("$b")
            ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')")
            gc+=("$(awk -v c="${PCPU[pair$i,gatehouse-$k]:-0}" -v r="$a" 'BEGIN {printf "%.1f", c * 10000 / r}')")
            hc+=("$(awk -v c="${PCPU[pair$i,haproxy-$k]:-0}" -v r="$b" 'BEGIN {printf "%.1f", c * 10000 / r}')")
            gu+=("$(awk -v c="${PUSR[pair$i,gatehouse-$k]:-0}" -v r="$a" 'BEGIN {printf "%.1f", c * 10000 / r}')")
            hu+=("$(awk -v c="${PUSR[pair$i,haproxy-$k]:-0}" -v r="$b" 'BEGIN {printf "%.1f", c * 10000 / r}')")
            gb+=("${BUSY[pair$i,gatehouse-$k]}") hb+=("${BUSY[pair$i,haproxy-$k]}")
            ceil+=("$(awk -v c="$(ceiling "pair$i" "gatehouse-$k")" -v b="$b" 'BEGIN {printf "%.2f", c / b}')")
        done
        [ ${#ratios[@]} -gt 0 ] || { echo "| $title | no complete round | | | | | | |"; continue; }
        m=$(median %.2f "${ratios[@]}")
        summary+=("$title ${m}x (ceiling $(median %.2f "${ceil[@]}")x)")
        echo "| $title | $(median %.0f "${g[@]}") ($(range "${g[@]}")) | $(median %.0f "${h[@]}") ($(range "${h[@]}")) | $(printf '%s× ' "${ratios[@]}" | sed 's/ $//') | **${m}×** | $(median %.1f "${gc[@]}") ($(median %.1f "${gu[@]}")) / $(median %.1f "${hc[@]}") ($(median %.1f "${hu[@]}")) | $(median %.0f "${gb[@]}") / $(median %.0f "${hb[@]}") | $(median %.2f "${ceil[@]}")× |"
    done
    echo
    echo "paired medians, gatehouse / haproxy: $(printf '%s, ' "${summary[@]}" | sed 's/, $//')"
    if [ ${#rows[@]} = 0 ] && [ ${#NOTES[@]} -gt 0 ]; then
        echo "notes:"
        printf '  %s\n' "${NOTES[@]}"
    fi
fi
