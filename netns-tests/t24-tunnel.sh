#!/usr/bin/env bash
# A TLS tunnel between two gatehouse gateways. The entry intercepts the client's HTTP and HTTPS and
# carries each connection to the exit over mutually authenticated TLS, with a PROXY v2 header inside
# the TLS session (proxy-in-tls) naming the client and its original destination; the exit checks the
# entry's certificate, reads the header, and dials that destination from the client's own address.
# Checked: both requests reach their original destinations (nginx sees the client's IP, the exit's
# log the client and the destination); an entry with a certificate from another CA is refused (PR);
# a peer with the right certificate but no header is refused (PR); and the header travels inside
# TLS: an exit reading it in HAProxy's clear placement refuses the entry, and a TLS-terminating
# recorder (socat) finds it as the first bytes of the session.
#
#   +------------+      +------------------------+      +-----------------------------+      +----------------+
#   | gh54c      | veth | gh54e  entry           | veth | gh54x  exit                 | veth | gh54s          |
#   | curl       |------| ip_forward=0           |------| ip_forward=0                |------| nginx :80      |
#   | 10.54.1.2  | c0 e0| gatehouse: intercepts  | e1 x0| gatehouse:                  | x1 s0| nginx :443 ssl |
#   |  .3 rogue  |      |  80,443 from e0, sends |      |  :8443 ssl verify required  |      |  for origin.   |
#   |  .4 clear  |      |  them to the exit over |      |   accept-proxy proxy-in-tls |      |  tunnel.test   |
#   |  .5 record |      |  TLS, PROXY v2 inside  |      |   to dst 0.0.0.0 from the   |      | 10.54.2.2      |
#   |            |      | no route to 10.54.2/24 |      |   client's IP (usesrc)      |      | default route  |
#   |            |      | 10.54.1.1              |      |  :8444 header in clear      |      |  via 10.54.2.1 |
#   | 10.54.5.1  |      | 10.54.3.1, .9 (peer)   |      |  :8445 socat recorder       |      +----------------+
#   +-----|------+      +------------------------+      | 10.54.3.2    |    10.54.2.1 |
#         | veth c1 d0                                  +-----------------------------+
#   +-----|------+
#   | gh54d      |
#   | dnsmasq    |  origin.tunnel.test -> 10.54.2.2
#   | 10.54.5.2  |
#   +------------+
#
# The client's sources pick the entry's backend: .2 the tunnel, .3 a tunnel with a client certificate
# from another CA, .4 the exit's listener that wants the header before the handshake, .5 the recorder.
# Forwarding is off on both gateways and the entry has no route towards the servers, so only the two
# gatehouses can carry a byte from the client to nginx.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t24 54
command -v socat >/dev/null || gh_fail "socat is not installed (scripts/install-deps.sh installs it)"

C=${GH_P}c E=${GH_P}e X=${GH_P}x S=${GH_P}s D=${GH_P}d
CLI4=10.54.1.2 ROGUE4=10.54.1.3 CLEAR4=10.54.1.4 REC4=10.54.1.5 ENTC4=10.54.1.1
ENTX4=10.54.3.1 PEER4=10.54.3.9 EXIT4=10.54.3.2 EXITS4=10.54.2.1 ORIGIN4=10.54.2.2
DNSC4=10.54.5.2
for ns in "$C" "$E" "$X" "$S" "$D"; do gh_ns "$ns"; done
gh_link "$C" "${GH_P}c0" "$CLI4/24 $ROGUE4/24 $CLEAR4/24 $REC4/24" "$E" "${GH_P}e0" "$ENTC4/24"
gh_link "$E" "${GH_P}e1" "$ENTX4/24 $PEER4/24" "$X" "${GH_P}x0" "$EXIT4/24"
gh_link "$X" "${GH_P}x1" "$EXITS4/24" "$S" "${GH_P}s0" "$ORIGIN4/24"
gh_link "$C" "${GH_P}c1" "10.54.5.1/24" "$D" "${GH_P}d0" "$DNSC4/24"
ip -n "$C" route add default via "$ENTC4"
# The server answers the client's own address (usesrc clientip on the exit) through the exit.
ip -n "$S" route add default via "$EXITS4"
for ns in "$E" "$X"; do
    gh_x "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
