#!/usr/bin/env bash
# Issue #3: the name the client sent against the address it dialled. require-match refuses a forged
# SNI (dialling one server while naming another, PR) and passes an honest one; dial-original routes
# and logs by Host but connects to the original destination; ech reject refuses a ClientHello that
# offers Encrypted Client Hello. Mismatches and ECH are counted.
#
#   +--------------+        +-------------------------------+        +-----------------------+
#   | gh45c        |  veth  | gh45g   ip_forward=0          |  veth  | gh45s                 |
#   | curl,        |--------| 443: require-match, ech reject|--------| nginx :80, :443 ssl   |
#   | tls_hello.py |        | 80:  dial-original            |        | 10.45.2.2 a.example.. |
#   | 10.45.1.2    |        | 10.45.1.1 | 10.45.2.1         |        | 10.45.2.3 b.example.. |
#   +--------------+        +-------------------------------+        +-----------------------+
#                                   | 10.45.4.1
#                           +----------------+
#                           | gh45d dnsmasq  |
#                           | 10.45.4.2      |
#                           +----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t15 45
gh_topology
gh_dns_topology
gh_two_servers
printf '%s a.example.test\n%s b.example.test\n' "$SRV4" "$SRV4B" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"

cat >"$GH_TMP/gw.cfg" <<CFG
resolvers dns
    nameserver honest $DNSG4:53
frontend strict
    bind :15443 transparent
    intercept dport 443
    require-match
    ech reject
    default_backend by-name
frontend plain
    bind :15080 transparent
    intercept dport 80
    dial-original
    default_backend by-host
backend by-host
    server host %[req.hdr(host)] resolvers dns
    allow-name .example.test
    allow-net 10.45.0.0/16
    source 0.0.0.0 usesrc clientip
backend by-name
    server name %[req.ssl_sni] resolvers dns
    allow-name .example.test
    allow-net 10.45.0.0/16
    source 0.0.0.0 usesrc clientip
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

tls() { # tls NAME ADDR: curl https://NAME/ dialling ADDR
    gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$2" -o /dev/null "https://$1/" 2>>"$GH_TMP/curl.err"
}
tls a.example.test "$SRV4" || gh_fail "an honest SNI was refused: $(cat "$GH_TMP/curl.err")"
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4\$" "$GH_TMP/web-access.log" "the honest request"
tls b.example.test "$SRV4" && gh_fail "a forged SNI (b.example.test sent to $SRV4) was let through"
gh_wait_grep "strict by-name/name .* PR .*\{b\.example\.test\}\$" "$GH_TMP/gw.log" "the forged SNI refused (PR)"
[ "$(grep -c " 443 " "$GH_TMP/web-access.log")" = 1 ] || gh_fail "the forged request reached a server"

# ECH offered: refused with a TLS alert, even with an honest name.
gh_x "$C" timeout 10 python3 "$GH_ROOT/netns-tests/tls_hello.py" "$SRV4" 443 --sni a.example.test --ech \
    >"$GH_TMP/ech.out" 2>&1 && gh_fail "a hello offering ECH was let through: $(cat "$GH_TMP/ech.out")"
grep -q "x15" "$GH_TMP/ech.out" || gh_fail "no TLS alert for ECH: $(cat "$GH_TMP/ech.out")"
gh_x "$C" timeout 10 python3 "$GH_ROOT/netns-tests/tls_hello.py" "$SRV4" 443 --sni a.example.test \
    >"$GH_TMP/no-ech.out" 2>&1 || gh_fail "the same hello without ECH: $(cat "$GH_TMP/no-ech.out")"

# dial-original: Host names a.example.test (10.45.2.2), the client dialled 10.45.2.3: that is where it goes.
gh_x "$C" curl -sS --max-time 5 -o /dev/null -H "Host: a.example.test" "http://$SRV4B/orig" || gh_fail "dial-original"
gh_wait_grep "^$CLI4 80 \"GET /orig HTTP/1.1\" 404 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "dial-original went to the original destination"
gh_wait_grep "plain by-host/host .* -- .*\{a\.example\.test\}\$" "$GH_TMP/gw.log" "dial-original logged by name"
gh_stop gw
grep -Eq "counters: .*mismatch=1 ech=1 " "$GH_TMP/gw.err" || gh_fail "counters: $(grep counters "$GH_TMP/gw.err")"
gh_pass
