"""Planning: desired vs observed → actions with causes, checked as golden text.

Golden files live in ``golden/``; rerun with ``ORC_UPDATE_GOLDEN=1`` to rewrite them after an
intended change, and read the diff.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import NotFoundError, PermanentError, StackError, UsageError
from orchestrator.planner.observed import (
    Dependency,
    Desired,
    DesiredService,
    ObservedContainer,
    ObservedState,
)
from orchestrator.planner.plan import (
    Action,
    DownOptions,
    Plan,
    UpOptions,
    config_changes,
    plan_down,
    plan_remove,
    plan_restart,
    plan_start,
    plan_stop,
    plan_up,
)

GOLDEN = Path(__file__).parent / "golden"
IMAGES = {"postgres:16": "sha256:p1", "app:1": "sha256:a1", "nginx:1": "sha256:n1"}


def check_golden(name: str, plan: Plan) -> None:
    path = GOLDEN / f"{name}.txt"
    text = plan.to_text()
    if os.environ.get("ORC_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def svc(name: str, image: str, config: dict[str, Any] | None = None, **kw: Any) -> DesiredService:
    config = {"image": image, **(config or {})}
    return DesiredService(
        name=name,
        image=image,
        config=config,
        config_hash=f"h-{sorted(config.items())!r}",
        networks=kw.pop("networks", ("demo_default",)),
        **kw,
    )


def three_tier(**changes: Any) -> Desired:
    db = svc("db", "postgres:16", {"environment": {"POSTGRES_PASSWORD": "x"}}, volumes=("demo_data",))
    api = svc(
        "api",
        "app:1",
        {"environment": {"DB": "db"}},
        depends_on=(Dependency("db", "service_healthy"),),
        replicas=changes.pop("api_replicas", 1),
    )
    web = svc("web", "nginx:1", {"ports": ["8080:80"]}, depends_on=(Dependency("api", restart=True),))
    services = {"db": db, "api": api, "web": web}
    for name, service in changes.pop("services", {}).items():
        services[name] = service
    return Desired("demo", tuple(services.values()), networks=("demo_default",), volumes=("demo_data",))


def observed_from(desired: Desired, **overrides: Any) -> ObservedState:
    """The state right after a successful ``up`` of ``desired``."""
    containers = [
        ObservedContainer(
            name=f"demo-{s.name}-{n}",
            service=s.name,
            number=n,
            config_hash=s.config_hash,
            config=s.config,
            status="running",
            image=s.image,
            image_digest=IMAGES[s.image],
        )
        for s in desired.services
        for n in range(1, s.replicas + 1)
    ]
    return ObservedState(
        containers=tuple(overrides.pop("containers", containers)),
        networks=frozenset(desired.networks),
        volumes=frozenset(desired.volumes),
        images=overrides.pop("images", IMAGES),
    )


def replace_container(state: ObservedState, name: str, **changes: Any) -> ObservedState:
    return replace(
        state, containers=tuple(replace(c, **changes) if c.name == name else c for c in state.containers)
    )


def test_first_up_from_nothing() -> None:
    check_golden("up_fresh", plan_up(three_tier(), ObservedState()))


def test_second_up_is_empty() -> None:
    desired = three_tier()
    plan = plan_up(desired, observed_from(desired))
    assert plan.empty
    assert plan.to_text() == "project demo: nothing to do\nunchanged: demo-api-1, demo-db-1, demo-web-1\n"


def test_changed_environment_recreates_with_the_key_and_restarts_dependents() -> None:
    before = three_tier()
    after = three_tier(
        services={
            "api": replace(
                svc("api", "app:1", {"environment": {"DB": "db", "FOO": "1"}}),
                depends_on=(Dependency("db", "service_healthy"),),
            )
        }
    )
    check_golden("up_env_changed", plan_up(after, observed_from(before)))


def test_image_digest_change_recreates() -> None:
    desired = three_tier()
    state = observed_from(desired, images={**IMAGES, "nginx:1": "sha256:n2"})
    plan = plan_up(desired, state)
    assert [a.describe() for a in plan.actions] == [
        "recreate demo-web-1: image digest changed",
        "start demo-web-1: recreated; waits for api started",
    ]


def test_scale_up_and_down() -> None:
    desired = three_tier(api_replicas=3)
    state = observed_from(three_tier())
    check_golden("up_scale_1_to_3", plan_up(desired, state))
    down = plan_up(three_tier(), observed_from(desired))
    assert [a.describe() for a in down.actions] == [
        "remove demo-api-3: scale 3→1",
        "remove demo-api-2: scale 3→1",
    ]
    override = plan_up(desired, observed_from(desired), UpOptions(scale={"api": 2}))
    assert [a.key for a in override.actions] == ["remove demo-api-3"]


def test_stopped_container_is_started_again() -> None:
    desired = three_tier()
    state = replace_container(observed_from(desired), "demo-db-1", status="exited", exit_code=137)
    plan = plan_up(desired, state)
    assert [a.describe() for a in plan.actions] == ["start demo-db-1: exited (137)"]


def test_orphans_warn_or_are_removed() -> None:
    desired = three_tier()
    state = observed_from(desired)
    state = replace(
        state,
        containers=(
            *state.containers,
            ObservedContainer("demo-old-1", "old", 1, "h", "running"),
            ObservedContainer("demo-api-run-1a2b", "api", 1, "h", "running", one_off=True),
        ),
    )
    check_golden("up_orphans_warning", plan_up(desired, state))
    removed = plan_up(desired, state, UpOptions(remove_orphans=True))
    assert [a.describe() for a in removed.actions] == ["remove demo-old-1: orphan"]


def test_force_and_no_recreate() -> None:
    before = three_tier()
    state = observed_from(before)
    forced = plan_up(before, state, UpOptions(force_recreate=True))
    assert sorted(a.key for a in forced.actions if a.kind == "recreate") == [
        "recreate demo-api-1",
        "recreate demo-db-1",
        "recreate demo-web-1",
    ]
    changed = three_tier(services={"web": svc("web", "nginx:1", {"ports": ["9090:80"]})})
    assert plan_up(changed, state, UpOptions(no_recreate=True)).empty
    with pytest.raises(UsageError, match="incompatible"):
        plan_up(before, state, UpOptions(force_recreate=True, no_recreate=True))


def test_selected_services_pull_in_dependencies_unless_no_deps() -> None:
    plan = plan_up(three_tier(), ObservedState(images=IMAGES), UpOptions(services=("api",)))
    assert sorted(a.key for a in plan.actions if a.kind == "create") == [
        "create demo-api-1",
        "create demo-db-1",
    ]
    alone = plan_up(three_tier(), ObservedState(images=IMAGES), UpOptions(services=("api",), no_deps=True))
    assert [a.key for a in alone.actions if a.kind in ("create", "start")] == [
        "create demo-api-1",
        "start demo-api-1",
    ]
    with pytest.raises(UsageError, match="no such service: nope"):
        plan_up(three_tier(), ObservedState(), UpOptions(services=("nope",)))


def test_always_recreate_deps_recreates_only_the_dependencies() -> None:
    desired = three_tier()
    plan = plan_up(desired, observed_from(desired), UpOptions(services=("api",), always_recreate_deps=True))
    assert [a.key for a in plan.actions if a.kind == "recreate"] == ["recreate demo-db-1"]


def test_a_create_needs_its_image_and_volumes_and_its_start_needs_its_networks() -> None:
    """The network is made while the containers are created: only their starts wait for it (an
    existing stopped container's start too)."""
    plan = plan_up(three_tier(), ObservedState(images=IMAGES))
    by_key = {a.key: a for a in plan.actions}
    assert by_key["create demo-db-1"].after == ("create-volume demo_data",)
    assert by_key["create demo-api-1"].after == ()
    assert "create-network demo_default" in by_key["start demo-db-1"].after
    assert "create-network demo_default" in by_key["start demo-api-1"].after

    desired = three_tier()
    stopped = observed_from(desired)
    stopped = replace(
        stopped,
        networks=frozenset(),
        containers=tuple(replace(c, status="exited", exit_code=0) for c in stopped.containers),
    )
    restart = {a.key: a for a in plan_up(desired, stopped).actions}
    assert "create-network demo_default" in restart["start demo-db-1"].after


def test_no_start_creates_only() -> None:
    plan = plan_up(three_tier(), ObservedState(images=IMAGES), UpOptions(no_start=True))
    assert {a.kind for a in plan.actions} == {"create", "create-network", "create-volume"}


def test_pull_policies() -> None:
    desired = three_tier()
    state = observed_from(desired)
    assert sorted(
        a.key for a in plan_up(desired, state, UpOptions(pull="always")).actions if a.kind == "pull"
    ) == [
        "pull app:1",
        "pull nginx:1",
        "pull postgres:16",
    ]
    with pytest.raises(NotFoundError, match="pull policy is never"):
        plan_up(desired, ObservedState(), UpOptions(pull="never"))
    built = three_tier(services={"web": replace(svc("web", "nginx:9", {}), pull_policy="build")})
    with pytest.raises(PermanentError, match="building images is not supported"):
        plan_up(built, ObservedState(images=IMAGES))


def test_container_name_cannot_scale() -> None:
    desired = three_tier(services={"web": replace(svc("web", "nginx:1"), container_name="front")})
    plan = plan_up(desired, ObservedState(images=IMAGES))
    assert "create front" in {a.key for a in plan.actions}
    with pytest.raises(PermanentError, match="cannot be scaled"):
        plan_up(desired, ObservedState(images=IMAGES), UpOptions(scale={"web": 2}))


def test_dependency_cycle_is_reported() -> None:
    a = svc("a", "app:1", depends_on=(Dependency("b"),))
    b = svc("b", "app:1", depends_on=(Dependency("a"),))
    with pytest.raises(StackError, match="dependency cycle between services: a → b → a"):
        plan_up(Desired("demo", (a, b)), ObservedState())


def test_optional_missing_dependency_is_a_gate_not_an_error() -> None:
    a = svc("a", "app:1", depends_on=(Dependency("ghost", required=False),))
    plan = plan_up(Desired("demo", (a,), networks=("demo_default",)), ObservedState(images=IMAGES))
    start = next(x for x in plan.actions if x.kind == "start")
    assert start.describe() == "start demo-a-1: created; waits for ghost started (optional)"


def test_down_stops_dependents_first() -> None:
    desired = three_tier()
    check_golden("down", plan_down("demo", observed_from(desired), desired, DownOptions(volumes=True)))


def test_down_without_files_removes_everything_recorded() -> None:
    desired = three_tier()
    state = replace_container(observed_from(desired), "demo-db-1", status="exited", exit_code=0)
    plan = plan_down("demo", state)
    assert plan.waves()[0][0].kind == "stop"
    assert sorted(a.key for a in plan.actions) == [
        "remove demo-api-1",
        "remove demo-db-1",
        "remove demo-web-1",
        "remove-network demo_default",
        "stop demo-api-1",
        "stop demo-web-1",
    ]


def test_stop_start_restart_and_rm_plans() -> None:
    """The plans the supervisor runs for stop, start, restart and rm (and ``--dry-run`` prints)."""
    desired = three_tier()
    running = observed_from(desired)
    check_golden("stop", plan_stop("demo", running, desired))
    assert [a.key for a in plan_stop("demo", running, desired, ["api"]).actions] == ["stop demo-api-1"]
    web_exited = replace_container(running, "demo-web-1", status="exited", exit_code=0)
    check_golden("start", plan_start(desired, web_exited))  # only the stopped one, nothing created
    assert plan_start(desired, running).empty
    assert plan_start(desired, ObservedState()).empty  # start creates nothing
    check_golden("restart", plan_restart(desired, web_exited, ["web", "api"]))
    assert [a.key for a in plan_remove("demo", web_exited, [], stop_first=False).actions] == [
        "remove demo-web-1"
    ]
    assert [a.key for a in plan_remove("demo", web_exited, ["api"], stop_first=True).actions] == [
        "remove demo-api-1"
    ]
    assert plan_remove("demo", web_exited, ["api"], stop_first=False).empty


def test_plan_rejects_dangling_edges() -> None:
    with pytest.raises(ValueError, match="not in the plan"):
        Plan("demo", (Action("start", "x", "c", after=("create x",)),))


def test_config_changes_names_paths() -> None:
    old = {"environment": {"A": "1", "B": "2"}, "ports": ["80:80"], "image": "x"}
    new = {"environment": {"A": "1", "C": "3"}, "ports": ["80:80", "81:81"], "image": "x"}
    assert config_changes(old, new) == ["environment.B", "environment.C", "ports"]


def test_many_changes_are_summarised() -> None:
    before = svc("s", "app:1", {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})
    after = svc("s", "app:1", {"a": 2, "b": 2, "c": 2, "d": 2, "e": 2})
    state = observed_from(Desired("demo", (before,)))
    plan = plan_up(Desired("demo", (after,)), state)
    assert plan.actions[0].cause == "config changed: a, b, c and 2 more"


def test_null_and_missing_keys_are_the_same() -> None:
    assert config_changes({"command": None, "image": "x"}, {"image": "x"}) == []
    assert config_changes({"command": ["a"]}, {"command": None}) == ["command"]


def test_three_service_cycle_and_generations() -> None:
    from orchestrator.planner.plan import topological_generations

    a = svc("a", "app:1", depends_on=(Dependency("c"),))
    b = svc("b", "app:1", depends_on=(Dependency("a"),))
    c = svc("c", "app:1", depends_on=(Dependency("b"),))
    d = svc("d", "app:1")
    with pytest.raises(StackError, match="dependency cycle between services: a → c → b → a"):
        plan_up(Desired("demo", (d, a, b, c)), ObservedState())
    assert topological_generations("xyzw", {"y": ["x"], "z": ["x", "y"], "w": []}) == [
        ["w", "x"],
        ["y"],
        ["z"],
    ]
    with pytest.raises(ValueError, match="cycle"):
        topological_generations("xy", {"x": ["y"], "y": ["x"]})
