"""SHA-256 without loading OpenSSL: CPython's built-in implementation where it can be imported
alone. ``hashlib`` loads libcrypto (~3.7 MiB resident, ~4 ms) for this one hash; the fork server
(seccomp cache keys) and the CLI (its load cache) need nothing else from it."""

from __future__ import annotations


def sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())
