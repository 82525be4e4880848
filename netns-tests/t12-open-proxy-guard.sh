#!/usr/bin/env bash
# Issue #3: the open-proxy guard. A backend that dials the name the client sent refuses names off its
# allow-list (GR) and, whatever the name, addresses that are loopback (localhost, a name resolving to
# 127.0.0.1) or the gateway's own (GC); the client gets a TLS alert, the server never sees a request.
#
#   +-----------+        +-------------------------------+        +---------------------+
#   | gh42c     |  veth  | gh42g   ip_forward=0          |  veth  | gh42s               |
#   | curl      |--------| gatehouse: intercept 443,     |--------| nginx :443 ssl      |
#   | 10.42.1.2 |        | server %[req.ssl_sni]:443     |        | 10.42.2.2           |
#   +-----------+        | 10.42.1.1 | 10.42.2.1         |        +---------------------+
#                        +-------------------------------+
#                                | 10.42.4.1
#                        +-----------------+  ok.example.test   -> 10.42.2.2
#                        | gh42d dnsmasq   |  lo.example.test   -> 127.0.0.1
#                        | 10.42.4.2       |  self.example.test -> 10.42.2.1 (the gateway)
#                        +-----------------+  ok.other.test     -> 10.42.2.2 (not allowed)
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t12 42
gh_topology
gh_dns_topology
gh_two_servers
printf '%s ok.example.test ok.other.test\n127.0.0.1 lo.example.test localhost\n%s self.example.test\n' \
    "$SRV4" "$GWS4" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"
FAKE=10.42.9.9
printf 'example.test\n.example.test\n' >"$GH_TMP/allowed.lst"

cat >"$GH_TMP/gw.cfg" <<CFG
resolvers dns
    nameserver honest $DNSG4:53
frontend sni
    bind :15443 transparent
    intercept dport 443
    default_backend by-name
backend by-name
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name -f $GH_TMP/allowed.lst
    allow-net 10.42.0.0/16
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

tls() { # tls NAME: curl's exit status for https://NAME/ through the interception
    gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$FAKE" \
        -o /dev/null "https://$1/" 2>>"$GH_TMP/curl.err"
}
tls ok.example.test || gh_fail "the allowed name failed: $(cat "$GH_TMP/curl.err")"
for name in ok.other.test localhost lo.example.test self.example.test; do
    tls "$name" && gh_fail "$name was let through"
done
grep -q "alert access denied" "$GH_TMP/curl.err" || gh_fail "no TLS alert reached the client: $(cat "$GH_TMP/curl.err")"
gh_wait_grep " GR .*\{ok\.other\.test\}\$" "$GH_TMP/gw.log" "a name off the allow-list (GR)"
gh_wait_grep " GR .*\{localhost\}\$" "$GH_TMP/gw.log" "localhost (GR)"
gh_wait_grep " GC .*\{lo\.example\.test\}\$" "$GH_TMP/gw.log" "a name resolving to 127.0.0.1 (GC)"
gh_wait_grep " GC .*\{self\.example\.test\}\$" "$GH_TMP/gw.log" "a name resolving to the gateway (GC)"
# The names the guard refused were never even looked up, and the server served exactly one request.
gh_assert_no_grep "query\[A\] (ok\.other\.test|localhost)" "$GH_TMP/honest-dns.log" "a refused name was resolved"
[ "$(wc -l <"$GH_TMP/web-access.log")" = 1 ] || gh_fail "the server saw more than the allowed request: $(cat "$GH_TMP/web-access.log")"
gh_stop gw
grep -q "guard_refused=4 " "$GH_TMP/gw.err" || gh_fail "counters: $(grep counters "$GH_TMP/gw.err")"
gh_pass
