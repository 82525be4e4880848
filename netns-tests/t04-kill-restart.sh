#!/usr/bin/env bash
# Test 4: after kill -9 the unit stays behind; a restart replaces it (never doubles it) and traffic
# flows; after another kill -9, `gatehouse rules --remove` cleans everything up.
#
#   +-----------+         +--------------------------+         +-----------+
#   | gh14c     |---------| gh14g  gatehouse (no -f) |---------| gh14s     |
#   | curl      |         | killed, restarted        |         | nginx :80 |
#   +-----------+         +--------------------------+         +-----------+
. "$(dirname "$0")/lib.sh"
gh_init t04 14
gh_topology
gh_nginx "$S" web
gh_gatehouse "$G" gw1
kill -9 "$GH_PID_gw1"; wait "$GH_PID_gw1" 2>/dev/null
gh_x "$G" nft list table inet gatehouse >/dev/null 2>&1 || gh_fail "expected the killed run's table to remain"

gh_gatehouse "$G" gw2
[ "$(gh_x "$G" nft list tables | grep -c 'inet gatehouse')" = 1 ] || gh_fail "nft table count: $(gh_x "$G" nft list tables)"
[ "$(gh_x "$G" nft list table inet gatehouse | grep -c 'tproxy ip to')" = 1 ] || gh_fail "tproxy rules doubled"
[ "$(gh_x "$G" ip -4 rule | grep -c 'proto 103')" = 1 ] || gh_fail "ip -4 rules: $(gh_x "$G" ip -4 rule)"
[ "$(gh_x "$G" ip -6 rule | grep -c 'proto 103')" = 1 ] || gh_fail "ip -6 rules: $(gh_x "$G" ip -6 rule)"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "no traffic after restart"
gh_assert_grep "^$CLI4 80 " "$GH_TMP/web-access.log" "client IP after restart"
sleep 0.2
gh_assert_grep "^$CLI4:[0-9]+ " "$GH_TMP/gw2.log" "restarted gatehouse carried it"

kill -9 "$GH_PID_gw2"; wait "$GH_PID_gw2" 2>/dev/null
gh_x "$G" "$GATEHOUSE" rules --remove >"$GH_TMP/remove.out" 2>&1 || gh_fail "rules --remove failed: $(cat "$GH_TMP/remove.out")"
gh_x "$G" nft list tables | grep -q gatehouse && gh_fail "table left after rules --remove"
gh_x "$G" ip -4 rule | grep -q 'proto 103' && gh_fail "IPv4 rule left after rules --remove"
gh_x "$G" ip -6 rule | grep -q 'proto 103' && gh_fail "IPv6 rule left after rules --remove"
[ -z "$(gh_x "$G" ip -4 route show table 100)$(gh_x "$G" ip -6 route show table 100)" ] || gh_fail "routes left after rules --remove"
gh_pass
