# shellcheck shell=bash
# Shared helpers for netns tests. Source it, then call gh_init NAME NUMBER.
#
# The standard topology (gh_topology), addresses from documentation/test ranges that exist only inside
# the namespaces this test creates:
#
#   +----------------+  veth   +-------------------------------+  veth   +----------------+
#   | ${P}c (client) |---------| ${P}g (gateway, gatehouse)    |---------| ${P}s (server) |
#   | 10.N.1.2/24    |  c0  g0 | 10.N.1.1/24   |  10.N.2.1/24  | g1  s0  | 10.N.2.2/24    |
#   | fd00:N:1::2/64 |         | fd00:N:1::1   |  fd00:N:2::1  |         | fd00:N:2::2/64 |
#   +----------------+         +-------------------------------+         +----------------+
#
# Every test gets a unique prefix and subnet number N, so tests can run side by side. Nothing is sent
# anywhere but between these namespaces; each namespace's resolv.conf points at loopback inside it.

set -u

GH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GATEHOUSE=${GATEHOUSE:-$GH_ROOT/target/release/gatehouse}
GH_PIDS=()        # processes gh_cleanup stops
GH_NS=()          # namespaces gh_cleanup deletes
declare -A GH_PID # gatehouse pids by instance name (gh_gatehouse NS NAME): "${GH_PID[gw]}"
GH_ENV=()         # extra VAR=value settings for the next gh_gatehouse (e.g. a PATH without nft)
GH_USERS=()       # system users this run created, removed by gh_cleanup
GH_GROUPS=()      # ... and groups

gh_log() { printf '[%s] %s\n' "$GH_NAME" "$*" >&2; }

gh_fail() {
    gh_log "FAIL: $*"
    gh_dump
    exit 1
}

gh_pass() {
    gh_log "PASS"
    exit 0
}

