#!/usr/bin/env bash
# The demo: builds gatehouse, makes a client / gateway / server topology in network namespaces, runs
# gatehouse on its embedded default config (no -f), fetches a page through it, and shows that the
# server saw the client's own IP address. Everything is removed at the end. Run as root.
#
#   +-------------+        +-------------------------------+        +-------------+
#   | client      |  veth  | gateway  (IP forwarding OFF)  |  veth  | server      |
#   | 10.99.1.2   |--------| gatehouse, no config file     |--------| nginx :80   |
#   |             |        | 10.99.1.1 | 10.99.2.1         |        | 10.99.2.2   |
#   +-------------+        +-------------------------------+        +-------------+
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo makes network namespaces: run it as root" >&2; exit 1; }
# Sourced: it may add ~/.cargo/bin to PATH for the build.
# shellcheck source=install-deps.sh
. scripts/install-deps.sh

echo "== building gatehouse (cargo build --release)"
buildlog=$(mktemp)
if ! cargo build --release >"$buildlog" 2>&1; then
    cat "$buildlog"; rm -f "$buildlog"; exit 1
fi
tail -n 1 "$buildlog"; rm -f "$buildlog"
GATEHOUSE=${GATEHOUSE:-$(realpath "${CARGO_TARGET_DIR:-target}/release/gatehouse")}

# The helpers handle their own errors (gh_fail); gh_init's trap tears everything down on any exit.
set +e
# shellcheck source=../netns-tests/lib.sh
. netns-tests/lib.sh
gh_init demo 99
gh_topology
gh_nginx "$S" web

echo "== gateway namespace $G: IPv4 forwarding is $(gh_x "$G" sysctl -n net.ipv4.ip_forward) (off)," \
    "so only gatehouse can carry a connection"
echo "== starting gatehouse there with no -f (its embedded default config: intercept TCP 80 and 443)"
gh_gatehouse "$G" gw
echo "== the plumbing it installed by itself:"
gh_x "$G" nft list table inet gatehouse | grep -E 'tproxy|socket' | sed 's/^[[:space:]]*/   nft:   /'
gh_x "$G" ip rule | grep 'proto 103' | sed 's/^/   rule:  /'
gh_x "$G" ip route show table 100 | sed 's/^/   route: /'

echo "== client $CLI4 runs: curl http://$SRV4/"
body=$(gh_x "$C" curl -sS --max-time 5 "http://$SRV4/") || gh_fail "curl through the gateway failed"
echo "   server answered: $body"
gh_wait_grep "^$CLI4:" "$GH_TMP/gw.log" "gatehouse's log line"
gh_wait_grep "^$CLI4 " "$GH_TMP/web-access.log" "the server's log line with the client's IP"
echo
echo "== gatehouse's log line (HAProxy tcplog: client ip:port [date] frontend backend/server timers bytes state ...):"
grep "^$CLI4:" "$GH_TMP/gw.log" | sed 's/^/   /'
echo "== the server's nginx access log line (remote address first):"
grep "^$CLI4 " "$GH_TMP/web-access.log" | sed 's/^/   /'
echo
echo "What you just saw: the client asked for http://$SRV4/ through a gateway that does not forward packets."
echo "gatehouse, run with no configuration file, caught the connection with TPROXY, read its original"
echo "destination and connected to it with the client's own address as source (usesrc clientip): nginx"
echo "logged $CLI4, the client, not the gateway's $GWS4. gatehouse logged the session in HAProxy's tcplog format."
echo

gh_stop gw TERM
[ "$GH_RC" = 0 ] || gh_fail "gatehouse exited $GH_RC on SIGTERM"
echo "== gatehouse stopped (exit 0) and removed its plumbing: nft tables named gatehouse left:" \
    "$(gh_x "$G" nft list tables | grep -c gatehouse), ip rules left: $(gh_x "$G" ip rule | grep -c 'proto 103')"
trap - EXIT
gh_cleanup
echo "== namespaces removed. Done."
