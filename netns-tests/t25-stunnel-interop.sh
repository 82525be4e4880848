#!/usr/bin/env bash
# A TLS tunnel with client certificates where one end is stunnel4, in both directions.
# a. stunnel (client mode, the entry's certificate, the exit checked against the tunnel's CA and its
#    name) in front of a gatehouse exit that requires a client certificate: the request reaches nginx
#    and the exit logs the session; a stunnel entry with another CA's certificate is refused (PR).
# b. gatehouse intercepting the client's HTTP (the entry's certificate, the exit's name checked) in
#    front of stunnel in server mode (client certificates verified against the tunnel's CA): the
#    request reaches nginx through stunnel; a gatehouse entry with another CA's certificate is refused.
# stunnel's client mode cannot send a PROXY header, so neither direction carries one.
#
#   +-------------+       +----------------------------+       +----------------------------+       +-----------+
#   | gh55c       | veth  | gh55e  entry, ip_forward=0 | veth  | gh55x  exit, ip_forward=0  | veth  | gh55s     |
#   | curl        |-------| a: stunnel client mode     |-------| a: gatehouse :8443 ssl     |-------| nginx :80 |
#   | 10.55.1.2   | c0 e0 |    :8080 entry cert        | e1 x0 |    verify required →       | x1 s0 | 10.55.2.2 |
#   | 10.55.1.3   |       |    :8081 rogue cert        |       |    nginx                   |       |           |
#   |  (rogue)    |       | b: gatehouse intercepts 80 |       | b: stunnel server mode     |       |           |
#   |             |       |    → ssl crt entry.pem     |       |    :9443 verifyChain →     |       |           |
#   |             |       |    (.3: rogue.pem)         |       |    nginx                   |       |           |
#   |             |       | no route to 10.55.2/24     |       |                            |       |           |
#   |             |       | 10.55.1.1 | 10.55.3.1      |       | 10.55.3.2 | 10.55.2.1      |       |           |
#   +-------------+       +----------------------------+       +----------------------------+       +-----------+
#
# Forwarding is off on both gateways and the entry has no route towards nginx: only the tunnel's two
# ends can carry a byte there.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t25 55
STUNNEL=$(command -v stunnel4 || command -v stunnel) ||
    gh_fail "stunnel4 is not installed (scripts/install-deps.sh installs it)"

C=${GH_P}c E=${GH_P}e X=${GH_P}x S=${GH_P}s
CLI4=10.55.1.2 ROGUE4=10.55.1.3 ENTC4=10.55.1.1 ENTX4=10.55.3.1 EXIT4=10.55.3.2 EXITS4=10.55.2.1
ORIGIN4=10.55.2.2
for ns in "$C" "$E" "$X" "$S"; do gh_ns "$ns"; done
gh_link "$C" "${GH_P}c0" "$CLI4/24 $ROGUE4/24" "$E" "${GH_P}e0" "$ENTC4/24"
gh_link "$E" "${GH_P}e1" "$ENTX4/24" "$X" "${GH_P}x0" "$EXIT4/24"
gh_link "$X" "${GH_P}x1" "$EXITS4/24" "$S" "${GH_P}s0" "$ORIGIN4/24"
ip -n "$C" route add default via "$ENTC4"
for ns in "$E" "$X"; do
    gh_x "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
done
gh_x "$E" ip route get "$ORIGIN4" >/dev/null 2>&1 && gh_fail "the entry has a route to nginx"

gh_tunnel_pki
PKI=$GH_TMP/pki
gh_nginx "$S" origin "listen $ORIGIN4:80;"

# stunnel_start NS NAME: stunnel in NS on $GH_TMP/NAME.conf, in the foreground (so the test's cleanup
# stops it), its log in $GH_TMP/NAME.err.
stunnel_start() {
    local ns=$1 name=$2
    ip netns exec "$ns" "$STUNNEL" "$GH_TMP/$name.conf" 2>"$GH_TMP/$name.err" {GH_LOCK_FD}>&- &
    GH_PIDS+=("$!")
}
# listening NS ADDR:PORT: waits up to 5 s for a listener.
listening() {
    local _
    for _ in $(seq 50); do gh_x "$1" ss -Hltn "src $2" | grep -q . && return 0; sleep 0.1; done
    gh_fail "nothing listens on $2 in $1"
}
STUNNEL_GLOBAL="foreground = yes
pid =
syslog = no
debug = info"

# --- a. stunnel entry, gatehouse exit ----------------------------------------------------------
cat >"$GH_TMP/stunnel-entry.conf" <<CONF
$STUNNEL_GLOBAL
[tunnel]
client = yes
accept = $ENTC4:8080
connect = $EXIT4:8443
sni = exit.tunnel.test
cert = $PKI/entry.pem
CAfile = $PKI/ca.crt
verifyChain = yes
checkHost = exit.tunnel.test
[rogue]
client = yes
accept = $ENTC4:8081
connect = $EXIT4:8443
sni = exit.tunnel.test
cert = $PKI/rogue.pem
CAfile = $PKI/ca.crt
verifyChain = yes
checkHost = exit.tunnel.test
CONF
cat >"$GH_TMP/exit.cfg" <<CFG
global
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend from-stunnel
    bind $EXIT4:8443 ssl crt $PKI/exit.pem ca-file $PKI/ca.crt verify required
    default_backend origin
