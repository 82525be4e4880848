#!/usr/bin/env bash
# Test 9: test 1 with the iptables-legacy backend (`plumbing iptables`): GATEHOUSE chains while
# running, none after SIGTERM, no nft table at any time. Then `plumbing auto` (the default) on a host
# without a working nft (a PATH without it) falls back to iptables-legacy by itself.
#
#   +-----------+         +------------------------------+         +-----------+
#   | gh19c     |  veth   | gh19g  gatehouse -f gw.cfg   |  veth   | gh19s     |
#   | curl      |---------| plumbing iptables            |---------| nginx :80 |
#   | 10.19.1.2 |         | mangle: GATEHOUSE* chains    |         | 10.19.2.2 |
#   +-----------+         +------------------------------+         +-----------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t09 19
gh_topology
gh_nginx "$S" web

# gh_assert_no_unit WHEN: no GATEHOUSE chain in either family, no nft table, no rule or route.
gh_assert_no_unit() {
    local fam
    gh_x "$G" iptables-legacy -t mangle -S | grep -q GATEHOUSE && gh_fail "IPv4 chains $1: $(gh_x "$G" iptables-legacy -t mangle -S)"
    gh_x "$G" ip6tables-legacy -t mangle -S | grep -q GATEHOUSE && gh_fail "IPv6 chains $1: $(gh_x "$G" ip6tables-legacy -t mangle -S)"
    gh_x "$G" nft list tables 2>/dev/null | grep -q 'inet gatehouse' && gh_fail "nft table $1"
    for fam in 4 6; do
        gh_x "$G" ip -"$fam" rule | grep -q 'proto 103' && gh_fail "IPv$fam rule $1"
        [ -z "$(gh_x "$G" ip -"$fam" route show table 100)" ] || gh_fail "IPv$fam route in table 100 $1"
    done
    return 0
}

# The default config plus `plumbing iptables` in its global section.
sed 's/^global$/global\n    plumbing iptables/' "$GH_ROOT/config/default.cfg" >"$GH_TMP/gw.cfg"
grep -q '^    plumbing iptables$' "$GH_TMP/gw.cfg" || gh_fail "could not derive the config"
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"
grep -q "firewall=Iptables" "$GH_TMP/gw.err" || gh_fail "not the iptables backend: $(cat "$GH_TMP/gw.err")"
for ipt in iptables-legacy ip6tables-legacy; do
    gh_x "$G" "$ipt" -t mangle -S >"$GH_TMP/$ipt.txt"
    grep -q -- '^-N GATEHOUSE$' "$GH_TMP/$ipt.txt" || gh_fail "$ipt: no GATEHOUSE chain: $(cat "$GH_TMP/$ipt.txt")"
    grep -q -- '^-A PREROUTING -j GATEHOUSE$' "$GH_TMP/$ipt.txt" || gh_fail "$ipt: no jump from PREROUTING"
    grep -q -- '-j TPROXY --on-port 15080' "$GH_TMP/$ipt.txt" || gh_fail "$ipt: no TPROXY rule"
done
gh_x "$G" nft list tables 2>/dev/null | grep -q 'inet gatehouse' && gh_fail "nft table present with plumbing iptables"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "curl through the iptables plumbing failed"
gh_wait_grep "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP"
gh_wait_grep "^$CLI4:[0-9]+ .* gateway original-destination/original .* -- " "$GH_TMP/gw.log" "gatehouse carried it"
gh_stop gw TERM
[ "$GH_RC" = 0 ] || gh_fail "gatehouse exited $GH_RC after SIGTERM"
gh_assert_no_unit "left after SIGTERM"

# Automatic choice: the default config (plumbing auto) where nft cannot be run.
mkdir -p "$GH_TMP/bin"
for t in iptables-legacy iptables-legacy-restore iptables-legacy-save \
    ip6tables-legacy ip6tables-legacy-restore ip6tables-legacy-save; do
    ln -s "$(command -v "$t")" "$GH_TMP/bin/$t"
done
GH_ENV=(PATH="$GH_TMP/bin")
gh_gatehouse "$G" auto
GH_ENV=()
grep -q "firewall=Iptables" "$GH_TMP/auto.err" || gh_fail "auto did not fall back to iptables: $(cat "$GH_TMP/auto.err")"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "curl through the auto-chosen iptables plumbing failed"
gh_wait_grep "^$CLI4:[0-9]+ .* -- " "$GH_TMP/auto.log" "auto-chosen backend carried it"
gh_stop auto TERM
[ "$GH_RC" = 0 ] || gh_fail "gatehouse (auto) exited $GH_RC after SIGTERM"
gh_assert_no_unit "left after SIGTERM (auto)"
gh_pass
