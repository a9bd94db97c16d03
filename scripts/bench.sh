#!/usr/bin/env bash
# ferrostack's benchmark in one command: builds the release binaries, creates fresh PostgreSQL
# databases, starts the mock upstream and ferrostack on loopback ports, runs
#   1. the proxy: mock direct vs ferrostack (non-streaming and streaming) at $BENCH_CONCURRENCY
#      connections, PostgreSQL store on, stored rows == 2xx check, CPU used by each process;
#   2. the write path (crates/inference-store/examples/write_bench.rs);
#   3. the list bench: 10k then 1M seeded completions over 1,000 owners, p50/p99 of one
#      tenant's first and deep page over HTTP with static tokens, default and custom policy,
#      with EXPLAIN ANALYZE of the statements;
#   4. ferrostack's idle memory (RSS after start-up);
#   1b. the Responses API (`POST /v1/responses`, JSON and streaming) through the same mock, turns stored;
#   5. peers' measures of the proxy (sections "peers" and "callgrind"): `wrk` (Debian package,
#      installed with apt-get when missing) at $BENCH_CONCURRENCY connections against the mock
#      directly and through ferrostack, ferrostack's own CPU time per request (JSON, SSE, per
#      relayed event), added latency and time to first chunk at 1 connection (p50/p99, loadgen,
#      exact), and a callgrind instruction count per request of the JSON and SSE paths
#      (valgrind; repeatable on a noisy machine);
# stops everything it started, drops its databases, and writes a markdown report.
#
#   scripts/bench.sh                 # full run, ~10 minutes on 2 cores
#   QUICK=1 scripts/bench.sh         # smoke run, ~2 minutes once built
#
# Settings (environment): BENCH_DURATION (s per proxy run), BENCH_WARMUP (s), BENCH_CONCURRENCY,
# BENCH_WORDS (words per answer), BENCH_CHUNK_DELAY_MS (mock delay between stream chunks),
# BENCH_LATENCY_MS (mock delay before every answer), BENCH_MOCK_WORKERS, BENCH_WRITE_ROWS,
# BENCH_LIST_ROWS (the large list size), BENCH_LIST_REQUESTS (requests per list measurement),
# BENCH_REPORT (report path), BENCH_SKIP (space-separated: proxy responses peers callgrind write list
# list-postgres list-sqlite; e.g. "proxy responses peers callgrind write list-postgres" runs only the
# SQLite listing cells),
# BENCH_WRK_DURATION (s per wrk run), BENCH_LATENCY_REQUESTS (requests per 1-connection run),
# BENCH_CALLGRIND_REQUESTS (JSON requests under callgrind; a fifth as many streams),
# BENCH_BIN (a directory of prebuilt binaries to run instead of building target/release),
# PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres, trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then q=1; else q=0; fi
DURATION=${BENCH_DURATION:-$((q ? 3 : 20))}
WARMUP=${BENCH_WARMUP:-$((q ? 1 : 3))}
CONCURRENCY=${BENCH_CONCURRENCY:-50}
WORDS=${BENCH_WORDS:-50}
CHUNK_DELAY_MS=${BENCH_CHUNK_DELAY_MS:-0}
LATENCY_MS=${BENCH_LATENCY_MS:-0}
MOCK_WORKERS=${BENCH_MOCK_WORKERS:-2}
WRITE_ROWS=${BENCH_WRITE_ROWS:-$((q ? 4000 : 20000))}
LIST_ROWS=${BENCH_LIST_ROWS:-$((q ? 100000 : 1000000))}
LIST_REQUESTS=${BENCH_LIST_REQUESTS:-$((q ? 50 : 300))}
SKIP=${BENCH_SKIP:-}
WRK_DURATION=${BENCH_WRK_DURATION:-$((q ? 3 : 10))}
LATENCY_REQUESTS=${BENCH_LATENCY_REQUESTS:-$((q ? 300 : 3000))}
CALLGRIND_REQUESTS=${BENCH_CALLGRIND_REQUESTS:-$((q ? 200 : 2000))}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$ROOT/target/bench/$STAMP"
REPORT=${BENCH_REPORT:-$OUT/report.md}
mkdir -p "$OUT"
DB="bench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
LIST_DB="${DB}_list"
# BENCH_BIN: run prebuilt binaries from this directory (another build to compare) without building.
BIN=${BENCH_BIN:-$ROOT/target/release}
PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }
psql_q() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for db in "$DB" "$LIST_DB"; do
    psql_q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
  done
  if ((status != 0)); then
    log "failed (exit $status); logs in $OUT"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit}' /proc/stat; } # busy idle
CLK_TCK=$(getconf CLK_TCK)
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

wait_http() { # url, pid
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { log "process $2 exited; see $OUT"; return 1; }
    sleep 0.05
  done
  log "$1 did not answer"; return 1
}

# --- build ------------------------------------------------------------------------------------
if [[ -z ${BENCH_BIN:-} ]]; then
  log "building release binaries"
  cargo build --release --quiet -p ferrostack -p ferrostack-mock-upstream -p ferrostack-loadgen
  cargo build --release --quiet -p ferrostack-inference-store --example write_bench
  cargo build --release --quiet -p ferrostack-authz --example explain_list
fi

