"""Calls the api service by its DNS name every few seconds and logs what it got."""

from __future__ import annotations

import json
import os
import time
import urllib.request

API = os.environ.get("API_URL", "http://api:8000")
INTERVAL = float(os.environ.get("INTERVAL", "2"))

if __name__ == "__main__":
    tick = 0
    while True:
        tick += 1
        try:
            with urllib.request.urlopen(f"{API}/items", timeout=3) as response:
                body = json.load(response)
            print(f"client tick {tick}: {len(body['items'])} items from {body['served_by']}", flush=True)
        except OSError as exc:
            print(f"client tick {tick}: api unreachable: {exc}", flush=True)
        time.sleep(INTERVAL)
