"""``orc doctor``: what this host has of what orc needs, and how to fix what it lacks.

``checks`` holds one pure function per feature (root, capabilities, namespaces, cgroups,
overlayfs, bridge, nftables, ip forwarding, seccomp, free subnets, tini, busybox, disk, registry),
``host.diagnose`` runs them over a ``host.Host`` (``LocalHost`` for real, ``fake.FakeHost`` for
tests), ``sandbox`` is the child that probes overlay and links in private namespaces. The CLI
verb (``orchestrator.cli.verb_doctor``) renders the results. See specs/doctor.md.
"""

from orchestrator.runtime.doctor.checks import (
    CheckResult,
    DiskUsage,
    RegistryPing,
    SandboxReport,
    Status,
    exit_code,
)
from orchestrator.runtime.doctor.host import DoctorOptions, Host, LocalHost, diagnose

__all__ = [
    "CheckResult",
    "DiskUsage",
    "DoctorOptions",
    "Host",
    "LocalHost",
    "RegistryPing",
    "SandboxReport",
    "Status",
    "diagnose",
    "exit_code",
]