# --- machine ----------------------------------------------------------------------------------
{
  echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc = $(nproc)"
  echo "- memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "- kernel: $(uname -r); $(psql -X -tA -d postgres -c 'SHOW server_version' | sed 's/^/PostgreSQL /')"
  echo "- $(rustc --version)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.md"

# --- the mock -----------------------------------------------------------------------------------
start_mock() {
  "$BIN/mock-upstream" --port 0 --workers "$MOCK_WORKERS" --words "$WORDS" --chunk-delay-ms "$CHUNK_DELAY_MS" \
    --latency-ms "$LATENCY_MS" \
    >"$OUT/mock.out" 2>"$OUT/mock.err" &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  for _ in $(seq 1 100); do
    MOCK_URL=$(sed -n 's/^listening on //p' "$OUT/mock.out" | head -n1)
    [[ -n $MOCK_URL ]] && break
    sleep 0.05
  done
  [[ -n $MOCK_URL ]] || { log "the mock did not start"; return 1; }
  log "mock upstream on $MOCK_URL (pid $MOCK_PID)"
}

pg_backend() { # name type db pool
  cat <<EOF
    $1:
      type: $2
      host: $PGHOST
      port: $PGPORT
      db: $3
      user: $PGUSER
      pool_size: $4
EOF
}

write_config() { # file db port [auth yaml]
  cat >"$1" <<EOF
version: 2
server:
  host: 127.0.0.1
  port: $3
${4:-}
storage:
  backends:
$(pg_backend kv_default kv_postgres "$2" 4)
$(pg_backend sql_default sql_postgres "$2" 16)
  stores:
    metadata: { backend: kv_default, namespace: registry }
    inference: { backend: sql_default, max_write_queue_size: 10000, num_writers: 4, batch_size: 256, durability: async }
    conversations: { backend: sql_default }
providers:
  inference:
    - provider_id: mock
      provider_type: remote::vllm
      config: { url: "$MOCK_URL/v1" }
models:
  - { model_id: mock-model, provider_id: mock }
telemetry:
  log_level: warn
EOF
}

start_ferrostack() { # config name -> sets FS_PID, FS_URL
  local port
  port=$(awk '/^  port:/ {print $2; exit}' "$1")
  "$BIN/ferrostack" serve --config "$1" >"$OUT/$2.out" 2>"$OUT/$2.err" &
  FS_PID=$!
  PIDS+=("$FS_PID")
  FS_URL="http://127.0.0.1:$port"
  wait_http "$FS_URL/v1/health" "$FS_PID"
  log "ferrostack ($2) on $FS_URL (pid $FS_PID)"
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

psql_q -d postgres -c "CREATE DATABASE $DB"
log "database $DB"
start_mock

# --- 1. proxy ----------------------------------------------------------------------------------
LOADGEN=("$BIN/loadgen" run --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --model mock-model)
CONNSTR="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"
PROXY_ROWS="$OUT/proxy-rows.md"
: >"$PROXY_ROWS"

measure() { # label json-name pids-to-account... -- loadgen args
  local label=$1 name=$2
  shift 2
  local pids=()
  while [[ $1 != -- ]]; do pids+=("$1"); shift; done
  shift
  local before=() t0 t1 i
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  local m0 m1
  m0=$(machine_ticks)
  t0=$(date +%s.%N)
  "${LOADGEN[@]}" --label "$label" --json-out "$OUT/$name.json" "$@" >>"$PROXY_ROWS"
  t1=$(date +%s.%N)
  m1=$(machine_ticks)
  local cpu="{"
  read -r b0 i0 <<<"$m0"
  read -r b1 i1 <<<"$m1"
  cpu+="\"machine_busy\": $((b1 - b0)), \"machine_idle\": $((i1 - i0)),"
  for i in "${!pids[@]}"; do
    cpu+="\"${pids[$i]}\": $(( $(cpu_ticks "${pids[$i]}") - ${before[$i]} )),"
  done
  echo "${cpu%,}, \"wall\": $(elapsed "$t0" "$t1"), \"clk_tck\": $CLK_TCK}" >"$OUT/$name.cpu.json"
  log "$(tail -n1 "$PROXY_ROWS")"
}

if ! skipped proxy; then
  FS_PORT=$(free_port)
  write_config "$OUT/proxy.yaml" "$DB" "$FS_PORT"
  "$BIN/ferrostack" migrate --config "$OUT/proxy.yaml" >"$OUT/migrate.out" 2>&1
  start_ferrostack "$OUT/proxy.yaml" proxy
  PROXY_PID=$FS_PID
  PROXY_URL=$FS_URL
  sleep 1
  echo "{\"rss_kb\": $(rss_kb "$PROXY_PID")}" >"$OUT/idle.json"
  echo "{\"mock\": $MOCK_PID, \"ferrostack\": $PROXY_PID}" >"$OUT/pids.json"
  log "ferrostack idle RSS: $(rss_kb "$PROXY_PID") kB"

  measure "mock direct, JSON" direct-json "$MOCK_PID" -- --url "$MOCK_URL/v1/chat/completions"
  measure "ferrostack, JSON" fs-json "$MOCK_PID" "$PROXY_PID" -- \
    --url "$PROXY_URL/v1/chat/completions" --count-rows "$CONNSTR"
  measure "mock direct, SSE" direct-sse "$MOCK_PID" -- --url "$MOCK_URL/v1/chat/completions" --stream
  measure "ferrostack, SSE" fs-sse "$MOCK_PID" "$PROXY_PID" -- \
    --url "$PROXY_URL/v1/chat/completions" --stream --count-rows "$CONNSTR"
  echo "{\"hwm_kb\": $(hwm_kb "$PROXY_PID"), \"rss_kb\": $(rss_kb "$PROXY_PID")}" >"$OUT/after-load.json"
  stop_pid "$PROXY_PID"
fi

# --- 1b. Responses API: POST /v1/responses through the same mock --------------------------------
# The same load as the proxy runs, as Responses requests (translated to chat completions, each
# turn stored synchronously before its answer ends), on the proxy's database.
if ! skipped responses; then
  FS_PORT=$(free_port)
  write_config "$OUT/responses.yaml" "$DB" "$FS_PORT"
  awk '{print} /^  stores:$/ {print "    responses: { backend: sql_default }"}' "$OUT/responses.yaml" >"$OUT/responses.yaml.new"
  mv "$OUT/responses.yaml.new" "$OUT/responses.yaml"
  "$BIN/ferrostack" migrate --config "$OUT/responses.yaml" >>"$OUT/migrate.out" 2>&1
  start_ferrostack "$OUT/responses.yaml" responses
  RESP_PID=$FS_PID
  : >"$OUT/responses-rows.md"
  for mode in json sse; do
    stream_arg=()
    [[ $mode == sse ]] && stream_arg=(--stream)
    before=$(psql -X -tA -d "$DB" -c "SELECT count(*) FROM openai_responses")
    "${LOADGEN[@]}" --responses "${stream_arg[@]}" --label "ferrostack /v1/responses, ${mode^^}" \
      --json-out "$OUT/responses-$mode.json" --url "$FS_URL/v1/responses" >>"$OUT/responses-rows.md"
    after=$(psql -X -tA -d "$DB" -c "SELECT count(*) FROM openai_responses")
    echo "{\"stored\": $((after - before))}" >"$OUT/responses-$mode.stored.json"
    log "$(tail -n1 "$OUT/responses-rows.md")"
  done
  stop_pid "$RESP_PID"
fi

# --- 1c. peers' measures: wrk, CPU per request, latency at 1 connection, callgrind ----------------
stored_count() { psql -X -tA -d "$DB" -c "SELECT count(*) FROM inference_store"; }
settled_count() { # the row count once it stopped moving for 2 s (the write queue drained)
  local last now same=0
  last=$(stored_count)
  while ((same < 4)); do
    sleep 0.5
    now=$(stored_count)
    if [[ $now == "$last" ]]; then same=$((same + 1)); else same=0; last=$now; fi
  done
  echo "$last"
}

wrk_script() { # file stream
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-model","stream":$2,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about load testing an API server."}]}'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
LUA
}

