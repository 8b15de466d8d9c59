#!/bin/bash
# A worker under the network allowlist, for foreman's egress test (tests/it/egress.rs):
#
#   bash egress_worker.sh ALLOWED_PORT
#
# It reaches the allowed loopback host through foreman's proxy, and is refused
# evil.example; it fails (exit 1) if either is not so.
allowed="$1"
proxy_port="${HTTPS_PROXY##*:}"
exec 3<>"/dev/tcp/127.0.0.1/$proxy_port" || exit 1
printf 'GET http://127.0.0.1:%s/ HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$allowed" "$allowed" >&3
if ! timeout 10 cat <&3 | grep -q "allowed host"; then
  echo "the allowed host was not reached" >&2
  exit 1
fi
exec 4<>"/dev/tcp/127.0.0.1/$proxy_port" || exit 1
printf 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n' >&4
read -r status <&4
case "$status" in
  *" 403 "*) ;;
  *) echo "evil.example was not refused: $status" >&2; exit 1 ;;
esac
