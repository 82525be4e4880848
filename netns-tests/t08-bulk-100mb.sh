#!/usr/bin/env bash
# Test 8: 100 MB each way through the gateway arrive intact (sha256): a download from nginx on port 80
# and an upload to socat on port 443 (both intercepted by the default config).
#
#   +------------+         +--------------------------+         +-------------------------+
#   | gh18c      |  veth   | gh18g  ip_forward=0      |  veth   | gh18s                   |
#   | curl /big  |---------| gatehouse (no -f)        |---------| nginx :80   (download)  |
#   | socat ->443|         |                          |         | socat :443  (upload)    |
#   +------------+         +--------------------------+         +-------------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t08 18
gh_topology
size=$((100 * 1024 * 1024))
mkdir -p "$GH_TMP/www"
head -c "$size" /dev/urandom >"$GH_TMP/www/big"
want=$(sha256sum <"$GH_TMP/www/big" | cut -d' ' -f1)
gh_nginx "$S" web
# Every transfer is bounded by `timeout --foreground`: it stays in our process group, so the runner's
# own time limit (which signals that group) still reaches the transfer and our cleanup can run.
# One-shot upload sink; $! is its `timeout`, which passes cleanup's signal on to socat.
gh_x "$S" timeout --foreground 60 socat -u TCP-LISTEN:443,reuseaddr OPEN:"$GH_TMP/up.bin",creat,trunc &
GH_PIDS+=("$!")
gh_gatehouse "$G" gw

# Download: server -> client.
got=$(gh_x "$C" timeout --foreground 60 curl -sS --max-time 60 "http://$SRV4/big" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || gh_fail "download checksum differs"
gh_wait_grep "^$CLI4 80 \"GET /big HTTP/1.1\" 200 $size" "$GH_TMP/web-access.log" "nginx sent the whole file to the client"
# %B counts server-to-client bytes: the file plus nginx's response header.
gh_wait_grep "^$CLI4:[0-9]+ .* 104857[6-9][0-9]{2} -- " "$GH_TMP/gw.log" "gatehouse logged the 100 MB download"

# Upload: client -> server. socat on the client closes when the file is sent; the sink then exits.
gh_x "$C" timeout --foreground 60 socat -u OPEN:"$GH_TMP/www/big" TCP:"$SRV4":443 || gh_fail "upload failed"
for _ in $(seq 100); do [ "$(stat -c %s "$GH_TMP/up.bin" 2>/dev/null)" = "$size" ] && break; sleep 0.1; done
[ "$(sha256sum <"$GH_TMP/up.bin" | cut -d' ' -f1)" = "$want" ] \
    || gh_fail "upload checksum differs ($(stat -c %s "$GH_TMP/up.bin") of $size bytes)"
gh_wait_grep "^$CLI4:[0-9]+ .* 0 -- " "$GH_TMP/gw.log" "gatehouse logged the upload"
gh_settle
[ "$(grep -c ' -- ' "$GH_TMP/gw.log")" = 2 ] || gh_fail "expected two clean sessions: $(cat "$GH_TMP/gw.log")"
gh_pass
