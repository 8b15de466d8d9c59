#!/bin/sh
# Starts foreman as the unprivileged user `foreman`. Started as root (the image's default),
# it first gives /data and the work root to that user when they belong to someone else (a
# volume mounted over /data, e.g. on Fly.io, belongs to root), then drops root for good.
# Started as any other user (`docker run --user`), it runs foreman as that user.
set -eu

# `foreman-entrypoint foreman migrate` and `foreman-entrypoint migrate` both work.
if [ "${1:-}" = "foreman" ]; then
  shift
fi

if [ "$(id -u)" = "0" ]; then
  owner="$(id -u foreman)"
  for dir in /data "${FOREMAN_WORK_ROOT:-/data/work}"; do
    mkdir -p "$dir"
    if [ "$(stat -c %u "$dir")" != "$owner" ]; then
      chown -R foreman:foreman "$dir"
    fi
  done
  export HOME=/home/foreman
  exec setpriv --reuid=foreman --regid=foreman --init-groups -- foreman "$@"
fi
exec foreman "$@"
