#!/usr/bin/env bash
# Issue #4 (http mode): the four http configurations from our users' notes (tests/examples, copies of
# shared/examples) run for real, one after another, with only their addresses rewritten to this
# topology (and the pidfile moved into the test's directory). Each one's behaviour is checked with curl
# against real nginx servers: round robin and the stats page's 401, routing by Host, routing by path
# and extension, a user-agent redirect, a deny by source answered with the 403 errorfile, backups
# taking over with allbackups, the 503 errorfile, and cookie persistence with the client's own
# address as source (usesrc clientip).
#
#   +------------------+        +------------------------------+        +---------------------------+
#   | gh48c            |  veth  | gh48g   ip_forward=0         |  veth  | gh48s                     |
#   | curl             |--------| gatehouse on 10.48.1.1:80    |--------| nginx on 10.48.2.118 .119 |
#   | 10.48.1.2 (in)   |        | 10.48.1.1, 10.48.3.1         |        |   .7 .8 (examples 1-3)    |
#   | 10.48.3.2 (out)  |        | 10.48.2.1                    |        |   .50 .51 (example 4)     |
#   +------------------+        +------------------------------+        +---------------------------+
#
# Addresses: 172.16.10.X and 192.168.1.X → 10.48.2.X; `bind *:80` and `bind 0.0.0.0:80` →
# 10.48.1.1:80; the allowed source network 10.96.20.0/24 → 10.48.1.0/24 (10.48.3.2 is outside it).
# Examples 01 and 02 say `user haproxy` and `group haproxy`: gatehouse drops to them once bound (issue
# #5), so the test gives the host that user and group if it lacks them.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t18 48
gh_topology
# A second client address outside the allowed network of example 3.
gh_addr "$C" "${GH_P}c0" 10.48.3.2/24
gh_addr "$G" "${GH_P}g0" 10.48.3.1/24
for a in 118 119 7 8 50 51; do gh_addr "$S" "${GH_P}s0" "10.48.2.$a/24"; done
mkdir -p "$GH_TMP/www"
echo "hello from the server" >"$GH_TMP/www/index.html"
echo ok >"$GH_TMP/www/check.html"
echo ok >"$GH_TMP/www/index.jsp"
mkdir -p "$GH_TMP/www/nginx" "$GH_TMP/www/php"
echo png >"$GH_TMP/www/nginx/logo.png"
echo png >"$GH_TMP/www/img.png"
echo php >"$GH_TMP/www/php/index.html"
# Each server also answers /xff with the X-Forwarded-For it received.
XFF='location /xff { return 200 "xff=$http_x_forwarded_for\n"; }'
for a in 118 119 7 8 50 51; do gh_nginx "$S" "s$a" "listen 10.48.2.$a:80; $XFF"; done
declare -A NGINX_PID
i=0
for a in 118 119 7 8 50 51; do NGINX_PID[$a]=${GH_PIDS[-6 + i]}; i=$((i + 1)); done

gh_system_user haproxy
EX=$GH_ROOT/tests/examples
mkdir -p "$GH_TMP/ex"
cp -r "$EX/errorfiles" "$GH_TMP/ex/"
# rewrite FILE: the example with this topology's addresses.
rewrite() {
    sed -e 's/172\.16\.10\./10.48.2./g' -e 's/192\.168\.1\./10.48.2./g' \
        -e 's/bind\( *\)\*:80/bind\110.48.1.1:80/' -e 's/bind\( *\)0\.0\.0\.0:80/bind\110.48.1.1:80/' \
        -e 's#10\.96\.20\.0/24#10.48.1.0/24#' -e "s#/var/run/haproxy.pid#$GH_TMP/haproxy.pid#" \
        -e "s#/var/lib/haproxy/stats#$GH_TMP/${1%%.cfg}.sock#" -e "s#/usr/local/haproxy/stats#$GH_TMP/${1%%.cfg}.sock#" \
        "$EX/$1" >"$GH_TMP/ex/$1"
}
# start NAME FILE: gatehouse on the rewritten example, from the examples' folder (errorfile paths).
start() {
    rewrite "$2"
    cd "$GH_TMP/ex" || gh_fail "cd"
    gh_gatehouse "$G" "$1" -f "$2"
    cd - >/dev/null || gh_fail "cd back"
}
# get [CURL ARGS...] URL: the status code; the body goes to $GH_TMP/body, headers to $GH_TMP/head.
get() {
    gh_x "$C" curl -sS --max-time 5 -D "$GH_TMP/head" -o "$GH_TMP/body" -w '%{http_code}' "$@"
}
hits() { grep -cF "\"GET $2 " "$GH_TMP/s$1-access.log" 2>/dev/null || true; }
GW=http://10.48.1.1

# Examples 01 and 02 log to syslog at 127.0.0.1:514 (facility local0, up to info): a real listener
# (socat) in the gateway receives the datagrams. Example 03 has no `log` line: its lines go to
# standard output, gatehouse's default.
ip netns exec "$G" socat -u UDP-RECV:514,bind=127.0.0.1 OPEN:"$GH_TMP/syslog.log",creat,append {GH_LOCK_FD}>&- &
GH_PIDS+=("$!")
SYSLOG='^<134>[A-Z][a-z]{2} [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} gatehouse\[[0-9]+\]: '

