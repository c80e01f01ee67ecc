"""orc: a daemonless, Compose-compatible container orchestrator that is its own runtime.

The package is layered (see specs/architecture.md); imports only go downwards:
cli → api/daemon → reconciler → planner → stack → model, with runtime/* and state/ as drivers.

Importing the package installs ``codecache`` first: the methods ``dataclasses`` generates for
orc's classes are compiled once, not in every process.
"""

from orchestrator import codecache as _codecache

_codecache.install()

__version__ = "0.1.0"
