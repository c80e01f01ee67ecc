"""Service's resolved views: Compose's precedence between overlapping keys, and small helpers."""

from __future__ import annotations

import pytest

from orchestrator.errors import NotFoundError
from orchestrator.model import (
    Deploy,
    DeployRestartPolicy,
    FileRef,
    FrozenDict,
    NetworkAttachment,
    PortSpec,
    PullPolicy,
    ResourceSpec,
    RestartPolicy,
    Service,
    Stack,
    restart_name,
)


def test_replicas_scale_wins_then_deploy_then_one() -> None:
    assert Service(name="a").effective_replicas == 1
    assert Service(name="a", deploy=Deploy(replicas=3)).effective_replicas == 3
    assert Service(name="a", scale=2, deploy=Deploy(replicas=3)).effective_replicas == 2
    assert Service(name="a", scale=0).effective_replicas == 0
    assert Service(name="a", deploy=Deploy(replicas=0)).effective_replicas == 0


def test_deploy_limits_override_the_legacy_keys_when_set() -> None:
    legacy = Service(name="a", mem_limit=100, cpus=1.5, pids_limit=50, mem_reservation=10)
    assert legacy.effective_memory_limit == 100
    assert legacy.effective_cpus == 1.5
    assert legacy.effective_pids_limit == 50
    assert legacy.effective_memory_reservation == 10

    deployed = Service(
        name="a",
        mem_limit=100,
        cpus=1.5,
        pids_limit=50,
        mem_reservation=10,
        deploy=Deploy(
            limits=ResourceSpec(cpus=0.5, memory=200, pids=20),
            reservations=ResourceSpec(memory=20),
        ),
    )
    assert deployed.effective_memory_limit == 200
    assert deployed.effective_cpus == 0.5
    assert deployed.effective_pids_limit == 20
    assert deployed.effective_memory_reservation == 20


def test_zero_deploy_limits_fall_back_and_zero_means_unset() -> None:
    service = Service(
        name="a",
        mem_limit=100,
        pids_limit=0,
        deploy=Deploy(limits=ResourceSpec(cpus=0.0, memory=0, pids=0)),
    )
    assert service.effective_memory_limit == 100
    assert service.effective_cpus is None
    assert service.effective_pids_limit is None
    assert Service(name="a").effective_memory_limit is None


@pytest.mark.parametrize(
    ("restart", "policy"),
    [
        (None, RestartPolicy("no")),
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("unless-stopped", RestartPolicy("unless-stopped")),
        ("on-failure", RestartPolicy("on-failure")),
        ("on-failure:5", RestartPolicy("on-failure", max_retries=5)),
    ],
)
def test_restart_key_alone(restart: str | None, policy: RestartPolicy) -> None:
    assert Service(name="a", restart=restart).effective_restart_policy == policy


def test_deploy_restart_policy_replaces_restart() -> None:
    service = Service(
        name="a",
        restart="always",
        deploy=Deploy(
            restart_policy=DeployRestartPolicy(condition="on-failure", max_attempts=3, delay=5.0, window=60.0)
        ),
    )
    assert service.effective_restart_policy == RestartPolicy(
        "on-failure", max_retries=3, delay=5.0, window=60.0
    )
    none = Service(
        name="a", restart="always", deploy=Deploy(restart_policy=DeployRestartPolicy(condition="none"))
    )
    assert none.effective_restart_policy.name == "no"
    # The Compose spec's default condition is "any" (the planner's restart tracker agrees).
    default = Service(name="a", deploy=Deploy(restart_policy=DeployRestartPolicy(max_attempts=2)))
    assert default.effective_restart_policy == RestartPolicy("always", max_retries=2)
    # A deploy section without restart_policy leaves restart alone.
    assert (
        Service(name="a", restart="always", deploy=Deploy(replicas=2)).effective_restart_policy.name
        == "always"
    )


def test_restart_words() -> None:
    assert restart_name("any") == "always"
    assert restart_name("none") == "no"
    with pytest.raises(ValueError, match="unknown restart policy"):
        restart_name("sometimes")