# --- 01: listen, round robin, httpclose, forwardfor, stats auth -----------------------------------
start ex1 01-listen-roundrobin-stats.cfg
for i in 1 2 3 4; do [ "$(get "$GW/?rr$i")" = 200 ] || gh_fail "01: request $i"; done
n118=$(grep -c '"GET /?rr' "$GH_TMP/s118-access.log")
n119=$(grep -c '"GET /?rr' "$GH_TMP/s119-access.log")
[ "$n118" = 2 ] && [ "$n119" = 2 ] || gh_fail "01: round robin gave web1=$n118 web2=$n119"
# Not transparent here: the servers see the gateway, and the client in X-Forwarded-For.
gh_assert_grep '^10\.48\.2\.1 80 "GET /\?rr' "$GH_TMP/s118-access.log" "01: source is the gateway"
[ "$(get "$GW/xff")" = 200 ] || gh_fail "01: /xff"
grep -qx 'xff=10.48.1.2' "$GH_TMP/body" || gh_fail "01: X-Forwarded-For: $(cat "$GH_TMP/body")"
# httpclose: the gateway closes after each response.
grep -qi '^connection: close' "$GH_TMP/head" || gh_fail "01: no Connection: close"
[ "$(get "$GW/admin?stats")" = 401 ] || gh_fail "01: stats without credentials"
grep -qi '^www-authenticate: basic' "$GH_TMP/head" || gh_fail "01: no Basic challenge"
[ "$(get -u admin:admin "$GW/admin?stats")" = 200 ] || gh_fail "01: stats with credentials"
[ "$(get -u admin:wrong "$GW/admin?stats")" = 401 ] || gh_fail "01: stats with a wrong password"
# httplog lines, HAProxy's layout.
HTTPLOG=$SYSLOG'10\.48\.1\.2:[0-9]+ \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:.]+\] test test/web[12] [0-9]+/[0-9]+/[0-9]+/[0-9]+/[0-9]+ 200 [0-9]+ - - ---- [0-9]+/[0-9]+/[0-9]+/[0-9]+/[0-9]+ 0/0 "GET /\?rr1 HTTP/1\.1"$'
gh_wait_grep "$HTTPLOG" "$GH_TMP/syslog.log" "01: httplog line by syslog"
gh_wait_grep ' test test/<NOSRV> .* 401 .* LR-- .*"GET /admin\?stats HTTP/1\.1"$' "$GH_TMP/syslog.log" "01: 401 logged"
# Logging to syslog, nothing goes to standard output.
gh_assert_no_grep 'GET /' "$GH_TMP/ex1.log" "01: traffic lines on standard output"
gh_stop ex1

# --- 02: routing by Host, leastconn, TCP checks ---------------------------------------------------
start ex2 02-host-routing.cfg
[ "$(get -H 'Host: www.test.com' "$GW/?www")" = 200 ] || gh_fail "02: www"
[ "$(get -H 'Host: blog.test.com' "$GW/?blog")" = 200 ] || gh_fail "02: blog"
[ "$(get -H 'Host: other.test.com' "$GW/?other")" = 200 ] || gh_fail "02: default"
[ "$(hits 118 '/?www')" = 1 ] && [ "$(hits 119 '/?blog')" = 1 ] && [ "$(hits 118 '/?other')" = 1 ] ||
    gh_fail "02: Host routing: www→$(hits 118 '/?www') blog→$(hits 119 '/?blog') other→$(hits 118 '/?other')"
[ "$(hits 119 '/?www')" = 0 ] || gh_fail "02: www reached blog's server"
gh_wait_grep ' test blog/web1 .* "GET /\?blog HTTP/1\.1"$' "$GH_TMP/syslog.log" "02: blog logged"
gh_stop ex2

