"""orc: a daemonless, Compose-compatible container orchestrator that is its own runtime.

The package is layered (see specs/architecture.md); imports only go downwards:
cli → api/daemon → reconciler → planner → stack → model, with runtime/* and state/ as drivers.
"""

__version__ = "0.1.0"
