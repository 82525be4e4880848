#!/usr/bin/env bash
# Installs what gatehouse's demo, tests and bench need on a fresh Debian machine, only if missing.
set -euo pipefail
need=()
for pair in ip:iproute2 nft:nftables iptables-legacy:iptables curl:curl openssl:openssl dnsmasq:dnsmasq \
    nginx:nginx-light wrk:wrk haproxy:haproxy socat:socat pkill:procps killall:psmisc python3:python3; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts services it installs; gatehouse's tests run their own instances in namespaces.
for svc in nginx haproxy dnsmasq; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
command -v cargo >/dev/null || { echo "cargo is needed (rustup)" >&2; exit 1; }
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
done
