#!/usr/bin/env bash
# Start, stop or check the Docker engine NOA's Docker target and its tests use.
#
#   scripts/dockerd.sh start|stop|status
#
# Installs nothing (scripts/bootstrap.sh installs Debian's docker.io as root). `start` runs
# dockerd in the background with the flags these machines need (no iptables, no bridge:
# containers use --network host or none), its own data root, exec root, pidfile and log,
# waits until `docker info` answers and prints one line. `stop` ends it and waits. Both are
# idempotent. Settings (environment):
#   NOA_DOCKERD_ROOT  data root            (default /var/lib/noa-dockerd)
#   NOA_DOCKERD_EXEC  exec root, short     (default /run/noa-dockerd)
#   NOA_DOCKERD_HOST  socket dockerd serves (default unix:///var/run/docker.sock)
#   NOA_DOCKERD_TIMEOUT  seconds to wait for `docker info` (default 60)
set -euo pipefail

ROOT="${NOA_DOCKERD_ROOT:-/var/lib/noa-dockerd}"
EXEC="${NOA_DOCKERD_EXEC:-/run/noa-dockerd}"
HOST="${NOA_DOCKERD_HOST:-unix:///var/run/docker.sock}"
TIMEOUT="${NOA_DOCKERD_TIMEOUT:-60}"
PIDFILE="$EXEC/dockerd.pid"
LOG="$ROOT/dockerd.log"

die() { echo "dockerd.sh: error: $1" >&2; exit "${2:-1}"; }

running_pid() {  # the pid of our dockerd, if it runs
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--exec-root $EXEC" || return 1
  echo "$pid"
}

answers() { DOCKER_HOST="$HOST" timeout 10 docker info --format '{{.ServerVersion}} {{.Driver}}' 2>/dev/null; }

cmd_status() {
  local pid info
  if pid="$(running_pid)" && info="$(answers)"; then
    echo "dockerd running: pid $pid, engine $info, $HOST, data root $ROOT"
    return 0
  fi
  if info="$(answers)"; then
    echo "another docker engine answers on $HOST: $info (not started by dockerd.sh)"
    return 0
  fi
  echo "dockerd not running"
  return 1
}

cmd_start() {
  local pid info
  if info="$(answers)"; then
    if pid="$(running_pid)"; then
      echo "dockerd already running: pid $pid, engine $info, $HOST"
    else
      echo "a docker engine already answers on $HOST: $info"
    fi
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd not installed (scripts/bootstrap.sh installs docker.io as root)" 2
  command -v docker >/dev/null 2>&1 || die "docker CLI not installed" 2
  [ "$(id -u)" = 0 ] || die "dockerd needs root" 2
  if pid="$(running_pid)"; then  # ours, but not answering: a hung start; replace it
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid" 20 || kill -9 "$pid" 2>/dev/null || true
  fi
  mkdir -p "$ROOT" "$EXEC"
  rm -f "$PIDFILE"
  # setsid: the engine outlives this script and the shell (CI step) that ran it
  setsid dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
    --data-root "$ROOT" --exec-root "$EXEC" --pidfile "$PIDFILE" -H "$HOST" \
    </dev/null >>"$LOG" 2>&1 &
  local started=$SECONDS
  while [ $((SECONDS - started)) -lt "$TIMEOUT" ]; do
    if info="$(answers)"; then
      pid="$(running_pid || echo '?')"
      echo "dockerd started: pid $pid, engine $info, $HOST, in $((SECONDS - started)) s (log $LOG)"
      return 0
    fi
    sleep 0.5
  done
  die "dockerd did not answer within ${TIMEOUT}s; last log lines: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ')"
}

wait_gone() {  # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -d "/proc/$1" ] || return 0
    sleep 0.1
  done
  return 1
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "dockerd not running (nothing started by dockerd.sh)"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 30; then
    kill -9 "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || die "dockerd pid $pid did not stop"
  fi
  echo "dockerd stopped: pid $pid"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: scripts/dockerd.sh start|stop|status" 2 ;;
esac