def test_stop_grace_period_defaults_to_ten_seconds() -> None:
    assert Service(name="a").effective_stop_grace_period == 10.0
    assert Service(name="a", stop_grace_period=0.0).effective_stop_grace_period == 0.0


def test_environment_without_values_is_left_out() -> None:
    service = Service(name="a", environment=FrozenDict({"A": "1", "B": None, "C": ""}))
    assert service.container_environment() == {"A": "1", "C": ""}


def test_networks_by_priority_then_name() -> None:
    service = Service(
        name="a",
        networks=FrozenDict(
            {
                "b": NetworkAttachment(),
                "a": NetworkAttachment(),
                "z": NetworkAttachment(priority=10),
                "low": NetworkAttachment(priority=-1),
            }
        ),
    )
    assert service.networks_by_priority() == ["z", "a", "b", "low"]


def test_shared_namespaces() -> None:
    service = Service(
        name="a", network_mode="service:db", ipc="host", pid="service:p", uts="service:u", cgroup="host"
    )
    assert service.shared_namespace_service("network") == "db"
    assert service.shared_namespace_service("ipc") is None
    assert service.shared_namespace_service("pid") == "p"
    assert service.shared_namespace_service("uts") == "u"
    assert service.shared_namespace_service("cgroup") is None


def test_port_ranges() -> None:
    assert PortSpec(target=80).published_range() is None
    assert PortSpec(target=80, published="8080").published_range() == (8080, 8080)
    assert PortSpec(target=80, published="8000-8010").published_range() == (8000, 8010)


def test_orc_extension_and_frozenness() -> None:
    service = Service(name="a", extensions=FrozenDict({"x-orc": FrozenDict(a=1)}))
    assert service.orc_extension == {"a": 1}
    with pytest.raises(AttributeError):
        service.name = "b"  # type: ignore[misc]


def test_stack_lookup_names_known_services() -> None:
    stack = Stack(name="p", services=FrozenDict(web=Service(name="web"), db=Service(name="db")))
    assert stack.service("web").name == "web"
    with pytest.raises(NotFoundError, match=r'no such service: "api" \(services: db, web\)'):
        stack.service("api")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, PullPolicy("missing")),
        ("always", PullPolicy("always")),
        ("never", PullPolicy("never")),
        ("build", PullPolicy("build")),
        ("missing", PullPolicy("missing")),
        ("if_not_present", PullPolicy("missing")),
        ("daily", PullPolicy("refresh", 86400.0)),
        ("weekly", PullPolicy("refresh", 604800.0)),
        ("every_12h", PullPolicy("refresh", 43200.0)),
        ("every_2d", PullPolicy("refresh", 172800.0)),
        ("sometimes", PullPolicy("missing")),
    ],
)
def test_pull_policy_like_compose_go(policy: str | None, expected: PullPolicy) -> None:
    assert Service(name="a", pull_policy=policy).effective_pull_policy == expected


def test_image_and_container_names_follow_compose() -> None:
    assert Service(name="web", image="nginx").image_name("shop") == "nginx"
    assert Service(name="web").image_name("shop") == "shop-web"
    assert Service(name="web").container_name_for("shop", 2) == "shop-web-2"
    assert Service(name="web", container_name="front").container_name_for("shop", 1) == "front"


def test_secret_and_config_targets() -> None:
    assert FileRef("token").container_path("secret") == "/run/secrets/token"
    assert FileRef("token", target="api/key").container_path("secret") == "/run/secrets/api/key"
    assert FileRef("token", target="/etc/token").container_path("secret") == "/etc/token"
    assert FileRef("nginx.conf").container_path("config") == "/nginx.conf"
    assert FileRef("nginx.conf", target="etc/n.conf").container_path("config") == "/etc/n.conf"


def test_repr_shows_only_what_was_set() -> None:
    assert (
        repr(Service(name="web", image="nginx", tty=True)) == "Service(name='web', image='nginx', tty=True)"
    )
    assert repr(Stack(name="p")) == "Stack(name='p')"
