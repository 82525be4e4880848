#!/usr/bin/env bash
# The demo: builds gatehouse, makes a client / gateway / server topology in network namespaces, runs
# gatehouse on its embedded default config (no -f), fetches a page through it, and shows that the
# server saw the client's own IP address. Everything is removed at the end. Run as root.
#
#   +-------------+        +-------------------------------+        +-------------+
#   | client      |  veth  | gateway  (IP forwarding OFF)  |  veth  | server      |
#   | 10.99.1.2   |--------| gatehouse, no config file     |--------| nginx :80   |
#   +-------------+        +-------------------------------+        +-------------+
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo makes network namespaces: run it as root" >&2; exit 1; }
bash scripts/install-deps.sh
echo "== building gatehouse"
cargo build --release 2>&1 | tail -n 1
set +e
. netns-tests/lib.sh
gh_init demo 99
gh_topology
gh_nginx "$S" web
echo "== starting gatehouse in the gateway namespace with no -f (the embedded default config)"
gh_gatehouse "$G" gw
echo "== the plumbing it installed itself:"
gh_x "$G" nft list table inet gatehouse | grep -E 'tproxy|socket' | sed 's/^[[:space:]]*/   /'
gh_x "$G" ip rule | grep 'proto 103' | sed 's/^/   /'
echo "== client $CLI4 fetches http://$SRV4/ (the gateway does not forward packets; only gatehouse can carry them)"
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" | sed 's/^/   server says: /' || gh_fail "curl failed"
sleep 0.3
echo "== gatehouse's log line (HAProxy tcplog layout):"
sed 's/^/   /' "$GH_TMP/gw.log"
echo "== the server's access log (remote address first):"
sed 's/^/   /' "$GH_TMP/web-access.log"
echo
echo "The server logged $CLI4, the client's own address, not the gateway's ($GWS4): gatehouse intercepted"
echo "the connection with TPROXY, read its original destination, and connected out with the client's IP"
echo "as source ('source 0.0.0.0 usesrc clientip'). On exit it removes its nft table, ip rules and routes."
kill -TERM "$GH_PID_gw"; wait "$GH_PID_gw"
echo "== gatehouse stopped; nft tables left in the gateway: $(gh_x "$G" nft list tables | grep -c gatehouse)"
trap - EXIT
gh_cleanup
echo "== topology removed. Done."
