"""Which DNS names a container's endpoints carry: a service's containers answer to the service's
name, their own and the network aliases; a one-off (`run`) only to its own name, unless
``--use-aliases`` (as Docker Compose connects `run` containers)."""

from __future__ import annotations

from orchestrator.model import FrozenDict, NetworkAttachment, Service
from orchestrator.reconciler.adapter import _network_endpoints
from orchestrator.state.records import ContainerRecord

SERVICE = Service(
    name="web",
    networks=FrozenDict({"default": NetworkAttachment(aliases=("www",)), "back": NetworkAttachment()}),
)


def record(name: str, one_off: bool = False, use_aliases: bool = False) -> ContainerRecord:
    return ContainerRecord(
        project="demo",
        name=name,
        service="web",
        number=0 if one_off else 1,
        container_id=name,
        config_hash="h",
        one_off=one_off,
        use_aliases=use_aliases,
    )


def names(rec: ContainerRecord) -> dict[str, tuple[str, ...]]:
    return {e.network: e.dns_names for e in _network_endpoints(rec, SERVICE, {})}


def test_service_containers_answer_to_the_service_and_its_aliases() -> None:
    assert names(record("demo-web-1")) == {
        "demo_back": ("web", "demo-web-1"),
        "demo_default": ("web", "demo-web-1", "www"),
    }


def test_a_one_off_answers_to_its_own_name_unless_use_aliases() -> None:
    assert names(record("demo-web-run-1a2b", one_off=True)) == {
        "demo_back": ("demo-web-run-1a2b",),
        "demo_default": ("demo-web-run-1a2b",),
    }
    assert names(record("demo-web-run-1a2b", one_off=True, use_aliases=True)) == {
        "demo_back": ("web", "demo-web-run-1a2b"),
        "demo_default": ("web", "demo-web-run-1a2b", "www"),
    }