backend origin
    server nginx $ORIGIN4:80
CFG
gh_gatehouse "$X" exit -f "$GH_TMP/exit.cfg"
stunnel_start "$E" stunnel-entry
listening "$E" "$ENTC4:8080"
listening "$E" "$ENTC4:8081"

body=$(gh_x "$C" curl -sS --max-time 5 "http://$ENTC4:8080/?from-stunnel") || gh_fail "curl through the stunnel entry failed"
[ "$body" = "hello from the server" ] || gh_fail "stunnel entry: unexpected body: $body"
gh_wait_grep 'CERT: Host name "exit.tunnel.test" matched' "$GH_TMP/stunnel-entry.err" \
    "stunnel checked the exit's name"
gh_wait_grep "^$EXITS4 80 \"GET /\?from-stunnel HTTP/1.1\" 200 " "$GH_TMP/origin-access.log" \
    "nginx got the request from the gatehouse exit"
# stunnel's connection, with the name it sent, and the request's bytes and nginx's answer counted.
gh_wait_grep "^$ENTX4:[0-9]+ \[.*\] from-stunnel origin/nginx [0-9]+/[0-9]+/[0-9]+ [1-9][0-9]+ -- .* \{exit.tunnel.test\}\$" \
    "$GH_TMP/exit.log" "the exit logged stunnel's session"
grep -E "$GH_TCPLOG_NAMED" "$GH_TMP/exit.log" >/dev/null || gh_fail "not a tcplog line: $(cat "$GH_TMP/exit.log")"

gh_x "$C" curl -sS --max-time 5 "http://$ENTC4:8081/?rogue-stunnel" >"$GH_TMP/rogue-a.out" 2>&1 &&
    gh_fail "a request crossed with another CA's certificate: $(cat "$GH_TMP/rogue-a.out")"
gh_wait_grep "TLS handshake refused: invalid peer certificate: UnknownIssuer" "$GH_TMP/exit.err" \
    "the exit said why it refused stunnel's rogue certificate"
gh_wait_grep "^$ENTX4:[0-9]+ \[.*\] from-stunnel from-stunnel/<NOSRV> .* PR " "$GH_TMP/exit.log" \
    "the exit logged the refusal with PR"

# --- b. gatehouse entry, stunnel exit ----------------------------------------------------------
cat >"$GH_TMP/stunnel-exit.conf" <<CONF
$STUNNEL_GLOBAL
[tunnel]
accept = $EXIT4:9443
connect = $ORIGIN4:80
cert = $PKI/exit.pem
CAfile = $PKI/ca.crt
verifyChain = yes
CONF
TUN="ca-file $PKI/ca.crt verifyhost exit.tunnel.test"
cat >"$GH_TMP/entry.cfg" <<CFG
global
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend gateway
    bind [::]:15080 transparent v4v6
    intercept tcp dport 80 iif ${GH_P}e0
    use_backend rogue if { src $ROGUE4 }
    default_backend stunnel
backend stunnel
    server exit $EXIT4:9443 ssl crt $PKI/entry.pem $TUN
backend rogue
    server exit $EXIT4:9443 ssl crt $PKI/rogue.pem $TUN
CFG
stunnel_start "$X" stunnel-exit
listening "$X" "$EXIT4:9443"
gh_gatehouse "$E" entry -f "$GH_TMP/entry.cfg"

body=$(gh_x "$C" curl -sS --max-time 5 "http://$ORIGIN4/?to-stunnel") || gh_fail "curl through the gatehouse entry failed"
[ "$body" = "hello from the server" ] || gh_fail "stunnel exit: unexpected body: $body"
gh_wait_grep "^$EXITS4 80 \"GET /\?to-stunnel HTTP/1.1\" 200 " "$GH_TMP/origin-access.log" \
    "nginx got the request from stunnel"
gh_wait_grep "^$CLI4:[0-9]+ \[.*\] gateway stunnel/exit [0-9]+/[0-9]+/[0-9]+ [1-9][0-9]+ -- " "$GH_TMP/entry.log" \
    "the entry logged the intercepted session"
gh_wait_grep "Service \[tunnel\] accepted connection from $ENTX4:" "$GH_TMP/stunnel-exit.err" \
    "stunnel accepted the entry"

gh_x "$C" curl -sS --max-time 5 --interface "$ROGUE4" "http://$ORIGIN4/?rogue-gatehouse" >"$GH_TMP/rogue-b.out" 2>&1 &&
    gh_fail "stunnel let another CA's certificate through: $(cat "$GH_TMP/rogue-b.out")"
gh_wait_grep "Rejected by CERT at depth=0: CN=rogue" "$GH_TMP/stunnel-exit.err" \
    "stunnel said why it refused the rogue entry"
gh_assert_no_grep "GET /\?rogue" "$GH_TMP/origin-access.log" "a refused request reached nginx"
gh_pass
