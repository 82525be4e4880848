#!/usr/bin/env bash
# Test 3: while gatehouse runs, its plumbing unit is in place (nft table, ip rules, local routes, both
# families) and -p wrote its pidfile; after SIGTERM it exits 0 and nothing of the unit (or the pidfile)
# remains.
#
#   +-----------+         +----------------------------+         +-----------+
#   | gh13c     |  veth   | gh13g  gatehouse (no -f)   |  veth   | gh13s     |
#   | 10.13.1.2 |---------| table inet gatehouse       |---------| 10.13.2.2 |
#   |           |         | ip rule pref 100 proto 103 |         |           |
#   |           |         | table 100: local default   |         |           |
#   +-----------+         +----------------------------+         +-----------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t03 13
gh_topology
gh_gatehouse "$G" gw -p "$GH_TMP/gw.pid"
[ "$(cat "$GH_TMP/gw.pid")" = "${GH_PID[gw]}" ] || gh_fail "pidfile does not hold gatehouse's pid"

# While running: the nft table with both families' tproxy rules and the socket match.
gh_x "$G" nft list table inet gatehouse >"$GH_TMP/nft.txt" 2>&1 || gh_fail "no nft table while running"
grep -q 'tproxy ip to :15080' "$GH_TMP/nft.txt" || gh_fail "no IPv4 tproxy rule: $(cat "$GH_TMP/nft.txt")"
grep -q 'tproxy ip6 to :15080' "$GH_TMP/nft.txt" || gh_fail "no IPv6 tproxy rule: $(cat "$GH_TMP/nft.txt")"
grep -q 'socket transparent 1' "$GH_TMP/nft.txt" || gh_fail "no socket-match rule: $(cat "$GH_TMP/nft.txt")"
# ... one policy rule per family, and the local default route in table 100 per family.
for fam in 4 6; do
    n=$(gh_x "$G" ip -"$fam" rule | grep -c '^100:.*fwmark 0x1 lookup 100 proto 103')
    [ "$n" = 1 ] || gh_fail "ip -$fam rule: $n gatehouse rules: $(gh_x "$G" ip -"$fam" rule)"
    gh_x "$G" ip -"$fam" route show table 100 | grep -q '^local default dev lo proto 103' \
        || gh_fail "no IPv$fam local route: $(gh_x "$G" ip -"$fam" route show table 100)"
done

gh_stop gw TERM
[ "$GH_RC" = 0 ] || gh_fail "gatehouse exited $GH_RC after SIGTERM"
grep -q "plumbing removed" "$GH_TMP/gw.err" || gh_fail "no 'plumbing removed' in the log"
[ -e "$GH_TMP/gw.pid" ] && gh_fail "pidfile left behind"
gh_x "$G" nft list tables | grep -q gatehouse && gh_fail "nft table left behind: $(gh_x "$G" nft list tables)"
for fam in 4 6; do
    gh_x "$G" ip -"$fam" rule | grep -q 'proto 103' && gh_fail "IPv$fam rule left behind: $(gh_x "$G" ip -"$fam" rule)"
    [ -z "$(gh_x "$G" ip -"$fam" route show table 100)" ] || gh_fail "IPv$fam route left in table 100"
done
gh_pass
