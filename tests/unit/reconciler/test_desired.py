"""From a loaded Compose project to the reconciler's input."""

from __future__ import annotations

from orchestrator.planner.observed import Dependency
from orchestrator.planner.restart import RestartPolicy
from orchestrator.reconciler.desired import from_loaded
from orchestrator.reconciler.health import HealthCheck
from orchestrator.stack.loader import LoadOptions, load
from orchestrator.stack.source import MemoryFileSource

COMPOSE = """
services:
  db:
    image: postgres:16
    environment: {A: "1"}
    healthcheck: {test: ["CMD", "pg_isready"], interval: 2s, retries: 4}
    volumes: [data:/var/lib/pg]
    stop_signal: SIGINT
    stop_grace_period: 3s
  web:
    image: busybox
    x-orc: {rootfs: ./root}
    depends_on: {db: {condition: service_healthy, restart: true}}
    restart: on-failure:3
    scale: 2
    logging: {options: {max-size: 1k, max-file: "2"}}
    networks: [front, back]
  job:
    image: busybox
    deploy: {restart_policy: {condition: on-failure, delay: 5s, max_attempts: 2, window: 1m}}
    network_mode: none
networks: {front: {}, back: {}, outside: {external: true}}
volumes: {data: {}}
"""


def spec_of(text: str):  # type: ignore[no-untyped-def]
    project = load(
        LoadOptions(cwd="/srv/demo", environ={}), MemoryFileSource({"/srv/demo/compose.yaml": text})
    )
    return from_loaded(project)


def test_services_networks_volumes() -> None:
    spec = spec_of(COMPOSE)
    desired = spec.desired
    assert desired.project == "demo"
    assert [s.name for s in desired.services] == ["db", "job", "web"]
    assert desired.networks == ("demo_back", "demo_default", "demo_front")
    assert desired.volumes == ("demo_data",)
    web = desired.service("web")
    assert web is not None
    assert web.image == "rootfs:/srv/demo/root"
    assert web.replicas == 2
    assert web.depends_on == (Dependency("db", "service_healthy", True, True),)
    assert set(web.networks) == {"demo_front", "demo_back"}
    assert "depends_on" not in web.config and "scale" not in web.config
    job = desired.service("job")
    assert job is not None and job.networks == ()


def test_behaviours() -> None:
    spec = spec_of(COMPOSE)
    db = spec.behaviour("db")
    assert db.healthcheck == HealthCheck(("CMD", "pg_isready"), interval=2.0, retries=4)
    assert (db.stop_signal, db.stop_grace_period) == ("SIGINT", 3.0)
    web = spec.behaviour("web")
    assert web.restart == RestartPolicy("on-failure", max_attempts=3)
    assert (web.log_options.max_size, web.log_options.max_file) == (1024, 2)
    assert spec.behaviour("job").restart == RestartPolicy(
        "on-failure", max_attempts=2, delay=5.0, window=60.0
    )


def test_config_change_changes_hash_and_config() -> None:
    before = spec_of(COMPOSE).desired.service("db")
    after = spec_of(COMPOSE.replace('A: "1"', 'A: "2"')).desired.service("db")
    assert before is not None and after is not None
    assert before.config_hash != after.config_hash
    assert after.config["environment"] == {"A": "2"}


def test_document_payload_round_trip_matches_loading() -> None:
    import json

    from orchestrator.reconciler.desired import document_payload, from_document

    project = load(
        LoadOptions(cwd="/srv/demo", environ={}), MemoryFileSource({"/srv/demo/compose.yaml": COMPOSE})
    )
    payload = json.loads(json.dumps(document_payload(project)))  # as it crosses the control socket
    assert from_document(payload).desired == from_loaded(project).desired
    assert (
        from_document(payload).behaviour("db").healthcheck == from_loaded(project).behaviour("db").healthcheck
    )


def test_healthcheck_timings_only_and_disabled() -> None:
    spec = spec_of(
        """
services:
  a:
    image: x
    healthcheck: {interval: 3s, retries: 7}
  b:
    image: x
    healthcheck: {disable: true}
"""
    )
    a, b = spec.behaviour("a"), spec.behaviour("b")
    assert a.healthcheck is None and dict(a.healthcheck_timings) == {"interval": 3.0, "retries": 7}
    assert b.healthcheck is None and b.healthcheck_disabled


def test_network_specs_follow_the_compose_definition() -> None:
    import pytest as _pytest

    from orchestrator.errors import PermanentError
    from orchestrator.model import IPAMConfig, IPAMPool, Network
    from orchestrator.model.frozen import FrozenDict
    from orchestrator.reconciler.adapter import network_spec
    from orchestrator.runtime.network.spec import IpamPool

    assert network_spec("demo", "demo_default", None).pools == ()
    edge = Network(
        key="edge",
        name="demo_edge",
        driver="bridge",
        driver_opts=FrozenDict({"com.docker.network.driver.mtu": "1400"}),
        ipam=IPAMConfig(
            pools=(IPAMPool("10.9.0.0/24", "10.9.0.1", "10.9.0.128/25", FrozenDict({"router": "10.9.0.2"})),)
        ),
        internal=True,
        enable_ipv6=True,
        labels=FrozenDict({"team": "a"}),
    )
    spec = network_spec("demo", "demo_edge", edge)
    assert spec.pools == (IpamPool("10.9.0.0/24", "10.9.0.1", "10.9.0.128/25", ("10.9.0.2",)),)
    assert (spec.internal, spec.enable_ipv6, spec.external) == (True, True, False)
    assert spec.driver_opts == (("com.docker.network.driver.mtu", "1400"),)
    assert spec.labels == (("team", "a"),)
    with _pytest.raises(PermanentError, match="network edge: orc does not support driver 'overlay'"):
        network_spec("demo", "demo_edge", Network(key="edge", name="demo_edge", driver="overlay"))
    with _pytest.raises(PermanentError, match="ipam driver 'dhcp'"):
        network_spec(
            "demo", "demo_edge", Network(key="edge", name="demo_edge", ipam=IPAMConfig(driver="dhcp"))
        )
