#!/usr/bin/env bash
# Issue #3: DNS-steered mode, the plain sniproxy setup. The client's DNS (a dnsmasq with
# address=/example.test/<gateway>) sends every example.test name to the gateway, where gatehouse
# listens on its own :443 and :80 (no interception, no transparent bind, forwarding off). gatehouse
# resolves the names through another, honest DNS view and dials the real servers: :443 with the
# client's address as source (usesrc clientip), :80 from its own address.
#
#   +-----------+        +-------------------------------+        +-----------------------+
#   | gh44c     |  veth  | gh44g   ip_forward=0          |  veth  | gh44s                 |
#   | curl      |--------| gatehouse on 10.44.1.1:443/:80|--------| nginx :80, :443 ssl   |
#   | 10.44.1.2 |        | 10.44.1.1 | 10.44.2.1         |        | 10.44.2.2, 10.44.2.3  |
#   +-----------+        +-------------------------------+        +-----------------------+
#     | 10.44.5.1                | 10.44.4.1
#     |                  +------------------------------------+
#     +------------------| gh44d                              |
#                        | 10.44.5.2 steering: *.example.test -> 10.44.1.1 (the gateway)
#                        | 10.44.4.2 honest:   a -> 10.44.2.2, b -> 10.44.2.3
#                        +------------------------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t14 44
gh_topology
gh_dns_topology
gh_two_servers
printf '%s a.example.test\n%s b.example.test\n%s loop.example.test\n' "$SRV4" "$SRV4B" "$GWC4" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"
gh_dnsmasq steering "$DNSC4" --address=/example.test/"$GWC4"

cat >"$GH_TMP/gw.cfg" <<CFG
# The gateway's resolv.conf names the honest server (gh_dns_topology): take it from there.
resolvers dns
    parse-resolv-conf
frontend https
    bind $GWC4:443
    default_backend tls-by-name
frontend http
    bind $GWC4:80
    default_backend http-by-host
backend tls-by-name
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name .example.test
    allow-net 10.44.0.0/16
    source 0.0.0.0 usesrc clientip
backend http-by-host
    server host %[req.hdr(host)] resolvers dns
    allow-name .example.test
    allow-net 10.44.0.0/16
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"
# The client's own resolver sends it to the gateway: no --resolve, no interception.
got=$(gh_x "$C" getent hosts b.example.test | awk '{print $1}')
[ "$got" = "$GWC4" ] || gh_fail "the steering DNS answered '$got' for b.example.test"

body=$(gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" "https://a.example.test/") || gh_fail "https://a.example.test/"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4\$" "$GH_TMP/web-access.log" "a.example.test with the client's address"
gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" -o /dev/null "https://b.example.test/" || gh_fail "https://b.example.test/"
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "b.example.test with the client's address"
gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://b.example.test/plain" || gh_fail "http://b.example.test/"
gh_wait_grep "^$GWS4 80 \"GET /plain HTTP/1.1\" 404 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "plain HTTP by Host from the gateway's address"
gh_wait_grep "https tls-by-name/sni .* -- .*\{a\.example\.test\}\$" "$GH_TMP/gw.log" "logged by name"
gh_wait_grep "http http-by-host/host .* -- .*\{b\.example\.test\}\$" "$GH_TMP/gw.log" "logged by Host"
# A name the honest DNS does not know fails (NC); one it maps back to the gateway would loop (GC).
gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://nope.example.test/" 2>/dev/null
gh_wait_grep " NC .*\{nope\.example\.test\}\$" "$GH_TMP/gw.log" "unknown name refused"
gh_x "$C" curl -sS --max-time 5 -o /dev/null "http://loop.example.test/" 2>/dev/null
gh_wait_grep " GC .*\{loop\.example\.test\}\$" "$GH_TMP/gw.log" "a name pointing back at the gateway refused"
gh_pass
