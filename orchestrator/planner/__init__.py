"""PURE. Dependency graph (networkx), desired-vs-observed diff, plans as data with causes,
restart backoff arithmetic. No anyio, no syscalls, no os.environ."""
