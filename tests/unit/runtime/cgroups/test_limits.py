"""CgroupLimits validation and the pure v1→v2 conversions."""

from __future__ import annotations

import pytest

from orchestrator.errors import PermanentError
from orchestrator.runtime.cgroups.limits import (
    DOCKER_DEFAULT_DEVICES,
    CgroupLimits,
    DeviceRule,
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    limit_value,
    pids_max_value,
    swap_max_value,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1, 1), (1024, 100), (262144, 10000), (300000, 10000), (512, 59), (2048, 174)],
)
def test_cpu_shares_map_onto_weight_with_runc_curve(shares: int, weight: int) -> None:
    assert cpu_shares_to_weight(shares) == weight


def test_cpu_weight_grows_with_shares() -> None:
    weights = [cpu_shares_to_weight(s) for s in range(2, 262145, 997)]
    assert weights == sorted(weights)
    assert all(1 <= w <= 10000 for w in weights)


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_maps_linearly_onto_io_weight(blkio: int, io: int) -> None:
    assert blkio_weight_to_io_weight(blkio) == io


def test_swap_total_defaults_to_twice_memory_as_docker() -> None:
    assert CgroupLimits(memory=64 * MiB).effective_memory_swap() == 128 * MiB
    assert CgroupLimits(memory=64 * MiB, memory_swap=64 * MiB).effective_memory_swap() == 64 * MiB
    assert CgroupLimits(memory=64 * MiB, memory_swap=-1).effective_memory_swap() == -1
    assert CgroupLimits(memory=64 * MiB, memory_swap=0).effective_memory_swap() is None
    assert CgroupLimits().effective_memory_swap() is None


def test_v2_swap_is_the_total_minus_memory() -> None:
    assert swap_max_value(64 * MiB, 96 * MiB) == str(32 * MiB)
    assert swap_max_value(64 * MiB, 64 * MiB) == "0"
    assert swap_max_value(64 * MiB, -1) == "max"
    assert swap_max_value(-1, None) == "max"
    assert swap_max_value(None, None) is None
    with pytest.raises(PermanentError):
        swap_max_value(None, 96 * MiB)


@pytest.mark.parametrize(
    "limits",
    [
        CgroupLimits(memory=0),
        CgroupLimits(memory=64 * MiB, memory_swap=32 * MiB),
        CgroupLimits(memory_swap=32 * MiB),
        CgroupLimits(cpus=0),
        CgroupLimits(cpus=-1.5),
        CgroupLimits(cpu_shares=1),
        CgroupLimits(cpu_shares=300000),
        CgroupLimits(cpu_quota_us=999),
        CgroupLimits(cpu_period_us=100),
        CgroupLimits(pids_limit=-2),
        CgroupLimits(blkio_weight=5),
        CgroupLimits(memory_swappiness=101),
        CgroupLimits(memory_reservation=-1),
    ],
)
def test_values_no_kernel_accepts_are_refused_up_front(limits: CgroupLimits) -> None:
    with pytest.raises(PermanentError):
        limits.validate()


def test_sane_values_pass_validation() -> None:
    CgroupLimits(
        memory=32 * MiB, memory_swap=-1, cpus=0.5, cpu_shares=512, pids_limit=-1, blkio_weight=10
    ).validate()
    CgroupLimits(memory=-1).validate()
    CgroupLimits(cpu_quota_us=-1).validate()


def test_cpus_become_quota_over_the_default_period() -> None:
    assert CgroupLimits(cpus=0.5).cpu_quota_and_period() == (50_000, 100_000)
    assert CgroupLimits(cpus=1.5, cpu_period_us=10_000).cpu_quota_and_period() == (15_000, 10_000)
    assert CgroupLimits(cpus=0.001).cpu_quota_and_period() == (1_000, 100_000)
    assert CgroupLimits(cpus=2, cpu_quota_us=30_000).cpu_quota_and_period() == (30_000, None)
    assert CgroupLimits().cpu_quota_and_period() == (None, None)


def test_device_rules_default_to_dockers_list_plus_extras() -> None:
    extra = DeviceRule("c", 10, 229)
    assert CgroupLimits().device_rules() == DOCKER_DEFAULT_DEVICES
    assert CgroupLimits(extra_devices=(extra,)).device_rules() == (*DOCKER_DEFAULT_DEVICES, extra)
    assert CgroupLimits(unconfined_devices=True).device_rules() is None
    assert CgroupLimits(devices=()).device_rules() == ()


def test_device_rule_lines_use_the_kernel_syntax() -> None:
    assert DeviceRule("c", 136, None).line() == "c 136:* rwm"
    assert DeviceRule("b", None, None, "m").line() == "b *:* m"
    assert DeviceRule("a", None, None).line() == "a"
    with pytest.raises(PermanentError):
        DeviceRule("x", 1, 3)
    with pytest.raises(PermanentError):
        DeviceRule("c", 1, 3, "rx")


def test_small_value_helpers() -> None:
    assert pids_max_value(0) == "max"
    assert pids_max_value(-1) == "max"
    assert pids_max_value(16) == "16"
    assert limit_value(-1) == "max"
    assert limit_value(5) == "5"
