#!/usr/bin/env bash
# Issue #3: routing by HTTP Host with acl/use_backend, and by SNI through a map_dom file, to fixed
# backends on two server addresses (no usesrc here: the servers see the gateway). The client dials a made-up address that only the gateway's
# interception answers; forwarding is off, so every byte went through gatehouse.
#
#   +-----------+        +---------------------------------+        +----------------------+
#   | gh41c     |  veth  | gh41g   ip_forward=0            |  veth  | gh41s                |
#   | curl      |--------| gatehouse: intercept 80, 443;   |--------| nginx :80, :443 ssl  |
#   | 10.41.1.2 |        | Host ACLs, map_dom on the SNI   |        | 10.41.2.2, 10.41.2.3 |
#   +-----------+        +---------------------------------+        +----------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t11 41
gh_topology
gh_two_servers
FAKE=10.41.9.9

# map_dom takes the first line whose key is a dot-delimited part of the name: specific names first.
printf '# SNI (as a domain) -> backend\nb.example.test second\nexample.test first\n' >"$GH_TMP/sni.map"
cat >"$GH_TMP/gw.cfg" <<CFG
frontend web
    bind :15080 transparent
    intercept dport 80
    acl api hdr(host) -i api.example.test
    acl v2 path_beg /v2/
    use_backend second if api v2
    use_backend first if api
    default_backend nowhere
frontend tls
    bind :15443 transparent
    intercept dport 443
    use_backend %[req.ssl_sni,lower,map_dom($GH_TMP/sni.map,nowhere)]
# HTTP and TLS share the backends: no port means the client's (80 or 443).
backend first
    server s1 $SRV4
backend second
    server s2 $SRV4B
backend nowhere
    server none 10.41.2.99:80
    timeout connect 1s
CFG
gh_x "$G" "$GATEHOUSE" -c -f "$GH_TMP/gw.cfg" >/dev/null 2>&1 || gh_fail "config: $("$GATEHOUSE" -c -f "$GH_TMP/gw.cfg" 2>&1)"
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

http() { gh_x "$C" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Host: $1" "http://$FAKE$2"; }
[ "$(http API.example.test:80 /v1/x)" = 404 ] || gh_fail "Host api, /v1"
gh_wait_grep "^$GWS4 80 \"GET /v1/x HTTP/1.1\" 404 [0-9]+ $SRV4\$" "$GH_TMP/web-access.log" "api /v1 went to the first backend"
[ "$(http api.example.test /v2/y)" = 404 ] || gh_fail "Host api, /v2"
gh_wait_grep "^$GWS4 80 \"GET /v2/y HTTP/1.1\" 404 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "api /v2 went to the second backend"
gh_wait_grep "web second/s2 .* \{api\.example\.test\}\$" "$GH_TMP/gw.log" "Host routing logged with the name"

tls() { gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$FAKE" "https://$1/"; }
[ "$(tls www.example.test)" = "hello from the server" ] || gh_fail "www.example.test"
gh_wait_grep "^$GWS4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4\$" "$GH_TMP/web-access.log" "www.example.test -> first"
[ "$(tls x.b.example.test)" = "hello from the server" ] || gh_fail "x.b.example.test"
gh_wait_grep "^$GWS4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "x.b.example.test -> second"
gh_wait_grep "tls second/s2 .* \{x\.b\.example\.test\}\$" "$GH_TMP/gw.log" "map_dom routing logged"
gh_pass