measure_wrk() { # name url script [ferrostack pid]
  local name=$1 url=$2 script=$3 fs=${4:-} before=() pids=("$MOCK_PID") rows0="" t0 t1
  [[ -n $fs ]] && pids+=("$fs")
  [[ -n $fs ]] && rows0=$(settled_count)
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  t0=$(date +%s.%N)
  wrk -t2 -c"$CONCURRENCY" -d"${WRK_DURATION}s" --timeout 10s -s "$script" "$url" >"$OUT/$name.wrk.txt" 2>&1
  t1=$(date +%s.%N)
  local out="{" i
  for i in "${!pids[@]}"; do
    out+="\"cpu_${i}\": $(( $(cpu_ticks "${pids[$i]}") - ${before[$i]} )),"
  done
  out+="\"wall\": $(elapsed "$t0" "$t1"), \"clk_tck\": $CLK_TCK,"
  [[ -n $fs ]] && out+="\"stored_rows\": $(( $(settled_count) - rows0 )),"
  out+="\"wrk\": $(sed -n 's/^WRKJSON //p' "$OUT/$name.wrk.txt")}"
  echo "$out" >"$OUT/$name.json"
  log "wrk $name: $(grep -E 'Requests/sec' "$OUT/$name.wrk.txt" | tr -s ' ')"
}

if ! skipped peers; then
  if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    if [[ $(id -u) == 0 ]]; then apt-get install -y -q wrk >"$OUT/apt.log" 2>&1; else sudo apt-get install -y -q wrk >"$OUT/apt.log" 2>&1; fi
  fi
  wrk_script "$OUT/json.lua" false
  wrk_script "$OUT/sse.lua" true
  FS_PORT=$(free_port)
  write_config "$OUT/peers.yaml" "$DB" "$FS_PORT"
  "$BIN/ferrostack" migrate --config "$OUT/peers.yaml" >>"$OUT/migrate.out" 2>&1
  start_ferrostack "$OUT/peers.yaml" peers
  PEERS_PID=$FS_PID
  PEERS_URL=$FS_URL
  echo "{\"mock\": $MOCK_PID, \"ferrostack\": $PEERS_PID, \"words\": $WORDS}" >"$OUT/peers-pids.json"
  measure_wrk wrk-direct-json "$MOCK_URL/v1/chat/completions" "$OUT/json.lua"
  measure_wrk wrk-fs-json "$PEERS_URL/v1/chat/completions" "$OUT/json.lua" "$PEERS_PID"
  measure_wrk wrk-direct-sse "$MOCK_URL/v1/chat/completions" "$OUT/sse.lua"
  measure_wrk wrk-fs-sse "$PEERS_URL/v1/chat/completions" "$OUT/sse.lua" "$PEERS_PID"
  # One connection, sequential requests: the latency ferrostack adds to each (loadgen: exact
  # percentiles over every sample, and the time to the first SSE chunk).
  ONE=("$BIN/loadgen" run --concurrency 1 --requests "$LATENCY_REQUESTS" --warmup 1 --model mock-model)
  for kind in json sse; do
    flag=()
    [[ $kind == sse ]] && flag=(--stream)
    "${ONE[@]}" "${flag[@]}" --url "$MOCK_URL/v1/chat/completions" --label "mock direct, $kind, 1 connection" \
      --json-out "$OUT/one-direct-$kind.json" >>"$OUT/one-rows.md"
    "${ONE[@]}" "${flag[@]}" --url "$PEERS_URL/v1/chat/completions" --label "ferrostack, $kind, 1 connection" \
      --json-out "$OUT/one-fs-$kind.json" >>"$OUT/one-rows.md"
    log "$(tail -n2 "$OUT/one-rows.md" | tr '\n' ' ')"
  done
  stop_pid "$PEERS_PID"
fi

