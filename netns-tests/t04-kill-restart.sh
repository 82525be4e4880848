#!/usr/bin/env bash
# Test 4: after kill -9 the unit stays behind; a restart replaces it (never doubles it) and traffic
# flows; after another kill -9, `gatehouse rules --remove` cleans everything up.
#
#   +-----------+         +--------------------------+         +-----------+
#   | gh14c     |  veth   | gh14g  gatehouse (no -f) |  veth   | gh14s     |
#   | curl      |---------| kill -9, restart,        |---------| nginx :80 |
#   | 10.14.1.2 |         | kill -9, rules --remove  |         | 10.14.2.2 |
#   +-----------+         +--------------------------+         +-----------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t04 14
gh_topology
gh_nginx "$S" web

# gh_count_unit: "tables rules4 rules6 routes4 routes6", how many of each piece of the unit exist.
gh_count_unit() {
    echo "$(gh_x "$G" nft list tables | grep -c '^table inet gatehouse$')" \
        "$(gh_x "$G" ip -4 rule | grep -c 'proto 103')" "$(gh_x "$G" ip -6 rule | grep -c 'proto 103')" \
        "$(gh_x "$G" ip -4 route show table 100 | grep -c .)" "$(gh_x "$G" ip -6 route show table 100 | grep -c .)"
}

gh_gatehouse "$G" gw1
gh_stop gw1 KILL
[ "$(gh_count_unit)" = "1 1 1 1 1" ] || gh_fail "expected the killed run's unit to remain: $(gh_count_unit)"

gh_gatehouse "$G" gw2
[ "$(gh_count_unit)" = "1 1 1 1 1" ] || gh_fail "unit after restart (tables rules4 rules6 routes4 routes6): $(gh_count_unit)
$(gh_x "$G" nft list tables; gh_x "$G" ip rule; gh_x "$G" ip -6 rule)"
[ "$(gh_x "$G" nft list table inet gatehouse | grep -c 'tproxy ip to')" = 1 ] || gh_fail "tproxy rules doubled"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "no traffic after restart"
gh_wait_grep "^$CLI4 80 " "$GH_TMP/web-access.log" "client IP after restart"
gh_wait_grep "^$CLI4:[0-9]+ .* -- " "$GH_TMP/gw2.log" "restarted gatehouse carried it"

gh_stop gw2 KILL
[ "$(gh_count_unit)" = "1 1 1 1 1" ] || gh_fail "expected the second killed run's unit to remain: $(gh_count_unit)"
gh_x "$G" "$GATEHOUSE" rules --remove >"$GH_TMP/remove.out" 2>&1 || gh_fail "rules --remove failed: $(cat "$GH_TMP/remove.out")"
[ "$(gh_count_unit)" = "0 0 0 0 0" ] || gh_fail "left after rules --remove (tables rules4 rules6 routes4 routes6): $(gh_count_unit)"
gh_x "$G" nft list ruleset | grep -q gatehouse && gh_fail "nft ruleset still mentions gatehouse"
gh_pass
