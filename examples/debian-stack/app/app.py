"""A page-hit counter: HTTP on :8000, state in Redis, spoken to with a ten-line RESP client."""

from __future__ import annotations

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = (os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")))


def redis(*args: str) -> object:
    """Send one command, read one reply (simple strings, errors, integers, bulk strings)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(REDIS, timeout=3) as conn:
        conn.sendall(request.encode())
        reader = conn.makefile("rb")
        line = reader.readline().decode().rstrip("\r\n")
        kind, rest = line[0], line[1:]
        if kind == "+":
            return rest
        if kind == ":":
            return int(rest)
        if kind == "$":
            return None if rest == "-1" else reader.read(int(rest) + 2)[:-2].decode()
        raise RuntimeError(f"redis: {rest}")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            if self.path == "/health":
                body, status = {"redis": redis("PING")}, 200
            elif self.path == "/":
                body, status = {"hits": redis("INCR", "hits"), "served_by": socket.gethostname()}, 200
            else:
                body, status = {"error": "not found"}, 404
        except (OSError, RuntimeError) as exc:  # redis restarting: say so instead of hanging up
            body, status = {"error": f"redis unavailable: {exc}"}, 503
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    print(f"app: counting hits in redis at {REDIS[0]}:{REDIS[1]}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