if ! skipped callgrind && command -v valgrind >/dev/null; then
  # Instructions per request under callgrind: counted only while the measured requests run (not
  # start-up or warm-up), all threads, PostgreSQL store on, 10 connections.
  FS_PORT=$(free_port)
  write_config "$OUT/callgrind.yaml" "$DB" "$FS_PORT"
  "$BIN/ferrostack" migrate --config "$OUT/callgrind.yaml" >>"$OUT/migrate.out" 2>&1
  # The tunable set here keeps ferrostack from re-executing itself with it (crates/server/src/malloc.rs),
  # which would leave valgrind behind: the same malloc settings, one process.
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN/ferrostack" serve --config "$OUT/callgrind.yaml" >"$OUT/callgrind.stdout" 2>"$OUT/callgrind.err" &
  CG_PID=$!
  PIDS+=("$CG_PID")
  CG_URL="http://127.0.0.1:$FS_PORT"
  for _ in $(seq 1 600); do curl -fsS -o /dev/null "$CG_URL/v1/health" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -o /dev/null "$CG_URL/v1/health" || { log "ferrostack under callgrind did not start; see $OUT/callgrind.err"; exit 1; }
  CG=("$BIN/loadgen" run --concurrency 10 --model mock-model --url "$CG_URL/v1/chat/completions" --timeout 120)
  cg_run() { # name requests [--stream]
    local name=$1 n=$2 file ir
    shift 2
    "${CG[@]}" --requests 50 --label warmup "$@" >/dev/null
    callgrind_control -i on "$CG_PID" >/dev/null
    callgrind_control -z "$CG_PID" >/dev/null
    "${CG[@]}" --requests "$n" --label "callgrind $name" --json-out "$OUT/cg-$name.json" "$@" >/dev/null
    callgrind_control -i off "$CG_PID" >/dev/null
    callgrind_control -d "cg-$name" "$CG_PID" >/dev/null
    file=""
    for _ in $(seq 1 120); do # the dump is written once a thread of the process runs again
      file=$(grep -l "cg-$name" "$OUT"/callgrind.out.* 2>/dev/null | head -n1 || true)
      [[ -n $file ]] && break
      sleep 0.5
    done
    [[ -n $file ]] || { log "callgrind wrote no dump for $name"; return 1; }
    ir=$(awk '/^totals:/ {print $2; exit}' "$file")
    echo "{\"instructions\": $ir, \"requests\": $n, \"file\": \"$(basename "$file")\"}" >"$OUT/cg-$name.ir.json"
    log "callgrind $name: $ir instructions for $n requests = $((ir / n)) per request ($file)"
  }
  cg_run json "$CALLGRIND_REQUESTS"
  cg_run sse $((CALLGRIND_REQUESTS / 5)) --stream
  stop_pid "$CG_PID"
fi

# --- 2. write path -------------------------------------------------------------------------------
if ! skipped write; then
  log "write bench: $WRITE_ROWS rows, 8 producers"
  TEST_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/postgres" \
    "$BIN/examples/write_bench" "$WRITE_ROWS" 8 >"$OUT/write.md" 2>"$OUT/write.err"
  cat "$OUT/write.md" >&2
fi

# --- 3. list -------------------------------------------------------------------------------------
LIST_ROWS_MD="$OUT/list-rows.md"
: >"$LIST_ROWS_MD"
: >"$OUT/explain.txt"
if ! skipped list; then
  skipped list-postgres || psql_q -d postgres -c "CREATE DATABASE $LIST_DB"
  AUTH=$(cat <<EOF
  auth:
    provider_config:
      type: static
      tokens:
        - { token: team-token, principal: user7, attributes: { teams: [team7] } }
        - { token: solo-token, principal: user8 }
        - { token: wide-token, principal: user9, attributes: { teams: [$(seq -s, -f 'team%g' 0 29)] } }
        - { token: admin-token, principal: admin1, attributes: { roles: [admin] } }
EOF
)
  CUSTOM=$(cat <<'EOF'
    access_policy:
      - permit: { actions: [create, read, update, delete] }
        when: user with admin in roles
        description: admin override
      - permit: { actions: [create, read, update, delete] }
        when: user is owner
        description: private otherwise
EOF
)
  write_config "$OUT/list-default.yaml" "$LIST_DB" "$(free_port)" "$AUTH"
  write_config "$OUT/list-custom.yaml" "$LIST_DB" "$(free_port)" "$AUTH
