#!/usr/bin/env bash
# Runs the Python example end to end: starts a throwaway Redis and a
# throwaway Cellar server (the debug build, `cargo build` first) on free
# loopback ports with temporary directories, loads a few keys, generates the
# client, runs backup.py, and checks that the backup succeeded and that its
# data object is a valid zstd-compressed RDB file with the reported SHA-256.
# Both servers are stopped and the directories removed on exit.
#
# Usage: examples/python/run-example.sh   (scripts/test runs it)
# Needs: redis-server, redis-cli, zstd, cargo, and a Python with the packages
# of requirements.txt (set PYTHON to choose it, default python3).
# CELLAR_BIN=path skips the build and uses that binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
export PYTHON=$python

log() { printf '[run-example] %s\n' "$*"; }
fail() {
  printf '[run-example] FAILED: %s\n' "$*" >&2
  exit 1
}

for command in redis-server redis-cli zstd sha256sum "$python"; do
  command -v "$command" >/dev/null || fail "$command not found (scripts/test installs what is needed)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cellar-example.XXXXXX")
redis_pid=
cellar_pid=
show_logs() {
  local name
  for name in cellar redis; do
    if [[ -s $tmp/$name.log ]]; then
      printf -- '--- last lines of the %s log (%s) ---\n' "$name" "$tmp/$name.log" >&2
      tail -n 40 "$tmp/$name.log" >&2
    fi
  done
}
stop() { # stop PID: TERM, then KILL after 10 s
  local pid=$1 waited=0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  ((status == 0)) || show_logs
  [[ -z $cellar_pid ]] || stop "$cellar_pid"
  [[ -z $redis_pid ]] || stop "$redis_pid"
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS PID WHAT COMMAND...: polls COMMAND until it succeeds, the
# process PID exits, or SECONDS pass.
wait_for() {
  local seconds=$1 pid=$2 what=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$what exited before answering"
    ((SECONDS < deadline)) || fail "$what did not answer within ${seconds}s"
    sleep 0.2
  done
}

# --- Cellar binary -----------------------------------------------------------
if [[ -n ${CELLAR_BIN:-} ]]; then
  cellar=$CELLAR_BIN
else
  log "cargo build"
  (cd "$root" && cargo build --quiet --bin cellar)
  cellar=${CARGO_TARGET_DIR:-$root/target}/debug/cellar
fi
[[ -x $cellar ]] || fail "no Cellar binary at $cellar"

# --- Redis -------------------------------------------------------------------
redis_port=$(free_port)
mkdir -p "$tmp/redis"
log "starting redis-server on 127.0.0.1:$redis_port"
# Redis 7 sends snapshots to replicas (Cellar reads one as a replica does)
# diskless, after waiting repl-diskless-sync-delay (5 s) for more replicas;
# no one else comes here, so do not wait.
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --repl-diskless-sync-delay 0 --dir "$tmp/redis" --logfile "$tmp/redis.log" --daemonize no &
redis_pid=$!
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
redis_ready() { [[ $(rcli ping 2>/dev/null) == PONG ]]; }
wait_for 30 "$redis_pid" "redis-server" redis_ready

# --- Cellar ------------------------------------------------------------------
cellar_port=$(free_port)
cellar_addr=127.0.0.1:$cellar_port
log "starting $cellar serve on $cellar_addr"
# The catalog key is generated at first start in $XDG_CONFIG_HOME/cellar: here a
# throwaway one, so that the example leaves no key behind.
XDG_CONFIG_HOME="$tmp/config" \
  "$cellar" serve --listen "$cellar_addr" --data-dir "$tmp/cellar-data" --download-listen 127.0.0.1:0 \
  >"$tmp/cellar.log" 2>&1 &
cellar_pid=$!
cellar_ready() {
  "$python" -c 'import grpc, sys; grpc.channel_ready_future(grpc.insecure_channel(sys.argv[1])).result(timeout=2)' \
    "$cellar_addr"
}
wait_for 60 "$cellar_pid" "cellar serve" cellar_ready
if command -v grpcurl >/dev/null; then
  # Server reflection, which grpcurl and scripts/bench-redis-backup rely on.
  services=$(grpcurl -plaintext "$cellar_addr" list) || fail "grpcurl list failed (server reflection)"
  for service in cellar.v1.BackupService cellar.v1.DatabaseService cellar.v1.OperationService; do
    grep -qx "$service" <<<"$services" || fail "reflection does not list $service; it lists: $services"
  done
  log "reflection lists $(wc -l <<<"$services") services"
fi

# --- Data ----------------------------------------------------------------------
log "loading keys of each type"
{
  for i in $(seq 1 500); do
    printf 'SET string:%d value-%d-%s\n' "$i" "$i" "$(printf '%0100d' "$i")"
  done
  for i in $(seq 1 50); do
    printf 'HSET hash:%d field1 a%d field2 b%d field3 c%d\n' "$i" "$i" "$i" "$i"
    printf 'RPUSH list:%d one two three %d\n' "$i" "$i"
    printf 'SADD set:%d red green blue %d\n' "$i" "$i"
    printf 'ZADD zset:%d 1 one 2 two 3 three %d n%d\n' "$i" "$i" "$i"
  done
  printf 'XADD stream:1 * sensor 1 reading 42\n'
} | rcli >/dev/null
keys=$(rcli dbsize)
[[ $keys == 701 ]] || fail "expected 701 keys in Redis, found $keys"
log "Redis holds $keys keys"

# --- The example ---------------------------------------------------------------
log "generate.sh"
"$here/generate.sh"

log "backup.py --addr $cellar_addr --redis-uri redis://127.0.0.1:$redis_port"
status=0
CELLAR_ADDR=$cellar_addr REDIS_URI=redis://127.0.0.1:$redis_port \
  "$python" "$here/backup.py" --timeout 120 | tee "$tmp/backup.out" || status=$?
((status == 0)) || fail "backup.py exited with status $status"

# --- Checks ----------------------------------------------------------------------
grep -q 'OPERATION_STATE_SUCCEEDED' "$tmp/backup.out" || fail "backup.py did not report OPERATION_STATE_SUCCEEDED"
grep -q 'state: *BACKUP_STATE_READY' "$tmp/backup.out" || fail "backup.py did not print a READY backup"
grep -q 'OPERATION_STATE_RUNNING' "$tmp/backup.out" || log "note: no RUNNING update was printed (the backup was quick)"
sha256=$(sed -n 's/^  sha256: *\([0-9a-f]\{64\}\)$/\1/p' "$tmp/backup.out")
[[ -n $sha256 ]] || fail "backup.py printed no 64-hex-digit sha256"
uri=$(sed -n 's/^  uri: *//p' "$tmp/backup.out")
size=$(sed -n 's/^  size: *\([0-9]*\) bytes.*/\1/p' "$tmp/backup.out")

# The data object of the `local` destination is a file under the data dir.
case $uri in
  file://*) object=${uri#file://} ;;
  /*) object=$uri ;;
  *) object= ;;
esac
if [[ -n $object ]]; then
  [[ -f $object ]] || fail "the backup's uri $uri names no file"
  [[ $(stat -c %s "$object") == "$size" ]] || fail "$object is $(stat -c %s "$object") bytes, the backup says $size"
  [[ $(sha256sum <"$object" | cut -d' ' -f1) == "$sha256" ]] || fail "the SHA-256 of $object differs from the backup's"
  zstd -q -t "$object" || fail "$object is not valid zstd"
  [[ $(zstd -q -dc "$object" | head -c 5) == REDIS ]] || fail "$object does not hold an RDB file"
  log "checked $object: size, sha256, zstd and the RDB header"
else
  log "note: uri $uri is not a local file; skipped the data object checks"
fi

log "ok"
