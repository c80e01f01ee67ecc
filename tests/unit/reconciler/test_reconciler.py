"""The reconcile loop on the recording fake runtime and virtual time."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import anyio
import pytest

from orchestrator.errors import PermanentError, TemporaryError, UsageError
from orchestrator.planner.observed import Dependency, Desired
from orchestrator.planner.plan import DownOptions, UpOptions
from orchestrator.planner.restart import RestartPolicy
from orchestrator.reconciler.fake import ProcessScript
from orchestrator.reconciler.health import HealthCheck
from orchestrator.reconciler.project import ProjectSpec, ServiceBehaviour

from .harness import World, run_world, service, three_tier


def test_up_starts_in_dependency_order_and_waits_for_health() -> None:
    async def body(w: World) -> None:
        report = await w.reconciler.up(three_tier())
        assert report.ok, report

    w = run_world(body, images={})
    calls = w.runtime.calls
    assert sorted(calls[:3]) == ["pull app:1", "pull nginx:1", "pull postgres:16"]
    assert calls.index("start demo-db-1") < calls.index("start demo-api-1") < calls.index("start demo-web-1")
    # api waited for db's first successful probe, one interval (1 s) after db started.
    assert w.at("start demo-api-1")[0] - w.at("start demo-db-1")[0] == 1.0
    assert "health_status: healthy demo-db-1" in w.events()
    records = {r.name: r for r in w.store.list_containers("demo")}
    assert {n: r.status for n, r in records.items()} == {
        "demo-api-1": "running",
        "demo-db-1": "running",
        "demo-web-1": "running",
    }
    assert records["demo-db-1"].health == "healthy"
    assert records["demo-web-1"].pid is not None and records["demo-web-1"].image_digest == "sha256:n1"
    assert [n.name for n in w.store.load_project("demo").networks] == ["demo_default"]  # type: ignore[union-attr]


def test_second_up_does_nothing() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        before = len(w.runtime.calls)
        report = await w.reconciler.up(three_tier())
        assert report.ok and report.done == []
        assert len(w.runtime.calls) == before

    run_world(body)


def test_config_change_recreates_and_restarts_dependent() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.calls.clear()
        report = await w.reconciler.up(three_tier(api_env="db2"))
        assert report.ok

    w = run_world(body)
    assert w.runtime.calls == [
        "stop demo-api-1 SIGTERM 10",
        "remove demo-api-1",
        "create demo-api-1",
        "start demo-api-1",
        "stop demo-web-1 SIGTERM 10",
        "start demo-web-1",
    ]


def test_crash_loop_restarts_with_docker_backoff() -> None:
    scripts = {"web": ProcessScript(runs=[(0.5, 1)] * 4, forever=True)}

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(web_restart="always"))
        await w.clock.sleep(30)

    w = run_world(body, scripts=scripts)
    starts = w.at("start demo-web-1")
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    # each run lasts 0.5 s, then the backoff: 0.1, 0.2, 0.4, 0.8
    assert gaps == [0.6, 0.7, 0.9, 1.3]
    record = w.store.load_container("demo", "demo-web-1")
    assert record is not None and record.restart_count == 4 and record.status == "running"
    assert w.events("restart").count("restart demo-web-1") == 4


def test_on_failure_gives_up_after_max_attempts() -> None:
    scripts = {"web": ProcessScript(runs=[(0.2, 3)], forever=False)}

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(web_restart="on-failure:2"))
        await w.clock.sleep(30)

    w = run_world(body, scripts=scripts)
    assert len(w.at("start demo-web-1")) == 3
    record = w.store.load_container("demo", "demo-web-1")
    assert record is not None and (record.status, record.exit_code, record.restart_count) == ("exited", 3, 2)


def test_unhealthy_dependency_fails_the_branch_and_skips_dependents() -> None:
    scripts = {"db": ProcessScript(health_default=1)}

    async def body(w: World) -> None:
        report = await w.reconciler.up(three_tier())
        assert report.failed == {
            "start demo-api-1": "dependency failed to start: container demo-db-1 is unhealthy"
        }
        assert report.skipped == {"start demo-web-1": "start demo-api-1 did not succeed"}

    w = run_world(body, scripts=scripts)
    assert "start demo-api-1" not in w.runtime.calls
    assert w.at("start demo-db-1") == [0.0]
    # three failed probes, one interval apart, make it unhealthy
    assert "health_status: unhealthy demo-db-1" in w.events()


def test_a_created_containers_start_is_prepared_once_its_dependencies_start() -> None:
    """A container created to be started by the same plan has its start prepared once it is
    created and its dependencies' starts are under way, before they are up (api before db is
    healthy); a start that never comes (db turned unhealthy) has its preparation undone when the
    plan ends, and one whose dependency will not start (web, after api) is not prepared."""
    scripts = {"db": ProcessScript(health_default=1)}
    prepared_at: dict[str, float] = {}

    async def body(w: World) -> None:
        prepare = w.runtime.prepare
        origin = w.clock.now()

        def timed(record: Any) -> None:
            prepared_at[record.name] = w.clock.now() - origin
            prepare(record)

        w.runtime.prepare = timed  # type: ignore[method-assign]
        report = await w.reconciler.up(three_tier())
        assert not report.ok
        assert w.runtime.preparing == set()

    w = run_world(body, scripts=scripts)
    assert sorted(w.runtime.prepared) == ["demo-api-1", "demo-db-1"]
    # at db's start, not after its health checks (three failed probes, one second apart)
    assert prepared_at["demo-api-1"] == w.at("start demo-db-1")[0] < 1.0
    assert w.runtime.undone_preparations == ["demo-api-1"]


def test_creates_go_on_while_the_network_is_made_and_starts_wait_for_it() -> None:
    """A container's create does not wait for its network; its start, and the preparation of
    that start ahead of it, wait until the network is made (not merely begun)."""
    prepared_at: dict[str, float] = {}

    async def body(w: World) -> None:
        w.runtime.delays["create-network"] = 1.0
        prepare = w.runtime.prepare
        origin = w.clock.now()

        def timed(record: Any) -> None:
            prepared_at[record.name] = w.clock.now() - origin
            assert "demo_default" in w.runtime.networks
            prepare(record)

        w.runtime.prepare = timed  # type: ignore[method-assign]
        report = await w.reconciler.up(three_tier())
        assert report.ok, report

    w = run_world(body)
    assert w.at("create-network demo_default") == [0.0]
    assert w.at("create demo-") == [0.0, 0.0, 0.0]
    assert w.at("start demo-db-1")[0] >= 1.0
    assert prepared_at and min(prepared_at.values()) >= 1.0


def test_only_starts_that_follow_a_create_in_the_plan_are_prepared() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(), UpOptions(no_start=True))  # created, not started
        assert w.runtime.prepared == []
        await w.reconciler.up(three_tier())  # starts of containers created before
        assert w.runtime.prepared == []
        await w.reconciler.up(three_tier(api_env="db2"))  # a recreate and its start
        assert w.runtime.prepared == ["demo-api-1"]
        assert w.runtime.undone_preparations == []

    run_world(body)


def test_optional_failing_dependency_starts_anyway_with_a_warning() -> None:
    scripts = {"db": ProcessScript(health_default=1)}
    spec = three_tier()
    api = replace(spec.desired.services[1], depends_on=(Dependency("db", "service_healthy", required=False),))
    spec = replace(
        spec,
        desired=replace(spec.desired, services=(spec.desired.services[0], api, spec.desired.services[2])),
    )

    async def body(w: World) -> None:
        report = await w.reconciler.up(spec)
        assert report.ok
        assert report.warnings == [
            "demo-api-1: optional dependency failed to start: container demo-db-1 is unhealthy; starting anyway"
        ]

    run_world(body, scripts=scripts)


def test_completed_successfully_gate_and_job_not_rerun() -> None:
    migrate = service("migrate", "busybox:1")
    app = service("app", "app:1", depends_on=(Dependency("migrate", "service_completed_successfully"),))
    spec = ProjectSpec(Desired("demo", (migrate, app), networks=("demo_default",)))
    scripts = {"migrate": ProcessScript(runs=[(2.0, 0)], forever=False)}

    async def body(w: World) -> None:
        report = await w.reconciler.up(spec)
        assert report.ok

    w = run_world(body, scripts=scripts)
    assert w.at("start demo-migrate-1") == [0.0]
    assert w.at("start demo-app-1") == [2.0]


def test_failed_job_blocks_its_dependent() -> None:
    migrate = service("migrate", "busybox:1")
    app = service("app", "app:1", depends_on=(Dependency("migrate", "service_completed_successfully"),))
    spec = ProjectSpec(Desired("demo", (migrate, app), networks=("demo_default",)))

    async def body(w: World) -> None:
        report = await w.reconciler.up(spec)
        assert report.failed == {"start demo-app-1": "service migrate didn't complete successfully: exit 2"}

    run_world(body, scripts={"migrate": ProcessScript(runs=[(1.0, 2)], forever=False)})


def test_temporary_errors_are_retried_permanent_ones_stop_the_branch() -> None:
    async def body(w: World) -> None:
        w.runtime.fail["start demo-db-1"] = [TemporaryError("cgroup busy", retry_after=0.5)] * 2
        w.runtime.fail["create demo-web-1"] = [PermanentError("port 8080 is already in use")]
        report = await w.reconciler.up(three_tier())
        assert report.failed == {"create demo-web-1": "port 8080 is already in use"}
        assert report.skipped == {"start demo-web-1": "create demo-web-1 did not succeed"}
        assert "start demo-api-1" in report.done

    w = run_world(body)
    assert w.at("start demo-db-1") == [0.0, 0.5, 1.0]
    assert w.events("retry") == ["retry demo-db-1", "retry demo-db-1"]


def test_concurrency_is_bounded() -> None:
    services = tuple(service(f"s{i}", "busybox:1") for i in range(10))
    spec = ProjectSpec(Desired("demo", services, networks=("demo_default",)))

    async def body(w: World) -> None:
        w.runtime.delays["create"] = 1.0
        assert (await w.reconciler.up(spec)).ok

    w = run_world(body, concurrency=3)
    assert w.runtime.max_active == 3
    assert max(w.at("create")) == 3.0  # 10 creates, 3 at a time: 4 rounds of 1 s


def test_down_stops_dependents_first_and_leaves_nothing() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(web_restart="always"))
        w.runtime.calls.clear()
        report = await w.reconciler.down("demo", three_tier(web_restart="always"), DownOptions(volumes=True))
        assert report.ok, report

    w = run_world(body)
    calls = w.runtime.calls
    assert calls.index("stop demo-web-1 SIGTERM 10") < calls.index("stop demo-api-1 SIGTERM 10")
    assert calls.index("stop demo-api-1 SIGTERM 10") < calls.index("stop demo-db-1 SIGTERM 10")
    assert calls[-2:] == ["remove-network demo_default", "remove-volume demo_data"] or calls[-2:] == [
        "remove-volume demo_data",
        "remove-network demo_default",
    ]
    assert "start demo-web-1" not in calls  # stopping is not a crash: no restart
    assert w.store.list_containers("demo") == [] and w.store.list_projects() == []
    assert w.runtime.containers == {} and w.runtime.networks == set() and w.runtime.volumes == set()


def test_down_stops_a_dependency_once_its_dependents_have_exited_not_once_their_exits_are_recorded() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        # The watchers hear of each exit a second after the stop that caused it saw it.
        w.runtime.delays = {"wait": 1.0}
        report = await w.reconciler.down("demo", three_tier(), DownOptions())
        assert report.ok, report

    w = run_world(body)
    stops = [w.at(f"stop demo-{name}-1")[0] for name in ("web", "api", "db")]
    assert stops[0] == stops[1] == stops[2]  # no second waited per dependency level
    calls = w.runtime.calls
    assert calls.index("stop demo-web-1 SIGTERM 10") < calls.index("stop demo-api-1 SIGTERM 10")
    assert calls.index("stop demo-api-1 SIGTERM 10") < calls.index("stop demo-db-1 SIGTERM 10")
    # Each container's exit is still recorded (and announced) before it is removed.
    events = w.events()
    for name in ("demo-web-1", "demo-api-1", "demo-db-1"):
        assert events.index(f"stop {name}") < events.index(f"destroy {name}")
        assert events.index(f"die {name}") < events.index(f"destroy {name}")


def test_down_does_not_stop_a_dependency_whose_dependent_failed_to_stop() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.fail["stop demo-web-1 SIGTERM 10"] = [PermanentError("cannot signal")]
        report = await w.reconciler.down("demo", three_tier(), DownOptions())
        assert report.failed == {"stop demo-web-1": "cannot signal"}
        assert report.skipped["stop demo-api-1"] == "stop demo-web-1 did not succeed"
        assert report.skipped["stop demo-db-1"] == "stop demo-api-1 did not succeed"

    w = run_world(body)
    assert not any(call.startswith(("stop demo-api-1", "stop demo-db-1")) for call in w.runtime.calls)


def test_a_failed_network_teardown_fails_its_remove_once() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.teardown_failures = {"demo-web-1": "veth still there"}
        report = await w.reconciler.down("demo", three_tier(), DownOptions())
        assert report.failed == {"remove demo-web-1": "network teardown: veth still there"}
        assert "remove demo-web-1" not in report.done and "remove demo-api-1" in report.done
        with pytest.raises(PermanentError, match="remove demo-web-1: network teardown: veth still there"):
            report.raise_for_failures()
        again = await w.reconciler.down("demo", three_tier(), DownOptions())
        assert again.ok, again  # reported once

    run_world(body)


def test_stop_grace_period_then_kill() -> None:
    spec = three_tier()
    behaviours = dict(spec.behaviours)
    behaviours["web"] = ServiceBehaviour(stop_signal="SIGQUIT", stop_grace_period=3.0)
    spec = replace(spec, behaviours=behaviours)

    async def body(w: World) -> None:
        await w.reconciler.up(spec)
        start = w.clock.now()
        await w.reconciler.down("demo", spec)
        assert w.clock.now() - start >= 3.0

    w = run_world(body, scripts={"web": ProcessScript(ignores_term=True)})
    assert "stop demo-web-1 SIGQUIT 3" in w.runtime.calls


def test_exited_container_is_started_again_by_up() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.crash("demo-web-1", 7)
        await w.clock.sleep(1)
        assert w.store.load_container("demo", "demo-web-1").exit_code == 7  # type: ignore[union-attr]
        w.runtime.calls.clear()
        assert (await w.reconciler.up(three_tier())).ok
        assert w.runtime.calls == ["start demo-web-1"]

    run_world(body)


def test_force_recreate_happens_once() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.calls.clear()
        assert (await w.reconciler.up(three_tier(), UpOptions(force_recreate=True))).ok
        assert sorted(c for c in w.runtime.calls if c.startswith("create")) == [
            "create demo-api-1",
            "create demo-db-1",
            "create demo-web-1",
        ]

    run_world(body)


def test_health_check_in_start_period_does_not_count_failures() -> None:
    spec = three_tier()
    behaviours = dict(spec.behaviours)
    behaviours["db"] = ServiceBehaviour(
        healthcheck=HealthCheck(
            ("CMD", "x"), interval=10.0, timeout=1.0, retries=1, start_period=5.0, start_interval=1.0
        )
    )
    spec = replace(spec, behaviours=behaviours)
    # fails 3 times during the start period, then succeeds
    scripts = {"db": ProcessScript(health={1: 1, 2: 1, 3: 1})}

    async def body(w: World) -> None:
        assert (await w.reconciler.up(spec)).ok

    w = run_world(body, scripts=scripts)
    assert w.at("start demo-api-1") == [4.0]
    assert "health_status: unhealthy demo-db-1" not in w.events()


def test_restart_policy_from_deploy() -> None:
    spec = three_tier()
    behaviours = dict(spec.behaviours)
    behaviours["web"] = ServiceBehaviour(
        restart=RestartPolicy.from_compose(None, {"condition": "on-failure", "delay": 2.0, "max_attempts": 1})
    )
    spec = replace(spec, behaviours=behaviours)

    async def body(w: World) -> None:
        await w.reconciler.up(spec)
        await w.clock.sleep(20)

    w = run_world(body, scripts={"web": ProcessScript(runs=[(1.0, 1)], forever=False)})
    starts = w.at("start demo-web-1")
    assert len(starts) == 2 and round(starts[1] - starts[0], 3) == 3.0


def test_run_one_off_starts_dependencies_and_waits_for_exit() -> None:
    spec = three_tier()
    scripts = {"api": ProcessScript(runs=[(2.0, 3)], forever=True)}

    async def body(w: World) -> None:
        record = await w.reconciler.run_one_off(
            spec, "api", "abc123", command=["migrate"], environment={"X": "1"}
        )
        assert (record.name, record.one_off, record.exit_code, record.status) == (
            "demo-api-run-abc123",
            True,
            3,
            "exited",
        )
        assert record.restart_count == 0  # one-off containers have no restart policy
        names = {r.name for r in w.store.list_containers("demo")}
        assert names == {"demo-db-1", "demo-api-run-abc123"}  # the dependency, not api's own replica
        # a later `up` does not treat the one-off as an orphan or a replica of api
        report = await w.reconciler.up(spec)
        assert report.ok and not report.warnings
        await w.reconciler.remove_container(record.name)

    w = run_world(body, scripts=scripts)
    assert w.at("start demo-db-1") == [0.0]
    assert w.at("start demo-api-run-abc123") == [1.0]  # after db became healthy


def test_image_healthcheck_applies_with_service_timings_unless_disabled() -> None:
    base = three_tier()
    behaviours = dict(base.behaviours)
    behaviours["db"] = ServiceBehaviour(healthcheck_timings={"interval": 2.0})
    spec = replace(base, behaviours=behaviours)

    async def body(w: World) -> None:
        w.runtime.image_healthchecks["postgres:16"] = {"test": ["CMD-SHELL", "pg_isready"], "interval": 5.0}
        assert (await w.reconciler.up(spec)).ok

    w = run_world(body)
    assert w.at("start demo-api-1") == [2.0]  # the image's check, at the service's interval

    behaviours["db"] = ServiceBehaviour(healthcheck_disabled=True)
    disabled = replace(base, behaviours=behaviours)

    async def body_disabled(w: World) -> None:
        w.runtime.image_healthchecks["postgres:16"] = {"test": ["CMD-SHELL", "pg_isready"]}
        report = await w.reconciler.up(disabled)
        assert report.failed == {
            "start demo-api-1": "dependency db: container demo-db-1 has no healthcheck configured"
        }

    run_world(body_disabled)


def test_stop_arriving_while_the_restart_policy_starts_the_container_again_stops_it() -> None:
    """A stop that lands while the watcher is inside ``start`` (restart after a crash) must not
    wait for a process nobody will stop: the watcher stops what it just started."""
    scripts = {"web": ProcessScript(runs=[(0.5, 1)], forever=True)}

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(web_restart="always"))
        w.runtime.delays["start"] = 0.2
        while w.runtime.calls.count("start demo-web-1") < 2:  # the restart is under way
            await w.clock.sleep(0.01)
        with anyio.fail_after(30):  # virtual seconds
            report = await w.reconciler.stop_services("demo", three_tier(web_restart="always"), ["web"])
        assert report.ok, report

    w = run_world(body, scripts=scripts)
    record = w.store.load_container("demo", "demo-web-1")
    assert record is not None and record.status == "exited"
    assert w.runtime.containers["demo-web-1"].process is not None
    assert w.runtime.containers["demo-web-1"].process.status is not None  # nothing left running
    assert w.runtime.calls.count("start demo-web-1") == 2


def test_stop_during_the_restart_backoff_ends_at_once() -> None:
    """Like Docker, stopping a container that waits out its restart delay cancels the restart
    instead of waiting for the delay to pass."""
    scripts = {"web": ProcessScript(runs=[(0.5, 1)] * 8, forever=True)}

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier(web_restart="always"))
        while w.runtime.calls.count("start demo-web-1") < 6:
            await w.clock.sleep(0.01)
        while w.store.load_container("demo", "demo-web-1").status != "restarting":  # type: ignore[union-attr]
            await w.clock.sleep(0.01)
        before = w.clock.now()
        report = await w.reconciler.stop_services("demo", three_tier(web_restart="always"), ["web"])
        assert report.ok, report
        assert w.clock.now() - before < 0.1  # the backoff now is 3.2 s
        await w.clock.sleep(10)

    w = run_world(body, scripts=scripts)
    assert w.runtime.calls.count("start demo-web-1") == 6
    record = w.store.load_container("demo", "demo-web-1")
    assert record is not None and record.status == "exited"


def test_stops_do_not_queue_behind_slow_removes_for_a_concurrency_slot() -> None:
    """``down`` stops dependents first; a stop only signals and waits, so it takes no slot of
    the concurrency bound, which removes (kernel work) of the earlier wave may all hold."""

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        w.runtime.delays["remove"] = 1.0
        report = await w.reconciler.down("demo", three_tier())
        assert report.ok, report

    w = run_world(body, concurrency=1)
    stops = [w.at(f"stop demo-{name}-1")[0] for name in ("web", "api", "db")]
    assert stops[-1] - stops[0] < 0.5, stops


def test_parallelism_bounds_one_request_then_restores_the_default() -> None:
    """``--parallel N`` (and -1: no bound) for one request; the default bound after it."""
    services = tuple(service(f"s{i}", "busybox:1") for i in range(10))
    spec = ProjectSpec(Desired("demo", services, networks=("demo_default",)))

    async def body(w: World) -> None:
        w.runtime.delays["create"] = 1.0
        with w.reconciler.parallelism(1):
            assert (await w.reconciler.up(spec)).ok
        assert w.runtime.max_active == 1
        await w.reconciler.down("demo", spec)
        w.runtime.max_active = 0
        with w.reconciler.parallelism(-1):
            assert (await w.reconciler.up(spec)).ok
        assert w.runtime.max_active == 10
        await w.reconciler.down("demo", spec)
        w.runtime.max_active = 0
        assert (await w.reconciler.up(spec)).ok
        assert w.runtime.max_active == 3
        with pytest.raises(UsageError, match="parallel"), w.reconciler.parallelism(0):
            pass

    run_world(body, concurrency=3)


def test_a_recreate_hands_the_anonymous_volumes_on_unless_renewed() -> None:
    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        await w.reconciler.up(three_tier(api_env="changed"))  # recreates api
        assert w.runtime.kept_anonymous_volumes == ["demo-api-1"]
        await w.reconciler.up(three_tier(api_env="again"), UpOptions(renew_anon_volumes=True))
        assert w.runtime.kept_anonymous_volumes == ["demo-api-1"]  # -V: not this time
        await w.reconciler.down("demo", three_tier(api_env="again"))
        assert w.runtime.kept_anonymous_volumes == ["demo-api-1"]  # down never keeps them

    run_world(body)


def test_a_stop_that_does_not_end_the_container_is_sent_again() -> None:
    """A safety net under every stop: if the container is still being watched a while after
    the stop (its signal lost, or a process started after it), the stop is sent again instead
    of `stop`/`down` waiting for ever."""

    async def body(w: World) -> None:
        await w.reconciler.up(three_tier())
        real_stop = w.runtime.stop
        lost: list[str] = []

        async def losing_the_first(record: Any, signal: str, timeout: float) -> None:
            if not lost:
                lost.append(record.name)
                return  # as if the signal never arrived
            await real_stop(record, signal, timeout)

        w.runtime.stop = losing_the_first  # type: ignore[method-assign]
        with anyio.fail_after(5):  # real seconds: the stop must finish
            report = await w.reconciler.stop_services("demo", three_tier(), ["web"])
        assert report.ok, report
        assert lost == ["demo-web-1"]

    w = run_world(body)
    record = w.store.load_container("demo", "demo-web-1")
    assert record is not None and record.status == "exited"
    assert w.events("kill").count("kill demo-web-1") == 2
