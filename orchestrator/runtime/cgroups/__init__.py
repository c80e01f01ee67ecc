"""cgroup v1 and v2 behind one interface, with files under an injectable root.

``open_driver()`` detects the host layout and returns a ``CgroupDriver``; ``CgroupLimits`` is the
driver-level description of a container's limits (the reconciler translates Compose into it).
``fake.FakeCgroupFs`` is a kernel-like cgroupfs in a temporary directory for unit tests and
``fake.RecordingCgroupDriver`` an in-memory driver for the layers above. See specs/cgroups.md.
"""

from orchestrator.runtime.cgroups.driver import (
    CgroupDriver,
    CgroupHandle,
    CgroupStats,
    DriverOptions,
    V1Driver,
    V2Driver,
    open_driver,
)
from orchestrator.runtime.cgroups.layout import Layout, detect_layout
from orchestrator.runtime.cgroups.limits import DOCKER_DEFAULT_DEVICES, UNLIMITED, CgroupLimits, DeviceRule

__all__ = [
    "DOCKER_DEFAULT_DEVICES",
    "UNLIMITED",
    "CgroupDriver",
    "CgroupHandle",
    "CgroupLimits",
    "CgroupStats",
    "DeviceRule",
    "DriverOptions",
    "Layout",
    "V1Driver",
    "V2Driver",
    "detect_layout",
    "open_driver",
]
