#!/bin/bash
# What an agent under the network allowlist can reach, for foreman's egress test
# (tests/it/egress.rs). Run in the sandbox as
#
#   bash egress_probe.sh ALLOWED_PORT BLOCKED_PORT RAW_PORT ABSTRACT_NAME [OUTSIDE_ADDRESS]
#
# ALLOWED and BLOCKED are HTTP servers on this machine's loopback (only the first is on the
# list), RAW a TCP server listening on every address, ABSTRACT_NAME a Unix socket listening
# in the abstract namespace (which belongs to a network namespace). Each probe prints `=== name`, what it
# got, and `=== exit N`; the test judges.
allowed="$1" blocked="$2" raw="$3" abstract="$4" outside="$5"
proxy_port="${HTTPS_PROXY##*:}"

probe() {
  local name="$1"
  shift
  printf '=== %s\n' "$name"
  ("$@") 2>&1
  printf '\n=== exit %s\n' "$?"
}

# Sends a request to the proxy and prints the answer.
via_proxy() {
  exec 3<>"/dev/tcp/127.0.0.1/$proxy_port" || return 97
  printf "$1" >&3
  timeout 10 cat <&3
}

# CONNECT to HOST:PORT, then GET / through the tunnel.
tunnel() {
  exec 3<>"/dev/tcp/127.0.0.1/$proxy_port" || return 97
  printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$1" >&3
  local status line
  read -r status <&3
  echo "$status"
  case "$status" in
    *" 200 "*) ;;
    *) timeout 5 cat <&3; return 1 ;;
  esac
  while read -r line <&3 && [ "${line%$'\r'}" != "" ]; do :; done
  printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" >&3
  timeout 10 cat <&3
}

# A TCP connection to ADDRESS PORT, with no proxy.
direct() {
  exec 3<>"/dev/tcp/$1/$2"
}

probe "interfaces" cat /proc/net/dev
probe "proxy variables" env
probe "proxy get allowed" via_proxy "GET http://127.0.0.1:$allowed/ HTTP/1.1\r\nHost: 127.0.0.1:$allowed\r\n\r\n"
probe "tunnel allowed" tunnel "127.0.0.1:$allowed"
probe "proxy get blocked" via_proxy "GET http://127.0.0.1:$blocked/ HTTP/1.1\r\nHost: 127.0.0.1:$blocked\r\n\r\n"
probe "tunnel blocked" tunnel "127.0.0.1:$blocked"
probe "tunnel by name" tunnel "blocked.example:443"
probe "direct allowed" direct 127.0.0.1 "$allowed"
probe "direct blocked" direct 127.0.0.1 "$blocked"
probe "direct raw" direct 127.0.0.1 "$raw"
probe "without proxy variables" env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy \
  -u ALL_PROXY -u all_proxy bash -c "exec 3<>/dev/tcp/127.0.0.1/$blocked"
if [ -n "$outside" ]; then
  probe "direct outside" direct "$outside" "$raw"
fi
probe "abstract socket" python3 -c "
import socket
s = socket.socket(socket.AF_UNIX)
s.connect('\\0$abstract')
"
probe "postgres socket" python3 -c "
import socket
s = socket.socket(socket.AF_UNIX)
s.connect('/run/postgresql/.s.PGSQL.5432')
"
probe "the socket itself" python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect('/run/foreman-egress/proxy.sock')
s.sendall(b'CONNECT 127.0.0.1:$blocked HTTP/1.1\r\n\r\n')
print(s.recv(200).decode())
"
exit 0