$CUSTOM"
  if ! skipped list-postgres; then
    "$BIN/ferrostack" migrate --config "$OUT/list-default.yaml" >>"$OUT/migrate.out" 2>&1
    start_ferrostack "$OUT/list-default.yaml" list-default
    DEFAULT_URL=$FS_URL
    DEFAULT_PG_PID=$FS_PID
    start_ferrostack "$OUT/list-custom.yaml" list-custom
    CUSTOM_URL=$FS_URL
    CUSTOM_PG_PID=$FS_PID
  fi

  seed() { # from to (1-based, inclusive); bulk: one INSERT ... SELECT generate_series
    psql_q -d "$LIST_DB" -c "
      INSERT INTO inference_store (id, created, model, choices, input_messages, metadata, owner_principal, access_attributes)
      SELECT 'chatcmpl-seed-' || lpad(g::text, 8, '0'), 1700000000 + g / 10, 'mock-model',
        jsonb_build_array(jsonb_build_object('index', 0, 'finish_reason', 'stop', 'logprobs', null,
          'message', jsonb_build_object('role', 'assistant', 'content', 'answer ' || g || ' the quick brown fox jumps over the lazy dog'))),
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || g)),
        NULL, 'user' || (g % 1000), jsonb_build_object('teams', jsonb_build_array('team' || ((g % 1000) % 100)))
      FROM generate_series($1, $2) AS g"
  }
  seed_bulk() { # from to: drop the secondary indexes and the key, insert, rebuild them as the migration defines them
    local defs
    defs=$(psql -X -tA -d "$LIST_DB" -c "SELECT indexdef FROM pg_indexes WHERE tablename = 'inference_store' AND indexname <> 'inference_store_pkey'")
    {
      echo "BEGIN;"
      psql -X -tA -d "$LIST_DB" -c "SELECT 'DROP INDEX ' || indexname || ';' FROM pg_indexes WHERE tablename = 'inference_store' AND indexname <> 'inference_store_pkey'"
      echo "ALTER TABLE inference_store DROP CONSTRAINT inference_store_pkey;"
      echo "INSERT INTO inference_store (id, created, model, choices, input_messages, metadata, owner_principal, access_attributes)
      SELECT 'chatcmpl-seed-' || lpad(g::text, 8, '0'), 1700000000 + g / 10, 'mock-model',
        jsonb_build_array(jsonb_build_object('index', 0, 'finish_reason', 'stop', 'logprobs', null,
          'message', jsonb_build_object('role', 'assistant', 'content', 'answer ' || g || ' the quick brown fox jumps over the lazy dog'))),
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || g)),
        NULL, 'user' || (g % 1000), jsonb_build_object('teams', jsonb_build_array('team' || ((g % 1000) % 100)))
      FROM generate_series($1, $2) AS g;"
      echo "ALTER TABLE inference_store ADD CONSTRAINT inference_store_pkey PRIMARY KEY (id);"
      echo "$defs" | sed 's/$/;/'
      echo "COMMIT;"
    } | psql_q -d "$LIST_DB"
  }

  # The owner's row in the middle of their list: the cursor of a deep page.
  LIST_SQL=(psql -X -tA -d "$LIST_DB" -c)
  deep_after() { # principal
    "${LIST_SQL[@]}" "SELECT id FROM inference_store WHERE owner_principal = '$1'
      ORDER BY created DESC, id DESC LIMIT 1 OFFSET (SELECT count(*) / 2 FROM inference_store WHERE owner_principal = '$1')"
  }

  list_runs() { # size label [engine: "" for PostgreSQL, "sqlite-"]
    local size=$1 engine=${2:-} after7 after8 after9
    after7=$(deep_after user7)
    after8=$(deep_after user8)
    after9=$(deep_after user9)
    for policy in default custom; do
      local url
      if [[ $policy == default ]]; then url=$DEFAULT_URL; else url=$CUSTOM_URL; fi
      # team: 1% of the rows under the default policy; solo: 0.1%; wide: 30 teams, 30%;
      # admin: roles [admin], every row under the custom policy's admin override.
      for who in team solo wide admin; do
        local after=$after7
        [[ $who == solo ]] && after=$after8
        [[ $who == wide ]] && after=$after9
        for page in first deep; do
          # Under the default policy the admin caller sees no seeded row: no cursor to page from.
          [[ $who == admin && $policy == default && $page == deep ]] && continue
          local q="limit=20"
          [[ $page == deep ]] && q="limit=20&after=$after"
          "$BIN/loadgen" run --get --concurrency 1 --requests "${requests:-$LIST_REQUESTS}" --warmup 0.5 --token "$who-token" \
            --url "$url/v1/chat/completions?$q" --label "${engine:+SQLite, }$size, $policy policy, $who caller, $page page" \
            --json-out "$OUT/list-$engine$size-$policy-$who-$page.json" >>"$LIST_ROWS_MD"
          log "$(tail -n1 "$LIST_ROWS_MD")"
        done
      done
    done
  }

  BIG_LABEL=$((LIST_ROWS / 1000))k
  [[ $LIST_ROWS -ge 1000000 ]] && BIG_LABEL="$((LIST_ROWS / 1000000))M"
  if ! skipped list-postgres; then
    t0=$(date +%s.%N)
    seed 1 10000
    psql_q -d "$LIST_DB" -c "ANALYZE inference_store"
    t1=$(date +%s.%N)
    echo "{\"seed_10k_s\": $(elapsed "$t0" "$t1")}" >"$OUT/seed-10k.json"
    list_runs 10k

    t0=$(date +%s.%N)
    seed_bulk 10001 "$LIST_ROWS"
    psql_q -d "$LIST_DB" -c "VACUUM ANALYZE inference_store"
    t1=$(date +%s.%N)
    echo "{\"seed_big_s\": $(elapsed "$t0" "$t1"), \"rows\": $LIST_ROWS, \"label\": \"$BIG_LABEL\"}" >"$OUT/seed-big.json"
    log "seeded $LIST_ROWS rows in $(elapsed "$t0" "$t1") s"
    list_runs "$BIG_LABEL"
  fi

  explain_all() { # config prefix ("list" or "list-sqlite")
    local prefix=$1 a7 a8 a9 policy who after page
    a7=$(deep_after user7)
    a8=$(deep_after user8)
    a9=$(deep_after user9)
    # Every caller, both policies, first page and deep page (admin: after user7's middle row).
    for policy in default custom; do
      for args in "user7 team $a7" "user8 solo $a8" "user9 wide $a9" "admin1 admin $a7"; do
        read -r who label after <<<"$args"
        for page in first deep; do
          [[ $who == admin1 && $policy == default && $page == deep ]] && continue
          if [[ $page == deep ]]; then
            echo "### $prefix-$policy, $label caller ($who), deep page (after $after)"
            echo
            "$BIN/examples/explain_list" "$OUT/$prefix-$policy.yaml" "$who" "$after" 2>&1 | sed 's/^/    /'
          else
            echo "### $prefix-$policy, $label caller ($who), first page"
            echo
            "$BIN/examples/explain_list" "$OUT/$prefix-$policy.yaml" "$who" 2>&1 | sed 's/^/    /'
          fi
          echo
        done
      done
    done
  }
  if ! skipped list-postgres; then
    explain_all list >"$OUT/explain.txt"
    stop_pid "$DEFAULT_PG_PID"
    stop_pid "$CUSTOM_PG_PID"
  fi

  # The same on SQLite (skip with BENCH_SKIP=list-sqlite): one database file, migrated by
  # `ferrostack migrate`, seeded with a recursive CTE in one transaction by the sqlite3 shell.
  if ! skipped list-sqlite && command -v sqlite3 >/dev/null; then
    LIST_FILE="$OUT/list.sqlite"
    for policy in default custom; do
      sed -e '/^storage:/,/^  stores:/c\
storage:\
  backends:\
    kv_default: { type: kv_sqlite, db_path: '"$LIST_FILE"' }\
    sql_default: { type: sql_sqlite, db_path: '"$LIST_FILE"', pool_size: 4 }\
  stores:' "$OUT/list-$policy.yaml" >"$OUT/list-sqlite-$policy.yaml"
    done
    "$BIN/ferrostack" migrate --config "$OUT/list-sqlite-default.yaml" >>"$OUT/migrate.out" 2>&1
    start_ferrostack "$OUT/list-sqlite-default.yaml" list-sqlite-default
    DEFAULT_URL=$FS_URL
    start_ferrostack "$OUT/list-sqlite-custom.yaml" list-sqlite-custom
    CUSTOM_URL=$FS_URL
    LIST_SQL=(sqlite3 -batch -noheader "$LIST_FILE")
    seed_sqlite() { # from to
      sqlite3 -batch "$LIST_FILE" "PRAGMA busy_timeout = 60000; BEGIN;
        WITH RECURSIVE s(g) AS (SELECT $1 UNION ALL SELECT g + 1 FROM s WHERE g < $2)
        INSERT INTO inference_store (id, created, model, choices, input_messages, metadata, owner_principal, access_attributes)
        SELECT 'chatcmpl-seed-' || printf('%08d', g), 1700000000 + g / 10, 'mock-model',
          json_array(json_object('index', 0, 'finish_reason', 'stop', 'logprobs', NULL,
            'message', json_object('role', 'assistant', 'content', 'answer ' || g || ' the quick brown fox jumps over the lazy dog'))),
          json_array(json_object('role', 'user', 'content', 'question ' || g)),
          NULL, 'user' || (g % 1000), json_object('teams', json_array('team' || ((g % 1000) % 100)))
        FROM s;
        COMMIT; ANALYZE;" >/dev/null
    }
    # BENCH_LIST_SQLITE_REQUESTS (default 100): requests per SQLite cell.
    requests=${BENCH_LIST_SQLITE_REQUESTS:-$((q ? 30 : 100))}
    seed_sqlite 1 10000
    list_runs 10k sqlite-
    t0=$(date +%s.%N)
    seed_sqlite 10001 "$LIST_ROWS"
    t1=$(date +%s.%N)
    echo "{\"seed_big_s\": $(elapsed "$t0" "$t1"), \"rows\": $LIST_ROWS, \"label\": \"$BIG_LABEL\"}" >"$OUT/seed-sqlite-big.json"
    log "SQLite: seeded $LIST_ROWS rows in $(elapsed "$t0" "$t1") s"
    list_runs "$BIG_LABEL" sqlite-
    explain_all list-sqlite >"$OUT/explain-sqlite.txt"
  fi
