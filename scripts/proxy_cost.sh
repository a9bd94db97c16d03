#!/usr/bin/env bash
# What one proxied chat completion costs every process on the machine: ferrostack's CPU (user and
# system), the mock upstream's, PostgreSQL's (every `postgres` process), PostgreSQL transactions
# and ferrostack's context switches per request, under `wrk` at 50 connections, for JSON and SSE;
# then the mock called directly. Quicker than scripts/bench.sh for an A/B of two builds: run it
# on each build's binaries in turn (before, after, before, after) and compare.
#
#   scripts/proxy_cost.sh BIN_DIR [SECONDS]
#
# BIN_DIR holds release builds of `ferrostack`, `mock-upstream` (cargo build --release -p
# ferrostack -p ferrostack-mock-upstream). Needs wrk (Debian package) and a PostgreSQL reachable
# with psql's defaults (PGHOST etc.); a scratch database is created and dropped.
#
# Environment: CONNECTIONS (50), WRITERS (num_writers, 4), BODY_EXTRA (members added to the
# request body, e.g. '"store":false,'), STRACE=1 (system calls per request of ferrostack, from
# `strace -c -f`; slows everything, so read only the counts), PERF_OUT=<dir> (a `perf record -e
# cpu-clock -g` of ferrostack per run, written there).
set -euo pipefail

BIN=${1:?usage: scripts/proxy_cost.sh BIN_DIR [SECONDS]}
SECS=${2:-5}
CONNECTIONS=${CONNECTIONS:-50}
TCK=$(getconf CLK_TCK)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/proxy_cost.XXXXXX")
DB=proxy_cost_$$
MOCK_PID="" FS_PID=""

cleanup() {
  [[ -n $FS_PID ]] && kill "$FS_PID" 2>/dev/null
  [[ -n $MOCK_PID ]] && kill "$MOCK_PID" 2>/dev/null
  wait 2>/dev/null || true
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$OUT"
}
trap cleanup EXIT
psql -X -q -d postgres -c "CREATE DATABASE $DB"

"$BIN/mock-upstream" --port 0 --workers 2 --words 50 --chunk-delay-ms 0 --latency-ms 0 >"$OUT/mock.out" 2>&1 &
MOCK_PID=$!
MOCK_URL=""
for _ in $(seq 1 100); do
  MOCK_URL=$(sed -n 's/^listening on //p' "$OUT/mock.out" | head -n1)
  [[ -n $MOCK_URL ]] && break
  sleep 0.05
done
[[ -n $MOCK_URL ]] || { echo "the mock did not start" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PGH=${PGHOST:-127.0.0.1} PGP=${PGPORT:-5432} PGU=${PGUSER:-postgres}
cat >"$OUT/config.yaml" <<EOF
version: 2
server: { host: 127.0.0.1, port: $PORT }
storage:
  backends:
    kv_default: { type: kv_postgres, host: $PGH, port: $PGP, db: $DB, user: $PGU, pool_size: 4 }
    sql_default: { type: sql_postgres, host: $PGH, port: $PGP, db: $DB, user: $PGU, pool_size: 16 }
  stores:
    metadata: { backend: kv_default, namespace: registry }
    inference: { backend: sql_default, max_write_queue_size: 10000, num_writers: ${WRITERS:-4}, batch_size: 256, durability: async }
    conversations: { backend: sql_default }
providers:
  inference:
    - { provider_id: mock, provider_type: remote::vllm, config: { url: "$MOCK_URL/v1" } }
models:
  - { model_id: mock-model, provider_id: mock }
telemetry: { log_level: warn }
EOF
"$BIN/ferrostack" migrate --config "$OUT/config.yaml" >"$OUT/migrate.out" 2>&1
"$BIN/ferrostack" serve --config "$OUT/config.yaml" >"$OUT/ferrostack.out" 2>&1 &
FS_PID=$!
FS_URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 200); do curl -fsS -o /dev/null "$FS_URL/v1/health" 2>/dev/null && break; sleep 0.05; done

for stream in false true; do
  cat >"$OUT/$stream.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-model","stream":$stream,${BODY_EXTRA:-}"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about load testing an API server."}]}'
EOF
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
pg_ticks() {
  local total=0 pid
  for pid in $(pgrep -x postgres || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
commits() { psql -X -tA -d postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"; }
per() { awk -v a="$1" -v n="$2" -v t="$TCK" 'BEGIN { printf "%.0f", a * 1e6 / t / n }'; } # ticks -> µs per n
ratio() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.3f", a / n }'; }
requests() { awk '/requests in/ {print $1}'; }

for stream in false true; do
  wrk -t2 -c"$CONNECTIONS" -d1s -s "$OUT/$stream.lua" "$FS_URL/v1/chat/completions" >/dev/null 2>&1 # warm-up
  c0=$(switches "$FS_PID") f0=$(ticks "$FS_PID") u0=$(user_ticks "$FS_PID") m0=$(ticks "$MOCK_PID")
  x0=$(commits) g0=$(pg_ticks)
  if [[ -n ${PERF_OUT:-} ]]; then
    perf record -e cpu-clock -F 2000 -g -p "$FS_PID" -o "$PERF_OUT/perf.stream-$stream.data" >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  if [[ -n ${STRACE:-} ]]; then
    strace -c -f -p "$FS_PID" -o "$OUT/strace.$stream" 2>/dev/null &
    STRACE_PID=$!
    sleep 0.5
  fi
  n=$(wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" -s "$OUT/$stream.lua" "$FS_URL/v1/chat/completions" | requests)
  [[ -n ${PERF_OUT:-} ]] && { kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; }
  [[ -n ${STRACE:-} ]] && { kill -INT "$STRACE_PID"; wait "$STRACE_PID" 2>/dev/null || true; }
  c1=$(switches "$FS_PID") f1=$(ticks "$FS_PID") u1=$(user_ticks "$FS_PID") m1=$(ticks "$MOCK_PID")
  x1=$(commits) g1=$(pg_ticks)
  echo "stream=$stream requests=$n req/s=$((n / SECS)) ferrostack_us=$(per $((f1 - f0)) "$n")" \
    "(user $(per $((u1 - u0)) "$n")) mock_us=$(per $((m1 - m0)) "$n") postgres_us=$(per $((g1 - g0)) "$n")" \
    "pg_transactions=$(ratio $((x1 - x0)) "$n") context_switches=$(ratio $((c1 - c0)) "$n")"
  if [[ -n ${STRACE:-} ]]; then
    awk -v n="$n" 'NR > 2 && $NF != "total" && $4 + 0 > 0 {printf "  %s %.2f per request\n", $NF, $4 / n}' \
      "$OUT/strace.$stream" | sort -k2 -nr | head -n 12
  fi
done

for stream in false true; do
  m0=$(ticks "$MOCK_PID")
  n=$(wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" -s "$OUT/$stream.lua" "$MOCK_URL/v1/chat/completions" | requests)
  m1=$(ticks "$MOCK_PID")
  echo "mock direct stream=$stream requests=$n req/s=$((n / SECS)) mock_us=$(per $((m1 - m0)) "$n")"
done
