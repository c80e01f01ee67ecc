"""PURE. Decides what to do; never does it. ``graph`` orders services (dependency waves, cycles,
dependents, subsets for ``up web``/``--no-deps``), and the other modules diff desired against
observed state into plans with causes and do restart backoff arithmetic. Called by the
reconciler and (graph only) by the loader's checks. No anyio, no syscalls, no os.environ."""
