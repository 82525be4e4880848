#!/usr/bin/env bash
# Issue #6: TLS in tcp mode with real clients and servers. gatehouse terminates TLS with the
# certificates of a directory (scripts/make-certs.sh, chosen by SNI), routes by the SNI to a plain
# nginx, asks for client certificates on one port, and originates TLS to an HTTPS origin, verified
# against the test CA (and refused with another CA). curl and openssl s_client check every
# certificate against the test CA alone.
#
#   +-------------------+        +-------------------------------+        +------------------------+
#   | gh53c             |  veth  | gh53g   ip_forward=0          |  veth  | gh53s                  |
#   | curl --cacert     |--------| gatehouse, all on 10.53.1.1:  |--------| nginx "web" :80 :8080  |
#   | openssl s_client  |        |  443  ssl crt DIR → web       |        |   (plain http)         |
#   |                   |        |  8443 ssl → origin, right CA  |        | nginx "origin" :443 ssl|
#   | 10.53.1.2         |        |  9443 ssl → origin, wrong CA  |        |   cert origin.example. |
#   |                   |        |  10443 ssl verify required    |        |   test, IP:10.53.2.2   |
#   |                   |        | 10.53.1.1 | 10.53.2.1         |        | 10.53.2.2              |
#   +-------------------+        +-------------------------------+        +------------------------+
#
# Names reach curl through --resolve, so no DNS is asked (each namespace's resolv.conf points at its
# own loopback, where nothing answers).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t23 53
gh_topology
GW=$GWC4
PKI=$GH_TMP/pki
ORIGIN_IP=$SRV4 "$GH_ROOT/scripts/make-certs.sh" "$PKI" a.example.test b.example.test '*.example.test' ||
    gh_fail "make-certs.sh"

mkdir -p "$GH_TMP/www"
echo "hello from the server" >"$GH_TMP/www/index.html"
gh_nginx "$S" web "listen 80; listen 8080;"
gh_nginx "$S" origin "listen 443 ssl; ssl_certificate $PKI/origin.pem; ssl_certificate_key $PKI/origin.pem;"

cat >"$GH_TMP/gw.cfg" <<CFG
global
    crt-base $PKI
    ca-base $PKI
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend https
    bind $GW:443 ssl crt crt alpn http/1.1
    use_backend by-sni if { ssl_fc_sni b.example.test }
    default_backend web
frontend to-origin
    bind $GW:8443 ssl crt crt
    default_backend origin
frontend to-origin-wrong-ca
    bind $GW:9443 ssl crt crt
    default_backend origin-wrong-ca
frontend mtls
    bind $GW:10443 ssl crt crt ca-file ca.crt verify required
    default_backend web
backend web
    server nginx $SRV4:80
backend by-sni
    server nginx $SRV4:8080
backend origin
    server o $SRV4:443 ssl verify required ca-file ca.crt verifyhost origin.example.test
backend origin-wrong-ca
    server o $SRV4:443 ssl verify required ca-file other-ca.crt verifyhost origin.example.test
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

# get NAME PORT PATH [CURL ARGS...]: the body, the certificate checked against the test CA only.
get() {
    local name=$1 port=$2 path=$3
    shift 3
    gh_x "$C" curl -sS --max-time 5 --cacert "$PKI/ca.crt" --resolve "$name:$port:$GW" "$@" \
        "https://$name:$port$path"
}
# served NAME: the subject of the certificate gatehouse serves for SNI NAME, verified for NAME.
served() {
    echo | gh_x "$C" timeout 10 openssl s_client -connect "$GW:443" -servername "$1" \
        -CAfile "$PKI/ca.crt" -verify_hostname "$1" -verify_return_error 2>/dev/null |
        openssl x509 -noout -subject 2>/dev/null
}

# --- Termination: each name gets its own certificate (or the wildcard), verified by the clients ---
[ "$(served a.example.test)" = "subject=O = gatehouse tests, CN = a.example.test" ] ||
    gh_fail "SNI a.example.test: served '$(served a.example.test)'"
[ "$(served b.example.test)" = "subject=O = gatehouse tests, CN = b.example.test" ] ||
    gh_fail "SNI b.example.test: served '$(served b.example.test)'"
[ "$(served c.example.test)" = "subject=O = gatehouse tests, CN = *.example.test" ] ||
    gh_fail "SNI c.example.test: served '$(served c.example.test)'"
