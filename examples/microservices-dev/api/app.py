"""A tiny JSON API on the standard library: GET /health, GET /items, POST /items."""

from __future__ import annotations

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEMS: list[dict[str, object]] = [{"id": 1, "name": "first"}]


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
        elif self.path == "/items":
            self._reply(200, {"items": ITEMS, "served_by": socket.gethostname(), "pid": os.getpid()})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/items":
            self._reply(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        item = json.loads(self.rfile.read(length) or b"{}")
        item["id"] = len(ITEMS) + 1
        ITEMS.append(item)
        self._reply(201, item)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"api listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