# --- 03: deny by source, user-agent redirects, path and extension routing, backups, errorfiles ---
start ex3 03-path-ua-acl-deny.cfg
# Checks: give the HTTP checks (HEAD /check.html, HEAD /index.jsp) a moment to pass.
gh_wait_grep '"HEAD /check.html HTTP/1.0"' "$GH_TMP/s118-access.log" "03: httpchk www"
gh_wait_grep '"HEAD /index.jsp HTTP/1.1"' "$GH_TMP/s119-access.log" "03: httpchk blog"
# The runtime API on the example's admin socket, as an operator would use it with socat.
SOCK=$GH_TMP/03-path-ua-acl-deny.sock
echo "show info" | socat - "UNIX-CONNECT:$SOCK" | grep -q '^Name: gatehouse$' || gh_fail "03: show info"
echo "show stat" | socat - "UNIX-CONNECT:$SOCK" | grep -q '^www,web1,.*,UP,' || gh_fail "03: show stat: $(echo "show stat" | socat - "UNIX-CONNECT:$SOCK")"
[ "$(get --interface 10.48.3.2 "$GW/?denied")" = 403 ] || gh_fail "03: deny by source"
grep -q 'Request forbidden by administrative rules' "$GH_TMP/body" || gh_fail "03: not the 403 errorfile: $(cat "$GH_TMP/body")"
gh_wait_grep ' test test/<NOSRV> .* 403 .* PR-- .*"GET /\?denied HTTP/1\.1"$' "$GH_TMP/ex3.log" "03: deny logged"
[ "$(get -A 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)' "$GW/a/b?x=1")" = 302 ] || gh_fail "03: iphone redirect"
grep -qi '^location: http://3g-iphone.test.com/a/b?x=1' "$GH_TMP/head" || gh_fail "03: iphone Location: $(grep -i location "$GH_TMP/head")"
[ "$(get -A 'Mozilla/5.0 (Linux; Android 14)' "$GW/p")" = 302 ] || gh_fail "03: android redirect"
grep -qi '^location: http://3g-android.test.com/p' "$GH_TMP/head" || gh_fail "03: android Location"
[ "$(get "$GW/img.png")" = 200 ] || gh_fail "03: .png"
[ "$(get "$GW/nginx/logo.png")" = 200 ] || gh_fail "03: /nginx/"
[ "$(get "$GW/php/")" = 200 ] || gh_fail "03: /php/"
[ "$(hits 118 /img.png)" = 1 ] && [ "$(hits 118 /nginx/logo.png)" = 1 ] && [ "$(hits 119 /php/)" = 1 ] ||
    gh_fail "03: path routing: png→$(hits 118 /img.png) nginx→$(hits 118 /nginx/logo.png) php→$(hits 119 /php/)"
# web1 dies: the check (inter 1000 fall 1) marks it DOWN; both backups take the traffic (allbackups).
kill "${NGINX_PID[118]}"
gh_wait_grep 'Server www/web1 is DOWN' "$GH_TMP/ex3.log" "03: web1 DOWN"
echo "show stat" | socat - "UNIX-CONNECT:$SOCK" | grep -q '^www,web1,.*,DOWN,' || gh_fail "03: show stat after web1 died"
for i in 1 2 3 4; do [ "$(get "$GW/?bk$i")" = 200 ] || gh_fail "03: backup request $i"; done
b7=$(grep -c '"GET /?bk' "$GH_TMP/s7-access.log")
b8=$(grep -c '"GET /?bk' "$GH_TMP/s8-access.log")
[ "$b7" -ge 1 ] && [ "$b8" -ge 1 ] && [ $((b7 + b8)) = 4 ] || gh_fail "03: allbackups gave web7=$b7 web8=$b8"
# Every www server gone (the backups' checks, inter 5000 fall 5, would take 25 s to say so; the
# connects fail at once): the 503 errorfile.
kill "${NGINX_PID[7]}" "${NGINX_PID[8]}"
gh_wait_gone "${NGINX_PID[7]}" && gh_wait_gone "${NGINX_PID[8]}" || gh_fail "03: backups still running"
[ "$(get "$GW/?none")" = 503 ] || gh_fail "03: no server"
grep -q 'Sorry, no server is available' "$GH_TMP/body" || gh_fail "03: not the 503 errorfile: $(cat "$GH_TMP/body")"
gh_stop ex3

# --- 04: cookie insert indirect nocache, usesrc clientip -------------------------------------------
start ex4 04-transparent-cookie.cfg
[ "$(get -c "$GH_TMP/jar" "$GW/?c0")" = 200 ] || gh_fail "04: first request"
grep -qi '^set-cookie: SESSION_COOKIE=app[12]' "$GH_TMP/head" || gh_fail "04: no persistence cookie: $(cat "$GH_TMP/head")"
grep -qi '^cache-control: private' "$GH_TMP/head" || gh_fail "04: nocache: no Cache-Control: private"
app=$(grep -o 'SESSION_COOKIE	app[12]' "$GH_TMP/jar" | cut -f2)
case $app in app1) mine=50 other=51 ;; app2) mine=51 other=50 ;; *) gh_fail "04: cookie jar: $(cat "$GH_TMP/jar")" ;; esac
for i in 1 2 3 4 5; do [ "$(get -b "$GH_TMP/jar" "$GW/?c$i")" = 200 ] || gh_fail "04: request $i"; done
[ "$(grep -c '"GET /?c[1-5]' "$GH_TMP/s$mine-access.log")" = 5 ] || gh_fail "04: the cookie did not keep the client on $app"
[ "$(grep -c '"GET /?c[1-5]' "$GH_TMP/s$other-access.log" 2>/dev/null || true)" = 0 ] || gh_fail "04: a request left $app"
# usesrc clientip (and no forwarding on the gateway): the server saw the client's own address.
gh_assert_grep '^10\.48\.1\.2 80 "GET /\?c1 ' "$GH_TMP/s$mine-access.log" "04: client address at the server"
gh_wait_grep ' http_80_in web_cluters/iask5[01] .* --VN .*"GET /\?c5 HTTP/1\.1"$' "$GH_TMP/ex4.log" "04: cookie codes logged"
gh_stop ex4
gh_pass
