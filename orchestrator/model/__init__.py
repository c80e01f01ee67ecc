"""PURE. Frozen dataclasses describing a project (Stack, Service, Network, Volume, ...), statuses
and hashes. The one description every other layer consumes."""
