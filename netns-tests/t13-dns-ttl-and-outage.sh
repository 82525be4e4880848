#!/usr/bin/env bash
# Issue #3: dynamic DNS upstreams. A record change is picked up once its TTL (2 s) has run out, not
# before; when the DNS server dies, a name looked up before keeps working (its last answer is held)
# and a new name fails fast with NC instead of hanging the client.
#
#   +-----------+        +-------------------------------+        +-----------------------+
#   | gh43c     |  veth  | gh43g   ip_forward=0          |  veth  | gh43s                 |
#   | curl      |--------| gatehouse: intercept 443,     |--------| nginx :443 ssl        |
#   | 10.43.1.2 |        | server %[req.ssl_sni]:443     |        | 10.43.2.2, 10.43.2.3  |
#   +-----------+        +-------------------------------+        +-----------------------+
#                                | 10.43.4.1
#                        +-----------------+
#                        | gh43d dnsmasq   |  a.example.test -> 10.43.2.2, then 10.43.2.3 (TTL 2 s)
#                        | 10.43.4.2       |
#                        +-----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t13 43
gh_topology
gh_dns_topology
gh_two_servers
printf '%s a.example.test\n' "$SRV4" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"
FAKE=10.43.9.9

cat >"$GH_TMP/gw.cfg" <<CFG
resolvers dns
    nameserver honest $DNSG4:53
    timeout resolve 500ms
    resolve_retries 2
frontend sni
    bind :15443 transparent
    intercept dport 443
    default_backend by-name
backend by-name
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name .example.test
    allow-net 10.43.0.0/16
# A server given by name: resolved at start, re-resolved as its TTL runs out, changes logged.
frontend named
    bind $GWC4:8443
    default_backend named
backend named
    server web a.example.test:443 resolvers dns
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

tls() { gh_x "$C" curl -sS --max-time 10 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$FAKE" -o /dev/null -w '%{time_total}' "https://$1/"; }
served_by() { tail -n 1 "$GH_TMP/web-access.log" | awk '{print $NF}'; }

tls a.example.test >/dev/null || gh_fail "first request"
[ "$(served_by)" = "$SRV4" ] || gh_fail "first request went to $(served_by)"
# The record moves; within its TTL the cached answer stands.
printf '%s a.example.test\n' "$SRV4B" >"$GH_TMP/honest.hosts"
gh_dnsmasq_reload honest
tls a.example.test >/dev/null || gh_fail "request within the TTL"
[ "$(served_by)" = "$SRV4" ] || gh_fail "the change was seen before the TTL ran out"
sleep 2.5
tls a.example.test >/dev/null || gh_fail "request after the TTL"
[ "$(served_by)" = "$SRV4B" ] || gh_fail "the change was not picked up after the TTL: $(served_by)"
gh_wait_grep "server address changed .*host=\"?a\.example\.test\"? was=\[$SRV4\] now=\[$SRV4B\]" "$GH_TMP/gw.err" "the named server's change logged"
gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" --resolve "a.example.test:8443:$GWC4" -o /dev/null "https://a.example.test:8443/" ||
    gh_fail "the named server"
[ "$(served_by)" = "$SRV4B" ] || gh_fail "the named server still dials the old address"

# The DNS server dies. The known name still works after its TTL (the previous answer is held), fast.
kill "${GH_DNS_PID[honest]}"
gh_wait_gone "${GH_DNS_PID[honest]}" || gh_fail "dnsmasq did not stop"
sleep 2.5
t=$(tls a.example.test) || gh_fail "a cached name failed while the DNS server is down"
[ "$(served_by)" = "$SRV4B" ] || gh_fail "the held answer was not used"
awk -v t="$t" 'BEGIN {exit !(t < 1.5)}' || gh_fail "the cached name waited for the dead server: ${t}s"
# A new name fails, quickly and with a termination code of its own.
start=$(date +%s%N)
tls new.example.test >/dev/null 2>&1 && gh_fail "a new name worked without DNS"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 3000 ] || gh_fail "a new name took ${ms} ms to fail"
gh_wait_grep " NC .*\{new\.example\.test\}\$" "$GH_TMP/gw.log" "DNS failure logged as NC"
gh_pass
