#!/usr/bin/env bash
# RSS of a ferrostack server before, during (peak) and after two bursts of large request bodies
# (docs/configuration.md, server.limits). Usage:
#   scripts/burst_rss.sh [BIN] [chat|conv] [CONCURRENT] [BYTES]
# Starts BIN (default target/debug/ferrostack) on the built-in SQLite set-up in a scratch home.
set -u
bin=${1:-target/debug/ferrostack}; kind=${2:-conv}; n=${3:-30}; size=${4:-15000000}
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
burst; echo "peak: $(mb VmHWM), right after: $(mb VmRSS)"
sleep 20; echo "20 s after: $(mb VmRSS)"
burst; echo "peak: $(mb VmHWM), right after the second: $(mb VmRSS)"
sleep 20; echo "20 s after the second: $(mb VmRSS)"