done
gh_x "$E" ip route get "$ORIGIN4" >/dev/null 2>&1 && gh_fail "the entry has a route to the servers"

echo "nameserver $DNSC4" >"/etc/netns/$C/resolv.conf"
echo "$ORIGIN4 origin.tunnel.test" >"$GH_TMP/dns.hosts"
gh_dnsmasq dns "$DNSC4"

gh_tunnel_pki
PKI=$GH_TMP/pki
gh_nginx "$S" origin "listen $ORIGIN4:80; listen $ORIGIN4:443 ssl;
        ssl_certificate $PKI/origin.crt; ssl_certificate_key $PKI/origin.key;"

# Every server line of the entry: the exit's name checked against the tunnel's CA, a PROXY v2
# header inside the session.
TUN="ssl ca-file $PKI/ca.crt verifyhost exit.tunnel.test send-proxy-v2 proxy-in-tls"
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
    intercept tcp dport 80,443 iif ${GH_P}e0
    use_backend rogue if { src $ROGUE4 }
    use_backend clear if { src $CLEAR4 }
    use_backend recorder if { src $REC4 }
    default_backend tunnel
backend tunnel
    server exit $EXIT4:8443 crt $PKI/entry.pem $TUN
backend rogue
    server exit $EXIT4:8443 crt $PKI/rogue.pem $TUN
backend clear
    server exit $EXIT4:8444 crt $PKI/entry.pem $TUN
backend recorder
    server exit $EXIT4:8445 crt $PKI/entry.pem $TUN
CFG

# The exit's tunnel log line is the tcplog layout with the original destination (%fi:%fp, the
# header's) at the end.
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
frontend tunnel
    bind $EXIT4:8443 ssl crt $PKI/exit.pem ca-file $PKI/ca.crt verify required accept-proxy proxy-in-tls
    log-format "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq %fi:%fp"
    default_backend original
# HAProxy's placement: the header before the handshake, in clear.
frontend clear
    bind $EXIT4:8444 ssl crt $PKI/exit.pem ca-file $PKI/ca.crt verify required accept-proxy
    default_backend original
backend original
    source 0.0.0.0 usesrc clientip
    server dst 0.0.0.0
CFG
gh_gatehouse "$X" exit -f "$GH_TMP/exit.cfg"
gh_gatehouse "$E" entry -f "$GH_TMP/entry.cfg"

# --- a. HTTP and HTTPS reach their original destinations, from the client's own address ----------
body=$(gh_x "$C" curl -sS --max-time 5 "http://$ORIGIN4/?tunnel-http") || gh_fail "HTTP through the tunnel failed"
[ "$body" = "hello from the server" ] || gh_fail "HTTP: unexpected body: $body"
gh_wait_grep "^$CLI4 80 \"GET /\?tunnel-http HTTP/1.1\" 200 .* $ORIGIN4\$" "$GH_TMP/origin-access.log" \
    "nginx saw the client's own address on :80"
gh_wait_grep "^$CLI4:[0-9]+ \[.*\] gateway tunnel/exit [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- " "$GH_TMP/entry.log" \
    "the entry logged the HTTP session into the tunnel"
gh_wait_grep "^$CLI4:[0-9]+ \[.*\] tunnel original/dst [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- .* $ORIGIN4:80\$" \
    "$GH_TMP/exit.log" "the exit logged the client and the HTTP destination"

# The name comes from the test's DNS; curl checks the origin's certificate against the test CA alone.
body=$(gh_x "$C" curl -sS --max-time 5 --cacert "$PKI/ca.crt" "https://origin.tunnel.test/?tunnel-https") ||
    gh_fail "HTTPS through the tunnel failed"
[ "$body" = "hello from the server" ] || gh_fail "HTTPS: unexpected body: $body"
gh_wait_grep "^$CLI4 443 \"GET /\?tunnel-https HTTP/1.1\" 200 .* $ORIGIN4\$" "$GH_TMP/origin-access.log" \
    "nginx saw the client's own address on :443"
gh_wait_grep "^$CLI4:[0-9]+ \[.*\] tunnel original/dst [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- .* $ORIGIN4:443\$" \
    "$GH_TMP/exit.log" "the exit logged the client and the HTTPS destination"
