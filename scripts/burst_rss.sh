#!/usr/bin/env bash
# RSS of a ferrostack server before, during (peak) and after two bursts of large request bodies
# (docs/configuration.md, server.limits). Usage:
#   scripts/burst_rss.sh [BIN] [chat|conv] [CONCURRENT] [BYTES]
# Starts BIN (default target/debug/ferrostack) on the built-in SQLite set-up in a scratch home.
# BYTES defaults to 15 MB for conv and 7 MB for chat: the built-in echo model answers the
# request's text, so a chat row holds it twice and must stay under max_row_bytes (16 MiB) to be
# stored (a 15 MB chat body is a 413 after the upstream call, and stores nothing).
# HOLD_DB=SECONDS (chat): hold SQLite's write lock on the store for that long from the start of
# the first burst, so the write queue fills instead of draining (max_queue_bytes at work); RSS is
# printed when the lock is released and 20 s later. BURSTS=1: the first burst only.
set -u
bin=${1:-target/debug/ferrostack}; kind=${2:-conv}; n=${3:-30}
if [ "$kind" = chat ]; then size=${4:-7000000}; else size=${4:-15000000}; fi
home=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FERROSTACK_HOME=$home "$bin" serve --port "$port" >"$home/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
mb() { awk -v k="$1" '$1 == k":" {printf "%.0f MB", $2/1024}' "/proc/$pid/status"; }
burst() {
  python3 - "http://127.0.0.1:$port" "$n" "$size" "$kind" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error
base, n, size, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = "x" * size
if kind == "chat":
    url, body = base + "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": text}]}
else:
    url, body = base + "/v1/conversations", {"items": [{"role": "user", "content": text}]}
data, codes, lock = json.dumps(body).encode(), {}, threading.Lock()
def one():
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read(); c = r.status
    except urllib.error.HTTPError as e:
        e.read(); c = e.code
    except Exception as e:
        c = type(e).__name__
    with lock:
        codes[c] = codes.get(c, 0) + 1
t0 = time.time()
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("answers", codes, "in %.1f s" % (time.time() - t0))
PY
}
echo "before: $(mb VmRSS)"
if [ -n "${HOLD_DB:-}" ]; then
  python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE"); time.sleep(float(sys.argv[2])); c.execute("COMMIT")' "$home/sql_store.db" "$HOLD_DB" &
  locker=$!
  burst; echo "peak: $(mb VmHWM), right after (store locked): $(mb VmRSS)"
  wait $locker; echo "lock released: $(mb VmRSS)"
else
  burst; echo "peak: $(mb VmHWM), right after: $(mb VmRSS)"
fi
sleep 20; echo "20 s after: $(mb VmRSS)"
[ "${BURSTS:-2}" = 1 ] && exit 0
burst; echo "peak: $(mb VmHWM), right after the second: $(mb VmRSS)"
sleep 20; echo "20 s after the second: $(mb VmRSS)"
