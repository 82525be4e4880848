#!/usr/bin/env bash
# Issue #3: a name with both IPv4 and IPv6 addresses is dialled with happy eyeballs (RFC 8305): IPv6
# first, and if it has not connected within 250 ms, IPv4 alongside; the first to connect wins. Here the
# server silently drops IPv6 for one name (so IPv4 wins after the delay) and IPv4 for another (so IPv6
# wins at once).
#
#   +-----------+        +----------------------------------+        +----------------------------+
#   | gh46c     |  veth  | gh46g   forwarding off           |  veth  | gh46s  nginx :443 ssl      |
#   | curl      |--------| gatehouse: intercept 443,        |--------| 10.46.2.2, fd00:46:2::2    |
#   | 10.46.1.2 |        | server %[req.ssl_sni]:443        |        |   (IPv6 :443 dropped)      |
#   +-----------+        | (no usesrc: either family)       |        | 10.46.2.3 (dropped),       |
#                        +----------------------------------+        |   fd00:46:2::3             |
#                                | 10.46.4.1                       +----------------------------+
#                        +-----------------+  v4wins.example.test -> 10.46.2.2, fd00:46:2::2
#                        | gh46d dnsmasq   |  v6wins.example.test -> 10.46.2.3, fd00:46:2::3
#                        +-----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t16 46
gh_topology
gh_dns_topology
gh_two_servers
SRV6B=fd00:46:2::3
ip -n "$S" -6 addr add "$SRV6B/64" dev "${GH_P}s0" nodad
printf '%s v4wins.example.test\n%s v4wins.example.test\n%s v6wins.example.test\n%s v6wins.example.test\n' \
    "$SRV4" "$SRV6" "$SRV4B" "$SRV6B" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"
# Silent drops (no reset, no ICMP): only a timer can tell the attempt failed.
gh_x "$S" nft -f - <<NFT || gh_fail "nft drop rules"
table inet blackhole {
    chain input {
        type filter hook input priority 0;
        ip6 daddr $SRV6 tcp dport 443 drop
        ip daddr $SRV4B tcp dport 443 drop
    }
}
NFT
FAKE=10.46.9.9

cat >"$GH_TMP/gw.cfg" <<CFG
resolvers dns
    nameserver honest $DNSG4:53
frontend sni
    bind :15443 transparent
    intercept dport 443
    default_backend by-name
backend by-name
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name .example.test
    allow-net 10.46.0.0/16 fd00:46::/32
    timeout connect 5s
CFG
GH_ENV=("GATEHOUSE_LOG=info,gatehouse::session=debug")
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

tls() { gh_x "$C" curl -sS --max-time 10 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$FAKE" -o /dev/null "https://$1/"; }
tc_of() { # the connect time (%Tc) of NAME's log line
    grep -E "\{$1\}\$" "$GH_TMP/gw.log" | tail -n 1 | awk '{print $5}' | cut -d/ -f2
}

tls v4wins.example.test || gh_fail "v4wins.example.test"
gh_wait_grep "\{v4wins\.example\.test\}\$" "$GH_TMP/gw.log" "v4wins logged"
grep -q "name=Some(\"v4wins.example.test\") server=$SRV4:443" "$GH_TMP/gw.err" || gh_fail "IPv4 did not win: $(grep connected "$GH_TMP/gw.err")"
tc=$(tc_of v4wins.example.test)
if [ "$tc" -lt 240 ] || [ "$tc" -ge 2000 ]; then
    gh_fail "IPv4 won after ${tc} ms; expected the 250 ms happy-eyeballs delay"
fi

tls v6wins.example.test || gh_fail "v6wins.example.test"
gh_wait_grep "\{v6wins\.example\.test\}\$" "$GH_TMP/gw.log" "v6wins logged"
grep -q "name=Some(\"v6wins.example.test\") server=\[$SRV6B\]:443" "$GH_TMP/gw.err" || gh_fail "IPv6 did not win: $(grep connected "$GH_TMP/gw.err")"
tc=$(tc_of v6wins.example.test)
[ "$tc" -lt 200 ] || gh_fail "IPv6, tried first, took ${tc} ms"
gh_pass