gh_assert_no_grep "^($EXITS4|$EXIT4|$ENTX4) " "$GH_TMP/origin-access.log" "nginx saw a gateway's address"

# --- b. an entry whose client certificate comes from another CA is refused -----------------------
gh_x "$C" curl -sS --max-time 5 --interface "$ROGUE4" "http://$ORIGIN4/?rogue" >"$GH_TMP/rogue.out" 2>&1 &&
    gh_fail "a request crossed a tunnel with the wrong client certificate: $(cat "$GH_TMP/rogue.out")"
gh_wait_grep "TLS handshake refused: invalid peer certificate: UnknownIssuer" "$GH_TMP/exit.err" \
    "the exit said why it refused the rogue entry"
gh_wait_grep "^$ENTX4:[0-9]+ \[.*\] tunnel tunnel/<NOSRV> .* PR " "$GH_TMP/exit.log" "the rogue entry logged PR"

# --- c. a peer with the right certificate that sends no PROXY header is refused ------------------
gh_x "$E" curl -sS --max-time 5 --interface "$PEER4" --cert "$PKI/entry.pem" --cacert "$PKI/ca.crt" \
    --resolve "exit.tunnel.test:8443:$EXIT4" "https://exit.tunnel.test:8443/?no-header" >"$GH_TMP/peer.out" 2>&1 &&
    gh_fail "a peer without a PROXY header got an answer: $(cat "$GH_TMP/peer.out")"
gh_wait_grep "accept-proxy \(inside TLS\): .*closing" "$GH_TMP/exit.err" "the exit said why it refused the peer"
gh_wait_grep "^$PEER4:[0-9]+ \[.*\] tunnel tunnel/<NOSRV> .* PR " "$GH_TMP/exit.log" "the header-less peer logged PR"

# --- d. the header is inside TLS ---------------------------------------------------------------
# An exit that wants it before the handshake (HAProxy's placement) reads a ClientHello instead.
gh_x "$C" curl -sS --max-time 5 --interface "$CLEAR4" "http://$ORIGIN4/?clear" >"$GH_TMP/clear.out" 2>&1 &&
    gh_fail "an exit expecting the header in clear took the entry's connection: $(cat "$GH_TMP/clear.out")"
gh_wait_grep "accept-proxy: .*closing" "$GH_TMP/exit.err" "the clear-placement exit said why it refused"
gh_wait_grep "^$ENTX4:[0-9]+ \[.*\] clear clear/<NOSRV> .* PR " "$GH_TMP/exit.log" "the clear-placement exit logged PR"
gh_assert_no_grep "GET /\?(rogue|no-header|clear) " "$GH_TMP/origin-access.log" "a refused request reached nginx"

# A recorder that terminates the tunnel's TLS (the exit's certificate, the entry's checked) writes
# down what comes inside: the v2 signature first, the client and its destination, then the request.
gh_x "$X" socat -u "OPENSSL-LISTEN:8445,bind=$EXIT4,reuseaddr,cert=$PKI/exit.pem,cafile=$PKI/ca.crt,verify=1" \
    "CREATE:$GH_TMP/inside.bin" 2>"$GH_TMP/recorder.err" &
GH_PIDS+=("$!")
for _ in $(seq 50); do gh_x "$X" ss -Hltn "src $EXIT4:8445" | grep -q . && break; sleep 0.1; done
# Nothing answers the request: curl gives up, and closing makes the recorder finish its file.
gh_x "$C" curl -sS --max-time 2 --interface "$REC4" "http://$ORIGIN4/?recorded" >/dev/null 2>&1
for _ in $(seq 50); do grep -q "recorded" "$GH_TMP/inside.bin" 2>/dev/null && break; sleep 0.1; done
hex=$(od -An -v -tx1 "$GH_TMP/inside.bin" | tr -d ' \n')
# Signature, version 2 PROXY (21), TCP over IPv4 (11), then source 10.54.1.5 and destination 10.54.2.2.
[[ $hex == 0d0a0d0a000d0a515549540a2111????0a3601050a360202????0050* ]] ||
    gh_fail "the recorder did not find the PROXY v2 header first inside TLS: ${hex:0:64}"
grep -qa "GET /?recorded HTTP/1.1" "$GH_TMP/inside.bin" || gh_fail "the request did not follow the header inside TLS"
gh_pass
