"""Atomic on-disk state (JSON files written tmp+rename) per project and container, and an
in-memory twin for tests."""
