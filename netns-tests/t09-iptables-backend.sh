#!/usr/bin/env bash
# Test 9: test 1 with the iptables-legacy backend: GATEHOUSE chains while running, none after SIGTERM,
# no nft table at any time. Then `plumbing auto` on a host without a working nft (a PATH without it)
# falls back to iptables-legacy by itself.
#
#   +-----------+         +------------------------------+         +-----------+
#   | gh19c     |---------| gh19g  gatehouse             |---------| gh19s     |
#   | curl      |         | plumbing iptables            |         | nginx :80 |
#   +-----------+         +------------------------------+         +-----------+
. "$(dirname "$0")/lib.sh"
gh_init t09 19
gh_topology
gh_nginx "$S" web
sed 's/^global$/global\n    plumbing iptables/' "$GH_ROOT/config/default.cfg" >"$GH_TMP/gw.cfg"
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"
gh_x "$G" iptables-legacy -t mangle -S | grep -q -- '-A PREROUTING -j GATEHOUSE' || gh_fail "no IPv4 jump"
gh_x "$G" ip6tables-legacy -t mangle -S | grep -q -- '-j TPROXY' || gh_fail "no IPv6 TPROXY rule"
gh_x "$G" nft list tables 2>/dev/null | grep -q 'inet gatehouse' && gh_fail "nft table present with plumbing iptables"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "curl through the iptables plumbing failed"
gh_assert_grep "^$CLI4 80 " "$GH_TMP/web-access.log" "nginx saw the client's IP"
sleep 0.2
gh_assert_grep "^$CLI4:[0-9]+ .* -- " "$GH_TMP/gw.log" "gatehouse carried it"
kill -TERM "$GH_PID_gw"; wait "$GH_PID_gw" || gh_fail "non-zero exit after SIGTERM"
gh_x "$G" iptables-legacy -t mangle -S | grep -q GATEHOUSE && gh_fail "IPv4 chains left"
gh_x "$G" ip6tables-legacy -t mangle -S | grep -q GATEHOUSE && gh_fail "IPv6 chains left"
gh_x "$G" ip -4 rule | grep -q 'proto 103' && gh_fail "rule left"

# Automatic choice: the default config (plumbing auto) where nft cannot be run.
mkdir -p "$GH_TMP/bin"
for t in iptables-legacy iptables-legacy-restore iptables-legacy-save \
    ip6tables-legacy ip6tables-legacy-restore ip6tables-legacy-save; do
    ln -s "$(command -v "$t")" "$GH_TMP/bin/$t"
done
ip netns exec "$G" env PATH="$GH_TMP/bin" "$GATEHOUSE" >"$GH_TMP/auto.log" 2>"$GH_TMP/auto.err" &
auto=$!
GH_PIDS+=("$auto")
for _ in $(seq 100); do grep -q " ready" "$GH_TMP/auto.err" && break; sleep 0.1; done
grep -q "firewall=Iptables" "$GH_TMP/auto.err" || gh_fail "auto did not fall back to iptables: $(cat "$GH_TMP/auto.err")"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "curl through the auto-chosen iptables plumbing failed"
sleep 0.2
gh_assert_grep "^$CLI4:[0-9]+ .* -- " "$GH_TMP/auto.log" "auto-chosen backend carried it"
kill -TERM "$auto"; wait "$auto" || gh_fail "non-zero exit after SIGTERM (auto)"
gh_x "$G" iptables-legacy -t mangle -S | grep -q GATEHOUSE && gh_fail "IPv4 chains left (auto)"
gh_pass