fi

# --- report ----------------------------------------------------------------------------------------
python3 - "$OUT" "$REPORT" "$DURATION" "$WARMUP" "$CONCURRENCY" "$WORDS" "$CHUNK_DELAY_MS" "$MOCK_WORKERS" <<'PY'
import json, os, sys
out, report, duration, warmup, conc, words, delay, mock_workers = sys.argv[1:9]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
def read(name):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else ""
lines = ["# ferrostack benchmark report", "", "Machine (absolute numbers below depend on it):", "", read("machine.md").strip(), ""]
pids = load("pids.json")
dj, fj, ds, fs = (load(n + ".json") for n in ("direct-json", "fs-json", "direct-sse", "fs-sse"))
goals = []
if dj and fj:
    lines += ["## Proxy: ferrostack vs the mock directly", "",
              f"{conc} connections, {duration} s measured after {warmup} s warm-up, {words} words per answer, "
              f"{delay} ms between stream chunks, mock latency {os.environ.get('BENCH_LATENCY_MS', '0')} ms, mock on {mock_workers} workers; PostgreSQL store on (queue 10,000, "
              "4 writers, batch 256, durability async). Everything on one machine: loadgen, the mock, ferrostack "
              "and PostgreSQL share the CPUs.", "",
              "### Headline (ratios from this run)", "",
              "| | JSON | SSE |", "|---|---:|---:|"]
    def ratio(a, b): return b["requests_per_second"] / a["requests_per_second"] if a["requests_per_second"] else 0
    lines.append(f"| throughput, ferrostack / direct to the mock | **{ratio(dj, fj):.2f}** | **{ratio(ds, fs):.2f}** |")
    lines.append(f"| added p50 latency (ms) | {fj['latency']['p50_ms'] - dj['latency']['p50_ms']:.2f} | {fs['latency']['p50_ms'] - ds['latency']['p50_ms']:.2f} |")
    lines.append(f"| added p99 latency (ms) | **{fj['latency']['p99_ms'] - dj['latency']['p99_ms']:.2f}** | **{fs['latency']['p99_ms'] - ds['latency']['p99_ms']:.2f}** |")
    lines.append(f"| added p99 time to first chunk (ms) | - | {fs['first_chunk']['p99_ms'] - ds['first_chunk']['p99_ms']:.2f} |")
    for r in (fj, fs):
        ok = r.get("stored_rows") == r["ok_total"]
        lines.append(f"| stored rows == 2xx ({'JSON' if r is fj else 'SSE'}) | {r.get('stored_rows')} / {r['ok_total']} {'ok' if ok else 'MISMATCH'} | |")
    lines += ["", "### Runs (absolute numbers: machine-dependent)", "", read("proxy-rows.md").strip() and
              "| run | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | first chunk p50 / p99 ms | 2xx | errors | stored rows |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n" + read("proxy-rows.md").strip(), ""]
    cpu_rows = ["| run | wall s | mock CPU s (% of one core) | ferrostack CPU s (% of one core) | machine busy (all CPUs) |", "|---|---:|---:|---:|---:|"]
    for name, label in (("direct-json", "mock direct, JSON"), ("fs-json", "ferrostack, JSON"), ("direct-sse", "mock direct, SSE"), ("fs-sse", "ferrostack, SSE")):
        c = load(name + ".cpu.json")
        if not c: continue
        t = c["clk_tck"]; wall = c["wall"]
        def cell(pid):
            v = c.get(str(pid))
            return "-" if v is None else f"{v / t:.1f} ({100 * v / t / wall:.0f}%)"
        busy = 100 * c["machine_busy"] / max(1, c["machine_busy"] + c["machine_idle"])
        cpu_rows.append(f"| {label} | {wall:.1f} | {cell(pids['mock'])} | {cell(pids['ferrostack'])} | {busy:.0f}% |")
    lines += ["CPU used during each run (from /proc/PID/stat and /proc/stat, warm-up included):", ""] + cpu_rows + [""]
    per = []
    for name, r, pid, who in (("direct-json", dj, pids["mock"], "mock, JSON"), ("fs-json", fj, pids["ferrostack"], "ferrostack, JSON"),
                              ("direct-sse", ds, pids["mock"], "mock, SSE"), ("fs-sse", fs, pids["ferrostack"], "ferrostack, SSE")):
        c = load(name + ".cpu.json")
        if c and c.get(str(pid)) is not None and r["ok_total"]:
            per.append(f"{who} {1e6 * c[str(pid)] / c['clk_tck'] / r['ok_total']:.0f} µs")
    lines += ["CPU time per answered request: " + "; ".join(per) + ".", ""]
    goals.append(("throughput >= 50% of direct to the mock (JSON / SSE)", f"{ratio(dj, fj):.0%} / {ratio(ds, fs):.0%}", ratio(dj, fj) >= 0.5 and ratio(ds, fs) >= 0.5))
    added = max(fj['latency']['p99_ms'] - dj['latency']['p99_ms'], fs['latency']['p99_ms'] - ds['latency']['p99_ms'])
    goals.append(("p99 added latency <= 5 ms (worst of JSON / SSE)", f"{fj['latency']['p99_ms'] - dj['latency']['p99_ms']:.2f} / {fs['latency']['p99_ms'] - ds['latency']['p99_ms']:.2f} ms", added <= 5))
    rows_ok = fj.get("stored_rows") == fj["ok_total"] and fs.get("stored_rows") == fs["ok_total"]
    goals.append(("stored rows == 2xx responses", f"{fj.get('stored_rows')} == {fj['ok_total']}, {fs.get('stored_rows')} == {fs['ok_total']}", rows_ok))
    goals.append(("50x the reference (~110 req/s) = 5,500 req/s (JSON)", f"{fj['requests_per_second']:.0f} req/s = {fj['requests_per_second'] / 110:.0f}x", fj['requests_per_second'] >= 5500))
