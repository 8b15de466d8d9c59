#!/usr/bin/env bash
# Intake benchmark: a minimal Probot app and `foreman serve` (SQLite, synchronous=FULL)
# answer the same signed 11.8 KB `issues.labeled` webhook, with a unique delivery id per
# request, from the same load generator (wrk, one thread), one after the other, ROUNDS times
# at 8 and 32 connections. Prints each run, the medians and foreman's ratio to Probot.
#
#   benches/intake/run.sh            # needs wrk (Debian: apt-get install wrk), node and npm
#   SERVERS=foreman CONNECTIONS=8 ROUNDS=1 DURATION=5s benches/intake/run.sh   # one server
#
# Probot is installed from npm into target/probot on first use. foreman is built in release.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
SERVERS=${SERVERS:-probot foreman}
CONNECTIONS=${CONNECTIONS:-8 32}
SECRET=bench-secret
WORK=$(mktemp -d)
PID=
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
if [ ! -x target/probot/node_modules/.bin/probot ]; then
  npm install --silent --prefix target/probot probot@14 >/dev/null
fi
cargo build --release --quiet --bin foreman

python3 - "$WORK/body.json" "$SECRET" > "$WORK/signature" <<'PY'
import hashlib, hmac, json, sys
payload = json.load(open("tests/fixtures/webhooks/issues.labeled.json"))
body = json.dumps(payload, separators=(",", ":")).encode()
open(sys.argv[1], "wb").write(body)
print("sha256=" + hmac.new(sys.argv[2].encode(), body, hashlib.sha256).hexdigest(), end="")
PY
export BODY_FILE="$WORK/body.json" SIGNATURE="$(cat "$WORK/signature")"
echo "body: $(stat -c %s "$BODY_FILE") bytes; $ROUNDS rounds of $DURATION per server and connection count"

openssl genrsa -traditional -out "$WORK/key.pem" 2048 2>/dev/null

wait_port() {
  for _ in $(seq 1 200); do
    if (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

start_probot() {
  APP_ID=1 PRIVATE_KEY_PATH="$WORK/key.pem" WEBHOOK_SECRET=$SECRET PORT=3900 LOG_LEVEL=fatal \
    "$ROOT/target/probot/node_modules/.bin/probot" run "$ROOT/benches/intake/probot-app.js" \
    >/dev/null 2>&1 &
  PID=$!
  wait_port 3900
  URL=http://127.0.0.1:3900/api/github/webhooks
}

start_foreman() {
  rm -rf "$WORK/foreman" && mkdir -p "$WORK/foreman"
  DATABASE_URL="sqlite://$WORK/foreman/foreman.db" FOREMAN_LISTEN=127.0.0.1:3901 \
    FOREMAN_WORK_ROOT="$WORK/foreman/work" GITHUB_WEBHOOK_SECRET=$SECRET FOREMAN_LOG=error \
    "$ROOT/target/release/foreman" serve >/dev/null 2>&1 &
  PID=$!
  wait_port 3901
  URL=http://127.0.0.1:3901/webhooks/github
}

# A memory figure of the server under test, in MB.
rss() { awk -v f="$1:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
  for server in $SERVERS; do
    for conns in $CONNECTIONS; do
      "start_$server"
      sleep 1
      idle=$(rss VmRSS)
      out=$(wrk -t1 -c"$conns" -d"$DURATION" -s benches/intake/deliveries.lua "$URL" | grep RESULT)
      peak=$(rss VmHWM)
      stop
      echo "round $round $server c=$conns ${out#RESULT } rss_idle_mb=$idle rss_peak_mb=$peak"
      rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$out")
      RESULTS[$server-$conns]="${RESULTS[$server-$conns]:-} $rps"
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
[ "$SERVERS" = "probot foreman" ] || exit 0
for conns in $CONNECTIONS; do
  p=$(median "${RESULTS[probot-$conns]}")
  f=$(median "${RESULTS[foreman-$conns]}")
  echo "c=$conns median: probot $p/s, foreman $f/s, ratio $(awk "BEGIN {printf \"%.2f\", $f/$p}")"
done
