#!/usr/bin/env bash
# Test 3: while gatehouse runs, its plumbing unit is in place (nft table, ip rules, local routes, both
# families) and -p wrote its pidfile; after SIGTERM it exits 0 and nothing of the unit (or the pidfile)
# remains.
#
#   +-----------+         +--------------------------+         +-----------+
#   | gh13c     |---------| gh13g  gatehouse (no -f) |---------| gh13s     |
#   +-----------+         +--------------------------+         +-----------+
. "$(dirname "$0")/lib.sh"
gh_init t03 13
gh_topology
gh_gatehouse "$G" gw -p "$GH_TMP/gw.pid"
[ "$(cat "$GH_TMP/gw.pid")" = "$GH_PID_gw" ] || gh_fail "pidfile does not hold gatehouse's pid"

gh_x "$G" nft list table inet gatehouse >"$GH_TMP/nft.txt" 2>&1 || gh_fail "no nft table while running"
grep -q 'tproxy ip to :15080' "$GH_TMP/nft.txt" || gh_fail "no IPv4 tproxy rule: $(cat "$GH_TMP/nft.txt")"
grep -q 'tproxy ip6 to :15080' "$GH_TMP/nft.txt" || gh_fail "no IPv6 tproxy rule"
grep -q 'socket transparent 1' "$GH_TMP/nft.txt" || gh_fail "no socket-match rule"
[ "$(gh_x "$G" ip -4 rule | grep -c 'fwmark 0x1 lookup 100 proto 103')" = 1 ] || gh_fail "ip -4 rule: $(gh_x "$G" ip -4 rule)"
[ "$(gh_x "$G" ip -6 rule | grep -c 'fwmark 0x1 lookup 100 proto 103')" = 1 ] || gh_fail "ip -6 rule: $(gh_x "$G" ip -6 rule)"
gh_x "$G" ip -4 route show table 100 | grep -q '^local default dev lo proto 103' || gh_fail "no IPv4 local route"
gh_x "$G" ip -6 route show table 100 | grep -q '^local default dev lo proto 103' || gh_fail "no IPv6 local route"

kill -TERM "$GH_PID_gw"
wait "$GH_PID_gw"; rc=$?
[ "$rc" = 0 ] || gh_fail "gatehouse exited $rc after SIGTERM"
grep -q "plumbing removed" "$GH_TMP/gw.err" || gh_fail "no 'plumbing removed' in the log"
[ -e "$GH_TMP/gw.pid" ] && gh_fail "pidfile left behind"
gh_x "$G" nft list tables | grep -q gatehouse && gh_fail "nft table left behind"
gh_x "$G" ip -4 rule | grep -q 'proto 103' && gh_fail "IPv4 rule left behind"
gh_x "$G" ip -6 rule | grep -q 'proto 103' && gh_fail "IPv6 rule left behind"
[ -z "$(gh_x "$G" ip -4 route show table 100)" ] || gh_fail "IPv4 route left behind"
[ -z "$(gh_x "$G" ip -6 route show table 100)" ] || gh_fail "IPv6 route left behind"
gh_pass
