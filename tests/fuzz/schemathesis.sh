#!/usr/bin/env bash
# Fuzz the live server from its own description (/openapi.json) with schemathesis, once on the
# built-in SQLite set-up and once on PostgreSQL (a fresh database): no 5xx, every status, content
# type and body as described, and the server still healthy (and nothing logged at ERROR) at the
# end. Bounded: a fixed seed, a few examples per operation and a time budget per dialect.
#
# Usage: tests/fuzz/schemathesis.sh [path/to/ferrostack]   (default: target/debug/ferrostack)
# Needs: python3 with schemathesis (installed here when missing), PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug/ferrostack}
max_time=${FUZZ_MAX_TIME:-30}
examples=${FUZZ_MAX_EXAMPLES:-20}
if ! python3 -c "import schemathesis" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "${db:-}" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists "$db" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# fuzz NAME [serve args...]: start the server, fuzz it, check it is healthy, stop it.
fuzz() {
  local name=$1; shift
  local port; port=$(free_port)
  FERROSTACK_HOME="$work/$name" RUST_LOG=info "$bin" serve --port "$port" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  local base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fsS "$base/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$base/v1/health" >/dev/null || { cat "$work/$name.log"; echo "$name: the server did not start" >&2; exit 1; }
  local start; start=$(date +%s)
  # From the scratch directory: schemathesis leaves a .schemathesis/ folder where it runs.
  (cd "$work" && schemathesis run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples "$examples" --max-time "$max_time" \
    --seed 14 --no-shrink --workers 1 --request-timeout 10 --generation-database none \
    --report junit --report-dir "$work/report-$name" --no-color) \
    || { tail -50 "$work/$name.log"; echo "$name: schemathesis found failures" >&2; exit 1; }
  echo "$name: schemathesis took $(( $(date +%s) - start )) s"
  curl -fsS "$base/v1/health" >/dev/null || { echo "$name: not live after fuzzing" >&2; exit 1; }
  curl -fsS "$base/readyz" >/dev/null || { echo "$name: not ready after fuzzing" >&2; exit 1; }
  if grep -E '"level":"ERROR"| ERROR ' "$work/$name.log"; then
    echo "$name: the server logged at ERROR while being fuzzed" >&2; exit 1
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

fuzz sqlite

db="fuzz_$(date +%s)_$$"
createdb -h 127.0.0.1 -U postgres "$db"
cat >"$work/postgres.yaml" <<YAML
version: 2
storage:
  backends:
    kv_pg: { type: kv_postgres, host: 127.0.0.1, port: 5432, db: $db, user: postgres }
    sql_pg: { type: sql_postgres, host: 127.0.0.1, port: 5432, db: $db, user: postgres }
  stores:
    metadata: { backend: kv_pg, namespace: registry }
    prompts: { backend: kv_pg, namespace: prompts }
    connectors: { backend: kv_pg, namespace: connectors }
    inference: { backend: sql_pg }
    conversations: { backend: sql_pg }
    responses: { backend: sql_pg }
providers:
  inference:
    - { provider_id: echo, provider_type: inline::echo }
models:
  - { model_id: echo, provider_id: echo }
YAML
fuzz postgres --config "$work/postgres.yaml" --auto-migrate