[ "$(get a.example.test 443 /?a)" = "hello from the server" ] || gh_fail "https://a.example.test/"
[ "$(get b.example.test 443 /?b)" = "hello from the server" ] || gh_fail "https://b.example.test/"
# The plain requests reached nginx from the gateway (forwarding is off: only gatehouse carries
# bytes), a's on port 80, b's routed by its SNI to port 8080.
gh_wait_grep "^$GWS4 80 \"GET /\?a HTTP/1.1\" 200" "$GH_TMP/web-access.log" "a.example.test at nginx :80"
gh_wait_grep "^$GWS4 8080 \"GET /\?b HTTP/1.1\" 200" "$GH_TMP/web-access.log" "b.example.test at nginx :8080"
gh_wait_grep "^$CLI4:[0-9]+ .* https web/nginx [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- .* \{a\.example\.test\}\$" "$GH_TMP/gw.log" "a's session logged"
gh_wait_grep "^$CLI4:[0-9]+ .* https by-sni/nginx .* -- .* \{b\.example\.test\}\$" "$GH_TMP/gw.log" "b's session logged"
# Without the test CA the certificate is not trusted (curl exit 60): it is the test CA's.
gh_x "$C" curl -sS --max-time 5 -o /dev/null --resolve "a.example.test:443:$GW" https://a.example.test/ 2>/dev/null
rc=$?
[ "$rc" = 60 ] || gh_fail "curl without the test CA exited $rc, expected 60"

# --- Client certificates: refused without one (PR, the reason on standard error), through with one ---
get a.example.test 10443 /?anon -o /dev/null 2>/dev/null && gh_fail "mtls: no client certificate went through"
gh_wait_grep "TLS handshake refused: peer sent no certificates" "$GH_TMP/gw.err" "mtls refusal logged"
gh_wait_grep "^$CLI4:[0-9]+ .* mtls mtls/<NOSRV> .* PR " "$GH_TMP/gw.log" "mtls refusal: PR"
get a.example.test 10443 /?other --cert "$PKI/other-client.pem" -o /dev/null 2>/dev/null &&
    gh_fail "mtls: a certificate from another CA went through"
gh_wait_grep "TLS handshake refused: invalid peer certificate: UnknownIssuer" "$GH_TMP/gw.err" "wrong CA refusal logged"
[ "$(get a.example.test 10443 /?mtls --cert "$PKI/client.pem")" = "hello from the server" ] ||
    gh_fail "mtls with the right client certificate"
gh_wait_grep "^$GWS4 80 \"GET /\?mtls HTTP/1.1\" 200" "$GH_TMP/web-access.log" "mtls request at nginx"

# --- Origination: verify required against the right CA reaches the HTTPS origin ---------------------
[ "$(get a.example.test 8443 /?origin)" = "hello from the server" ] || gh_fail "TLS to the origin, right CA"
gh_wait_grep "^$GWS4 443 \"GET /\?origin HTTP/1.1\" 200" "$GH_TMP/origin-access.log" "the origin served it over TLS"
gh_wait_grep "^$CLI4:[0-9]+ .* to-origin origin/o [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- " "$GH_TMP/gw.log" "origin session logged"
# ... and with another CA it fails: the client gets nothing, gatehouse logs SC and why.
out=$(get a.example.test 9443 /?wrong 2>&1) && gh_fail "TLS to the origin with the wrong CA went through: $out"
[ -z "$(get a.example.test 9443 /?wrong 2>/dev/null)" ] || gh_fail "the wrong-CA client got a body"
gh_wait_grep "^$CLI4:[0-9]+ .* to-origin-wrong-ca origin-wrong-ca/o .* SC " "$GH_TMP/gw.log" "wrong CA: SC"
gh_wait_grep "TLS to the server failed: invalid peer certificate: UnknownIssuer .*backend=origin-wrong-ca" \
    "$GH_TMP/gw.err" "wrong CA: the reason"
gh_assert_no_grep "GET /\?wrong" "$GH_TMP/origin-access.log" "a request crossed the refused handshake"

# Every log line is in the tcplog layout (with the name when one was read).
bad=$(grep -vE -- "$GH_TCPLOG|$GH_TCPLOG_NAMED" "$GH_TMP/gw.log") && gh_fail "log lines not in tcplog layout: $bad"
# Five handshakes failed: curl without the test CA, the two refused client certificates, the two
# with the origin under the wrong CA.
gh_stop gw
grep -q "counters: .* tls_failed=5\$" "$GH_TMP/gw.err" || gh_fail "counters: $(grep counters "$GH_TMP/gw.err")"
gh_pass
