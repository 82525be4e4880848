#!/usr/bin/env bash
# Test 26: idle transparent sessions park (tune.idle-park) and carry on when they talk again.
#
#   +-----------+         +------------------------------+         +-----------+
#   | gh56c     |  veth   | gh56g  ip_forward=0          |  veth   | gh56s     |
#   | python:   |---------| gatehouse, TPROXY :80        |---------| nginx :80 |
#   | 40 keep-  |         | tune.idle-park 1s            |         | keep-alive|
#   | alive     |         | metrics on 10.56.1.1:8405    |         | 10.56.2.2 |
#   | 10.56.1.2 |         | 10.56.1.1 | 10.56.2.1        |         |           |
#   +-----------+         +------------------------------+         +-----------+
#
# Forty keep-alive HTTP connections make one request each, fall quiet, and must be counted as parked
# (gatehouse_sessions_parked); each then makes a second request on the same connection, which must be
# answered (the parked session woke and carried on) and seen by nginx from the client's address. With
# forwarding off, only gatehouse can carry them; when the client closes, gatehouse logs forty sessions
# with both requests' bytes.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t26 56
gh_topology
gh_nginx "$S" web

cat >"$GH_TMP/gw.cfg" <<EOF
global
    tune.idle-park 1s
defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
frontend gateway
    bind [::]:15080 transparent v4v6
    intercept tcp dport 80 iif !lo
    default_backend original-destination
backend original-destination
    source 0.0.0.0 usesrc clientip
    server original 0.0.0.0
frontend metrics
    mode http
    bind $GWC4:8405
    http-request use-service prometheus-exporter
EOF
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

parked() {
    gh_x "$C" curl -sS --max-time 5 "http://$GWC4:8405/metrics" |
        awk '$1 == "gatehouse_sessions_parked" {print $2}'
}

# The client: N connections, one request each, a quiet pause (the test reads the metric meanwhile: a
# file appears when the pause starts), a second request each, then close. Prints "ok N" at the end.
cat >"$GH_TMP/client.py" <<'EOF'
import os, socket, sys, time
host, n, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
req = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()

def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        body += s.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit("bad answer: %r" % head[:40])

conns = [socket.create_connection((host, 80), timeout=5) for _ in range(n)]
for s in conns:
    s.sendall(req)
    answer(s)
open(flag, "w").close()
deadline = time.time() + 20
while os.path.exists(flag) and time.time() < deadline:
    time.sleep(0.1)
for s in conns:
    s.sendall(req)
    answer(s)
for s in conns:
    s.close()
print("ok", n, flush=True)
EOF

N=40
gh_x "$C" timeout 60 python3 "$GH_TMP/client.py" "$SRV4" "$N" "$GH_TMP/quiet" >"$GH_TMP/client.out" 2>&1 &
client=$!
GH_PIDS+=("$client")
for _ in $(seq 100); do
    [ -e "$GH_TMP/quiet" ] && break
    sleep 0.1
done
[ -e "$GH_TMP/quiet" ] || gh_fail "the client's first requests did not finish: $(cat "$GH_TMP/client.out")"
# Quiet for more than tune.idle-park: all of them park.
got=
for _ in $(seq 50); do
    got=$(parked)
    [ "$got" = "$N" ] && break
    sleep 0.1
done
[ "$got" = "$N" ] || gh_fail "gatehouse_sessions_parked is '$got', not $N, after the connections went quiet"
# Nothing logged yet: the parked sessions are still open.
gh_assert_no_grep "gateway original-destination" "$GH_TMP/gw.log" "a session ended while parked"
rm -f "$GH_TMP/quiet"
wait "$client" || gh_fail "the client failed after the pause: $(cat "$GH_TMP/client.out")"
grep -q "^ok $N" "$GH_TMP/client.out" || gh_fail "client: $(cat "$GH_TMP/client.out")"
# Every request of both rounds reached nginx from the client's own address.
for _ in $(seq 50); do
    [ "$(grep -c "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log")" -ge $((2 * N)) ] && break
    sleep 0.1
done
seen=$(grep -c "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log")
[ "$seen" -ge $((2 * N)) ] || gh_fail "nginx saw $seen requests from $CLI4, not $((2 * N))"
gh_assert_no_grep "^$GWS4 " "$GH_TMP/web-access.log" "nginx saw the gateway's IP"
# Forty sessions, each logged once when the client closed, none killed or timed out.
for _ in $(seq 50); do
    [ "$(grep -c "gateway original-destination/original" "$GH_TMP/gw.log")" -ge "$N" ] && break
    sleep 0.1
done
logged=$(grep -c "gateway original-destination/original" "$GH_TMP/gw.log")
[ "$logged" = "$N" ] || gh_fail "gatehouse logged $logged sessions, not $N: $(cat "$GH_TMP/gw.log")"
gh_assert_no_grep "original-destination/original [-0-9/]+ [0-9]+ (K|c|s)" "$GH_TMP/gw.log" "a session was killed or timed out"
[ "$(parked)" = 0 ] || gh_fail "parked sessions left after the client closed: $(parked)"
gh_pass
