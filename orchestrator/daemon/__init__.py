"""Per-project supervisor process: control socket (JSON lines), event bus, signal handling,
detaching for `up -d` and adopting containers after a restart."""
