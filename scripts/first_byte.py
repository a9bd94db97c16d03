#!/usr/bin/env python3
"""Time to first byte and to the whole answer of sequential chat completions over one kept-alive
connection, from a raw socket: the request goes out in one write, the clock stops at the first
bytes read, so no HTTP client's own work is counted. Run it against ferrostack and against the
upstream directly; the difference is what ferrostack adds.

    scripts/first_byte.py HOST PORT REQUESTS (json|sse) [MODEL]

The first 50 requests are not counted (warm-up). Prints p50/p90/p99 in milliseconds.
"""

import socket
import sys
import time

WARMUP = 50


def main() -> None:
    if len(sys.argv) < 5 or sys.argv[4] not in ("json", "sse"):
        raise SystemExit(__doc__)
    host, port, count, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    model = sys.argv[5] if len(sys.argv) > 5 else "mock-model"
    stream = kind == "sse"
    body = (
        '{"model":"%s","stream":%s,"messages":[{"role":"system","content":"You are a helpful '
        'assistant."},{"role":"user","content":"Write one sentence about load testing an API server."}]}'
        % (model, "true" if stream else "false")
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (host.encode(), port, len(body))
    ) + body

    def complete(data: bytes) -> bool:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return False
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit("not a 200 answer: %r" % head[:200])
        if stream:
            return rest.endswith(b"0\r\n\r\n")
        length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        return len(rest) >= int(length[0].split(b":")[1])

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first, whole = [], []
    for i in range(count + WARMUP):
        started = time.perf_counter()
        sock.sendall(request)
        data = sock.recv(65536)
        got_first = time.perf_counter()
        while not complete(data):
            more = sock.recv(65536)
            if not more:
                raise SystemExit("the connection closed")
            data += more
        done = time.perf_counter()
        if i >= WARMUP:
            first.append(got_first - started)
            whole.append(done - started)

    def pct(samples: list, p: float) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    print(
        f"{host}:{port} {kind} n={len(first)} first byte p50/p90/p99 = "
        f"{pct(first, .5):.3f} / {pct(first, .9):.3f} / {pct(first, .99):.3f} ms; "
        f"whole answer p50 = {pct(whole, .5):.3f} ms"
    )


if __name__ == "__main__":
    main()