peers = load("peers-pids.json")
if peers:
    wdj, wfj, wds, wfs = (load(n + ".json") for n in ("wrk-direct-json", "wrk-fs-json", "wrk-direct-sse", "wrk-fs-sse"))
    odj, ofj, ods, ofs = (load(n + ".json") for n in ("one-direct-json", "one-fs-json", "one-direct-sse", "one-fs-sse"))
    cgj, cgs = load("cg-json.ir.json"), load("cg-sse.ir.json")
    events = int(peers["words"]) + 2
    def rps(w): return w["wrk"]["requests"] / (w["wrk"]["duration_us"] / 1e6)
    def cpu_us(w, i=1): return 1e6 * w[f"cpu_{i}"] / w["clk_tck"] / max(1, w["wrk"]["requests"])
    rows = ["| | JSON | SSE |", "|---|---:|---:|"]
    if wfj and wfs and wdj and wds:
        rows.append(f"| ferrostack CPU per request, its own process (user+system), wrk run | **{cpu_us(wfj):.0f} µs** | **{cpu_us(wfs):.0f} µs** |")
        rows.append(f"| ferrostack CPU per relayed event ({events} per stream) | - | **{cpu_us(wfs) / events:.1f} µs** |")
        rows.append(f"| the mock's CPU per request, direct | {cpu_us(wdj, 0):.0f} µs | {cpu_us(wds, 0):.0f} µs |")
        rows.append(f"| throughput at {conc} connections, ferrostack / the mock directly (wrk) | **{rps(wfj) / rps(wdj):.2f}** | **{rps(wfs) / rps(wds):.2f}** |")
        rows.append(f"| req/s: mock direct / ferrostack (wrk) | {rps(wdj):,.0f} / {rps(wfj):,.0f} | {rps(wds):,.0f} / {rps(wfs):,.0f} |")
        rows.append(f"| stored rows / 2xx (wrk runs; wrk stops with up to {conc} answers in flight: stored, not counted) | {wfj['stored_rows']} / {wfj['wrk']['requests'] - wfj['wrk']['non2xx']} | {wfs['stored_rows']} / {wfs['wrk']['requests'] - wfs['wrk']['non2xx']} |")
        if dj and fj and ds and fs:
            rows.append(f"| throughput, ferrostack / the mock directly (loadgen, section above) | {fj['requests_per_second'] / dj['requests_per_second']:.2f} | {fs['requests_per_second'] / ds['requests_per_second']:.2f} |")
    if odj and ofj and ods and ofs:
        def added(a, b, k, p): return b[k][p] - a[k][p]
        rows.append(f"| added latency at 1 connection, p50 / p99 (ms) | **{added(odj, ofj, 'latency', 'p50_ms'):.3f} / {added(odj, ofj, 'latency', 'p99_ms'):.3f}** | {added(ods, ofs, 'latency', 'p50_ms'):.3f} / {added(ods, ofs, 'latency', 'p99_ms'):.3f} |")
        rows.append(f"| added time to first chunk at 1 connection, p50 / p99 (ms) | - | **{added(ods, ofs, 'first_chunk', 'p50_ms'):.3f} / {added(ods, ofs, 'first_chunk', 'p99_ms'):.3f}** |")
        rows.append(f"| mock direct at 1 connection, p50 / p99 (ms) | {odj['latency']['p50_ms']:.3f} / {odj['latency']['p99_ms']:.3f} | {ods['latency']['p50_ms']:.3f} / {ods['latency']['p99_ms']:.3f} |")
    if cgj and cgs:
        rows.append(f"| callgrind: ferrostack instructions per request (10 connections, store on) | **{cgj['instructions'] / cgj['requests']:,.0f}** | **{cgs['instructions'] / cgs['requests']:,.0f}** ({cgs['instructions'] / cgs['requests'] / events:,.0f} per event) |")
    lines += ["## Peers' measures (issue 16)", "",
              f"`wrk -t2 -c{conc}` for {os.environ.get('BENCH_WRK_DURATION', 'the default')} s per run (no warm-up); CPU from /proc/PID/stat over the run, divided by the requests wrk completed; "
              "1 connection: loadgen, sequential requests after 1 s warm-up; callgrind: `valgrind --tool=callgrind`, counting only while the measured requests run.", ""] + rows + [""]