# Prints what a failing test leaves behind, to read in CI output.
gh_dump() {
    local f
    for f in "$GH_TMP"/*.log "$GH_TMP"/*.err; do
        [ -s "$f" ] || continue
        echo "----- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

gh_cleanup() {
    local pid ns u
    # A test's time limit (timeout) may signal us while we clean up, even twice (to us and to our
    # process group): finish cleaning rather than leave namespaces behind.
    trap '' INT TERM
    for pid in "${GH_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 0.2
    for pid in "${GH_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for ns in "${GH_NS[@]}"; do
        # Kill anything still running inside before the namespace goes.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    for u in "${GH_USERS[@]}"; do flock /run/lock/gatehouse-netns-users.lock userdel "$u" 2>/dev/null; done
    # userdel may have taken the group along already.
    for u in "${GH_GROUPS[@]}"; do
        getent group "$u" >/dev/null && flock /run/lock/gatehouse-netns-users.lock groupdel "$u" 2>/dev/null
    done
    [ -n "${GH_KEEP_TMP:-}" ] || rm -rf "$GH_TMP"
}

# gh_system_user NAME: a system user NAME with a group NAME for gatehouse's `user`/`group` lines,
# created unless the host has them (and then removed by gh_cleanup; one that existed stays).
# useradd/groupadd refuse to run while another holds /etc/passwd, so tests side by side take turns.
gh_system_user() {
    local name=$1 lock=/run/lock/gatehouse-netns-users.lock
    if ! getent group "$name" >/dev/null; then
        flock "$lock" groupadd --system "$name" || gh_fail "cannot create group $name"
        GH_GROUPS+=("$name")
    fi
    if ! getent passwd "$name" >/dev/null; then
        flock "$lock" useradd --system --no-create-home --shell /usr/sbin/nologin -g "$name" "$name" ||
            gh_fail "cannot create user $name"
        GH_USERS+=("$name")
    fi
}

# gh_init NAME NUMBER: NAME is the test name (for logs and the temp dir), NUMBER (10-250) picks the
# subnets and the namespace prefix gh<NUMBER>, so it must be unique per test.
gh_init() {
    GH_NAME=$1
    GH_N=$2
    GH_P="gh${GH_N}"
    GH_TMP=$(mktemp -d "/tmp/gatehouse-$GH_NAME.XXXXXX")
    chmod 755 "$GH_TMP"
    trap gh_cleanup EXIT
    trap 'exit 130' INT TERM
    [ "$(id -u)" = 0 ] || gh_fail "needs root (network namespaces, nft, TPROXY)"
    [ -x "$GATEHOUSE" ] || gh_fail "no gatehouse binary at $GATEHOUSE (build it with cargo build --release)"
    # Namespaces are named after NUMBER: a second run of the same test (another checkout, another CI
    # job) would delete ours, so it waits for the first. Only this shell holds the lock: gh_x and
    # gh_gatehouse close its descriptor for what they start, so that even if this shell is killed
    # outright, the lock goes with it (and the next run clears what was left, see gh_ns).
    exec {GH_LOCK_FD}>"/run/lock/gatehouse-netns-$GH_N.lock"
    flock -w 60 "$GH_LOCK_FD" || gh_fail "another run has held the namespaces ${GH_P}* for 60 s"
}

gh_ns() {
    local ns=$1
    # Left by a run that was killed before it could clean up (we hold the lock: it is not running).
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    ip netns add "$ns" || gh_fail "cannot create namespace $ns"
    GH_NS+=("$ns")
    mkdir -p "/etc/netns/$ns"
    # DNS inside the namespace goes nowhere but its own loopback unless a test starts a DNS server.
    echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# gh_x NS CMD...: runs CMD in namespace NS (without the lock's descriptor, see gh_init).
gh_x() { ip netns exec "$@" {GH_LOCK_FD}>&-; }

# gh_link NS_A IF_A ADDRS_A NS_B IF_B ADDRS_B: a veth pair between two namespaces, both ends up, each
# with its addresses (space-separated CIDRs; IPv6 ones without duplicate address detection).
gh_link() {
    local a
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
    for a in $3; do gh_addr "$1" "$2" "$a"; done
    for a in $6; do gh_addr "$4" "$5" "$a"; done
}

# gh_addr NS IF CIDR: adds an address (IPv6 without duplicate address detection, so it works at once).
gh_addr() {
    case $3 in
    *:*) ip -n "$1" -6 addr add "$3" dev "$2" nodad ;;
    *) ip -n "$1" addr add "$3" dev "$2" ;;
    esac
}

# Builds the standard client/gateway/server topology. Sets C G S (namespace names) and addresses.
gh_topology() {
    C=${GH_P}c G=${GH_P}g S=${GH_P}s
    CLI4=10.$GH_N.1.2 GWC4=10.$GH_N.1.1 GWS4=10.$GH_N.2.1 SRV4=10.$GH_N.2.2
    CLI6=fd00:$GH_N:1::2 GWC6=fd00:$GH_N:1::1 GWS6=fd00:$GH_N:2::1 SRV6=fd00:$GH_N:2::2
    gh_ns "$C"; gh_ns "$G"; gh_ns "$S"
    gh_link "$C" "${GH_P}c0" "$CLI4/24 $CLI6/64" "$G" "${GH_P}g0" "$GWC4/24 $GWC6/64"
    gh_link "$G" "${GH_P}g1" "$GWS4/24 $GWS6/64" "$S" "${GH_P}s0" "$SRV4/24 $SRV6/64"
    ip -n "$C" route add default via "$GWC4"
    ip -n "$S" route add default via "$GWS4"
    ip -n "$C" -6 route add default via "$GWC6"
    ip -n "$S" -6 route add default via "$GWS6"
    # No forwarding on the gateway: only gatehouse can carry a byte from client to server.
    gh_forwarding 0
}

# gh_forwarding 0|1: IPv4 and IPv6 forwarding on the gateway.
gh_forwarding() {
    gh_x "$G" sysctl -qw net.ipv4.ip_forward="$1" net.ipv6.conf.all.forwarding="$1"
}

# Makes a CA and a server certificate for the given names/IPs (SANs) in $GH_TMP/pki.
gh_pki() {
    local san=$1 d=$GH_TMP/pki
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gatehouse test CA" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || gh_fail "openssl CA"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=server" -keyout "$d/server.key" \
        -out "$d/server.csr" 2>/dev/null || gh_fail "openssl CSR"
    printf 'subjectAltName=%s\n' "$san" >"$d/ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null || gh_fail "openssl sign"
}

# gh_ec_ca NAME CN: a CA (EC P-256, valid one day) in $GH_TMP/pki/NAME.crt and NAME.key.
gh_ec_ca() {
    local d=$GH_TMP/pki
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$d/$1.key" -out "$d/$1.crt" 2>/dev/null || gh_fail "openssl: CA $1"
}

# gh_ec_cert NAME CA server|client [SAN]: a certificate (EC P-256, valid one day) signed by CA
# (gh_ec_ca), for TLS servers (SAN required) or clients, in $GH_TMP/pki/NAME.crt and NAME.key, with
# NAME.pem holding both (what gatehouse's `crt`, curl's `--cert` and stunnel's `cert` read).
gh_ec_cert() {
    local name=$1 ca=$2 role=$3 san=${4:-} d=$GH_TMP/pki
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=${role}Auth"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } >"$d/$name.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null || gh_fail "openssl: CSR $name"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
        -days 1 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null || gh_fail "openssl: sign $name"
    cat "$d/$name.crt" "$d/$name.key" >"$d/$name.pem"
}

# gh_tunnel_pki: the certificates of a TLS tunnel between two gateways, in $GH_TMP/pki: the tunnel's
# CA (ca.crt), the exit's server certificate for exit.tunnel.test (exit.pem), the entry's client
# certificate (entry.pem), a second CA (rogue-ca.crt) with a client certificate of its own
# (rogue.pem: the "wrong certificate"), and an HTTPS origin's certificate for origin.tunnel.test
# (origin.pem).
gh_tunnel_pki() {
    gh_ec_ca ca "gatehouse tunnel test CA"
    gh_ec_ca rogue-ca "some other CA"
    gh_ec_cert exit ca server DNS:exit.tunnel.test
    gh_ec_cert entry ca client
    gh_ec_cert rogue rogue-ca client
    gh_ec_cert origin ca server DNS:origin.tunnel.test
}

# gh_nginx NS NAME [LISTEN_LINES] [CONNECTIONS]: nginx in NS serving /, /big (files in $GH_TMP/www),
# logging "$remote_addr $server_port $request" to $GH_TMP/NAME-access.log. CONNECTIONS (default 4096):
# its worker's worker_connections, with an open-file limit to match (within the hard limit).
gh_nginx() {
    local ns=$1 name=$2 listen=${3:-"listen 80; listen [::]:80;"} conns=${4:-4096}
    local d=$GH_TMP/nginx-$name rlimit=
    [ -z "${4:-}" ] || rlimit="worker_rlimit_nofile $((conns + 64));"
    mkdir -p "$d" "$GH_TMP/www"
    [ -f "$GH_TMP/www/index.html" ] || echo "hello from the server" >"$GH_TMP/www/index.html"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
$rlimit
pid $d/nginx.pid;
error_log $GH_TMP/$name-error.log;
events { worker_connections $conns; }
http {
    log_format peer '\$remote_addr \$server_port "\$request" \$status \$body_bytes_sent \$server_addr';
    access_log $GH_TMP/$name-access.log peer;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 100000;
    server {
        $listen
        root $GH_TMP/www;
        location /upload { client_max_body_size 1g; client_body_buffer_size 1m; return 200 "ok\n"; }
        location /sink { client_max_body_size 1g; proxy_pass http://127.0.0.1:9999; }
    }
}
EOF
    gh_x "$ns" nginx -c "$d/nginx.conf" -e "$GH_TMP/$name-error.log" || gh_fail "nginx did not start"
    local _
    for _ in $(seq 50); do [ -s "$d/nginx.pid" ] && break; sleep 0.1; done
    [ -s "$d/nginx.pid" ] || gh_fail "nginx $name wrote no pidfile"
    GH_PIDS+=("$(cat "$d/nginx.pid")")
}

# gh_dns_topology: adds a DNS namespace ${P}d to the standard topology, joined to the gateway and to
# the client by their own links (forwarding stays off, so each side reaches only its own DNS address):
#
#   ${P}c 10.N.5.1 ---- 10.N.5.2 ${P}d 10.N.4.2 ---- 10.N.4.1 ${P}g
#
# Sets D, DNSG4 (the address the gateway uses) and DNSC4 (the address the client uses), and points
# the gateway's and the client's resolv.conf at them.
gh_dns_topology() {
    D=${GH_P}d DNSG4=10.$GH_N.4.2 DNSC4=10.$GH_N.5.2
    gh_ns "$D"
    gh_link "$G" "${GH_P}g2" "10.$GH_N.4.1/24" "$D" "${GH_P}d0" "$DNSG4/24"
    gh_link "$C" "${GH_P}c1" "10.$GH_N.5.1/24" "$D" "${GH_P}d1" "$DNSC4/24"
    echo "nameserver $DNSG4" >"/etc/netns/$G/resolv.conf"
    echo "nameserver $DNSC4" >"/etc/netns/$C/resolv.conf"
}

# gh_dnsmasq NAME ADDR [DNSMASQ_ARGS...]: dnsmasq in $D answering on ADDR:53 from the hosts file
# $GH_TMP/NAME.hosts (created if missing; edit it and call gh_dnsmasq_reload NAME), with TTL
# GH_DNS_TTL (default 2 s) for those records. It is authoritative for .test (other .test names get
# NXDOMAIN) and never asks anyone else. Queries are logged to $GH_TMP/NAME-dns.log.
declare -A GH_DNS_PID
gh_dnsmasq() {
    local name=$1 addr=$2
    shift 2
    touch "$GH_TMP/$name.hosts"
    gh_x "$D" dnsmasq --no-resolv --no-hosts --no-poll --bind-interfaces --listen-address="$addr" \
        --port=53 --local=/test/ --local-ttl="${GH_DNS_TTL:-2}" --addn-hosts="$GH_TMP/$name.hosts" \
        --pid-file="$GH_TMP/$name-dns.pid" --log-queries --log-facility="$GH_TMP/$name-dns.log" "$@" ||
        gh_fail "dnsmasq $name did not start"
    local _
    for _ in $(seq 50); do
        [ -s "$GH_TMP/$name-dns.pid" ] && gh_x "$D" ss -Hlun "src $addr:53" | grep -q . && break
        sleep 0.1
    done
    [ -s "$GH_TMP/$name-dns.pid" ] || gh_fail "dnsmasq $name wrote no pidfile"
    GH_DNS_PID[$name]=$(cat "$GH_TMP/$name-dns.pid")
    GH_PIDS+=("${GH_DNS_PID[$name]}")
}

# gh_dnsmasq_reload NAME: makes dnsmasq NAME re-read its hosts file (and forget its cache).
gh_dnsmasq_reload() { kill -HUP "${GH_DNS_PID[$1]}"; }

# gh_two_servers: the server namespace gets a second address, SRV4B (10.N.2.3), and nginx answers
# HTTP on 80 and HTTPS on 443 on both, with a certificate for *.example.test and example.test signed
# by the test CA ($GH_TMP/pki/ca.crt). Its access log ends with the address that took the request.
gh_two_servers() {
    SRV4B=10.$GH_N.2.3
    ip -n "$S" addr add "$SRV4B/24" dev "${GH_P}s0"
    gh_pki "DNS:*.example.test,DNS:*.b.example.test,DNS:example.test,DNS:localhost"
    gh_nginx "$S" web "listen 80; listen [::]:80; listen 443 ssl; listen [::]:443 ssl;
        ssl_certificate $GH_TMP/pki/server.crt; ssl_certificate_key $GH_TMP/pki/server.key;"
}

# gh_gatehouse NS NAME [ARGS...]: starts gatehouse in NS; stdout (connection log) in NAME.log,
# stderr in NAME.err. Waits until it reports "ready" (bound, plumbing installed).
gh_gatehouse() {
    local ns=$1 name=$2
    shift 2
    # ip netns exec and env exec in place, so $! is gatehouse itself (signals reach it).
    ip netns exec "$ns" env "${GH_ENV[@]}" "$GATEHOUSE" "$@" >"$GH_TMP/$name.log" 2>"$GH_TMP/$name.err" {GH_LOCK_FD}>&- &
    local pid=$!
    GH_PIDS+=("$pid")
    GH_PID[$name]=$pid
    local _
    for _ in $(seq 100); do
        grep -q " ready" "$GH_TMP/$name.err" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || gh_fail "gatehouse $name exited: $(cat "$GH_TMP/$name.err")"
        sleep 0.1
    done
    gh_fail "gatehouse $name did not become ready"
}

# gh_wait_gone PID: waits up to 5 s for a process to exit.
gh_wait_gone() {
    local _
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

# gh_stop NAME [SIGNAL]: signals gatehouse instance NAME (default TERM), waits up to 5 s for it to
# exit and sets GH_RC to its exit status. Fails the test if it does not exit.
gh_stop() {
    local name=$1 sig=${2:-TERM} pid=${GH_PID[$1]}
    kill "-$sig" "$pid" 2>/dev/null || gh_fail "gatehouse $name is not running"
    # Braces with 2>/dev/null: also silences bash's own "Killed" notice for the background job.
    { gh_wait_gone "$pid" && wait "$pid"; } 2>/dev/null
    # shellcheck disable=SC2034 # read by the caller
    GH_RC=$?
    kill -0 "$pid" 2>/dev/null && gh_fail "gatehouse $name did not exit within 5 s of SIG$sig"
    return 0
}

# gh_wait_grep PATTERN FILE WHAT: waits up to 5 s for a line matching PATTERN (ERE) in FILE, else fails.
# gatehouse writes a connection's log line when the connection ends, a moment after the client is done,
# and writes lines in batches (at most 100 ms late).
gh_wait_grep() {
    local pattern=$1 file=$2 what=$3 _
    for _ in $(seq 50); do
        grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    gh_fail "$what: no line matching /$pattern/ in $file"
}

# gh_settle: gives a connection that should NOT be logged time to show up anyway, before asserting
# its absence.
gh_settle() { sleep 0.5; }

gh_assert_grep() {
    local pattern=$1 file=$2 what=$3
    grep -qE -- "$pattern" "$file" || gh_fail "$what: no line matching /$pattern/ in $file"
}

gh_assert_no_grep() {
    local pattern=$1 file=$2 what=$3
    ! grep -qE -- "$pattern" "$file" || gh_fail "$what: unexpected line matching /$pattern/ in $file"
}

# The HAProxy tcplog layout, for the tests that source this file:
#   %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
# shellcheck disable=SC2034
GH_TCPLOG='^[0-9a-f.:]+:[0-9]+ \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\] [^ ]+ [^ /]+/[^ ]+ -?[0-9]+/-?[0-9]+/[0-9]+ [0-9]+ [-A-Za-z]{2} [0-9]+/[0-9]+/[0-9]+/[0-9]+/[0-9]+ [0-9]+/[0-9]+$'
# The same line when gatehouse read a name (SNI or Host): " {NAME}" appended.
# shellcheck disable=SC2034
GH_TCPLOG_NAMED="${GH_TCPLOG%\$}"' \{[^ {}]+\}$'