write = read("write.md").strip()
if write:
    lines += ["## Write path (absolute numbers: machine-dependent)", "", write, ""]
    best = 0
    for line in write.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[1] == "queue" and cells[0] == "postgres":
            best = max(best, float(cells[4]))
    goals.append(("batched inserts >= 30,000 rows/s (PostgreSQL, best queue setting)", f"{best:,.0f} rows/s", best >= 30000))
idle = load("idle.json")
if idle:
    after = load("after-load.json") or {}
    lines += ["## Memory", "", f"ferrostack RSS 1 s after start-up (idle): **{idle['rss_kb'] / 1024:.1f} MiB**; "
              f"after the proxy runs: {after.get('rss_kb', 0) / 1024:.1f} MiB (peak {after.get('hwm_kb', 0) / 1024:.1f} MiB).", ""]
    goals.append(("idle memory <= 30 MB", f"{idle['rss_kb'] / 1024:.1f} MiB", idle['rss_kb'] / 1024 <= 30))
big = load("seed-big.json") or load("seed-sqlite-big.json")
if big:
    small_seed = load("seed-10k.json")
    seeded = (f"Seeded in bulk (generate_series): 10k rows in {small_seed['seed_10k_s']:.1f} s, then up to {big['rows']:,} rows "
              f"in {big['seed_big_s']:.1f} s (secondary indexes and key dropped and rebuilt as the migration defines them). "
              if small_seed else
              f"SQLite only (PostgreSQL skipped): seeded by the sqlite3 shell, up to {big['rows']:,} rows in {big['seed_big_s']:.1f} s "
              "(the side table's triggers included). ")
    lines += ["## Listing (absolute numbers: machine-dependent)", "",
              seeded +
              "1,000 owners `user0..user999` (row g: owner `user(g % 1000)`, `access_attributes` `{teams: [team((g % 1000) % 100)]}`), 10 rows per second of `created`. "
              "Over HTTP against the real server (`GET /v1/chat/completions?limit=20`, static tokens), one connection, "
              "sequential requests. Callers: **team** = `user7` with `teams: [team7]` (under the default policy they see 10 owners' rows, 1% of the table), "
              "**solo** = `user8` without attributes (own rows only, 0.1%), **wide** = `user9` with 30 teams (30%), **admin** = `admin1` with roles [admin] "
              "(custom policy: every row; default policy: none, so no deep page). Custom policy: admin override, then owner only. "
              "Deep page: `after` = the caller's own row in the middle of their own rows.", "",
              "| run | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | first chunk p50 / p99 ms | 2xx | errors | stored rows |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n" + read("list-rows.md").strip(), ""]
    lab = big["label"]
    for engine, name in (("", "PostgreSQL"), ("sqlite-", "SQLite")):
        for who in ("team", "solo", "wide", "admin"):
            for pol in ("default", "custom"):
                s, b = load(f"list-{engine}10k-{pol}-{who}-first.json"), load(f"list-{engine}{lab}-{pol}-{who}-first.json")
                if s and b:
                    r = b['latency']['p50_ms'] / s['latency']['p50_ms']
                    goals.append((f"first page at {lab} <= 3 ms p50 and <= 1.5x of 10k ({name}, {pol} policy, {who} caller)",
                                  f"{b['latency']['p50_ms']:.2f} ms, {r:.2f}x", b['latency']['p50_ms'] <= 3 and r <= 1.5))
    lines += [f"### EXPLAIN ANALYZE at {lab} rows (PostgreSQL)", "", read("explain.txt").strip(), ""]
    if read("explain-sqlite.txt").strip():
        lines += [f"### EXPLAIN QUERY PLAN at {lab} rows (SQLite)", "", read("explain-sqlite.txt").strip(), ""]
if goals:
    lines[6:6] = ["## Goals (issue 6) vs measured", "", "| goal | measured | met |", "|---|---|---|"] + \
        [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in goals] + [""]
open(report, "w").write("\n".join(lines) + "\n")
PY
# The Responses rows, in a section of their own appended to the report.
if [[ -s "$OUT/responses-rows.md" ]]; then
  python3 - "$OUT" "$REPORT" <<'PY'
import json, os, sys
out, report = sys.argv[1:3]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
lines = ["## Responses API (`POST /v1/responses`, same mock and load as the proxy runs)", "",
         "Each request is translated to a chat completion, sent to the mock, translated back (JSON, or the "
         "Responses events of each chunk) and stored synchronously (one row, committed before the answer ends).", "",
         "| run | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | first chunk p50 / p99 ms | 2xx | errors | stored rows |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|", open(os.path.join(out, "responses-rows.md")).read().strip(), ""]
for mode, chat in (("json", "fs-json"), ("sse", "fs-sse")):
    r, c, stored = load(f"responses-{mode}.json"), load(f"{chat}.json"), load(f"responses-{mode}.stored.json")
    if not r:
        continue
    line = f"- {mode.upper()}: stored rows {stored['stored'] if stored else '?'} for {r['ok_total']} 2xx answers (warm-up included)"
    if c and c["requests_per_second"]:
        line += (f"; {r['requests_per_second'] / c['requests_per_second']:.2f}x the chat-completions throughput of this run, "
                 f"p50 {r['latency']['p50_ms'] - c['latency']['p50_ms']:+.2f} ms vs chat completions")
    lines.append(line + ".")
open(report, "a").write("\n".join(lines) + "\n")
PY
fi
log "report: $REPORT"
cat "$REPORT"
