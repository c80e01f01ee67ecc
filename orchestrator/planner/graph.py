"""PURE. The service dependency graph of a Stack: start waves, stop waves, dependents, subsets.

A service depends on another through ``depends_on``, ``links`` (``db`` or ``db:alias``),
``network_mode``/``ipc``/``pid``/``uts``/``cgroup: service:X`` and ``volumes_from: X`` (not
``container:X``). Implicit edges get what Compose gives them: condition ``service_started``,
required, ``restart: true`` (``volumes_from``: ``restart: false``); an explicit ``depends_on``
entry for the same pair wins.

Building the graph checks it the way Docker Compose does at load time:

* a required dependency on a service that is not in the Stack is an error naming who needs it
  (``service "web" depends on undefined service "db"``) with the dotted path of the reference;
  a ``required: false`` dependency that is absent (disabled by a profile) is dropped;
* a cycle is an error naming the whole cycle, ``dependency cycle detected: a → b → c → a``. The
  search visits services and their dependencies in name order, as compose-go does, so the same
  file always reports the same cycle.

Both raise ``StackError``. Building and checking use plain dicts; the queries (waves, dependents,
subsets) use networkx, imported on first query so that ``orc config`` does not pay for it. Built
by the loader (to reject bad files in ``orc config``) and by the
reconciler/planner to order work; ``DependencyGraph`` is immutable once built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from orchestrator.errors import NotFoundError, Problem, StackError
from orchestrator.model import Dependency, Service, Stack

_NAMESPACE_KEYS = ("network_mode", "ipc", "pid", "uts", "cgroup")


def _networkx() -> ModuleType:
    # Imported on first query only: it costs ~0.1 s, and ``orc config`` only builds and checks.
    import networkx

    return networkx


@dataclass(frozen=True, slots=True)
class Edge:
    """``dependent`` needs ``dependency``. ``sources`` lists the keys that made the edge, in the
    order found (``("depends_on", "network_mode")``); ``path`` is where the first one is."""

    dependent: str
    dependency: str
    condition: str
    required: bool
    restart: bool
    sources: tuple[str, ...]
    path: str

    @property
    def spec(self) -> Dependency:
        return Dependency(condition=self.condition, required=self.required, restart=self.restart)  # type: ignore[arg-type]


def service_references(service: Service) -> list[tuple[str, str, str, Dependency]]:
    """Every (dependency, source key, dotted path, Dependency) a service declares, explicit
    ``depends_on`` entries first, then implicit ones in Compose's order."""
    base = f"services.{service.name}"
    found: list[tuple[str, str, str, Dependency]] = [
        (name, "depends_on", f"{base}.depends_on.{name}", dep) for name, dep in service.depends_on.items()
    ]
    implicit = Dependency(condition="service_started", required=True, restart=True)
    for i, link in enumerate(service.links):
        found.append((link.service, "links", f"{base}.links[{i}]", implicit))
    for key in _NAMESPACE_KEYS:
        value = getattr(service, key)
        if value and value.startswith("service:"):
            found.append((value[len("service:") :], key, f"{base}.{key}", implicit))
    for i, source in enumerate(service.volumes_from):
        if source.kind == "service":
            found.append(
                (
                    source.source,
                    "volumes_from",
                    f"{base}.volumes_from[{i}]",
                    Dependency(condition="service_started", required=True, restart=False),
                )
            )
    return found


class DependencyGraph:
    """Services as nodes; an edge ``a → b`` when ``a`` depends on ``b``.

    Building and checking use plain dicts, so ``orc config`` does not pay for importing
    networkx; the queries build a networkx digraph on first use."""

    __slots__ = ("_edges", "_nx")

    def __init__(self, edges: Mapping[str, Mapping[str, Edge]]) -> None:
        # dependent → dependency → Edge; every service is a key, even without dependencies.
        self._edges = {name: dict(deps) for name, deps in edges.items()}
        self._nx: Any = None

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_stack(cls, stack: Stack) -> DependencyGraph:
        return cls.from_services(stack.services)

    @classmethod
    def from_services(cls, services: Mapping[str, Service]) -> DependencyGraph:
        """The graph of ``services``; StackError for missing required dependencies or a cycle."""
        edges: dict[str, dict[str, Edge]] = {name: {} for name in sorted(services)}
        problems: list[Problem] = []
        for name in sorted(services):
            for dependency, source, path, spec in service_references(services[name]):
                if dependency not in services:
                    if spec.required:
                        problems.append(
                            Problem(
                                f'service "{name}" depends on undefined service "{dependency}"', path=path
                            )
                        )
                    continue
                known = edges[name].get(dependency)
                if known is not None:
                    if source not in known.sources:
                        edges[name][dependency] = replace(known, sources=(*known.sources, source))
                    continue
                edges[name][dependency] = Edge(
                    dependent=name,
                    dependency=dependency,
                    condition=spec.condition,
                    required=spec.required,
                    restart=spec.restart,
                    sources=(source,),
                    path=path,
                )
        if problems:
            raise StackError(problems)
        cycle = _first_cycle({name: sorted(deps) for name, deps in edges.items()})
        if cycle is not None:
            where = edges[cycle[0]][cycle[1]].path
            raise StackError(Problem("dependency cycle detected: " + " → ".join(cycle), path=where))
        return cls(edges)

    @property
    def _graph(self) -> Any:
        """The same graph as a networkx DiGraph (edges dependent → dependency), built once."""
        if self._nx is None:
            graph = _networkx().DiGraph()
            graph.add_nodes_from(self._edges)
            graph.add_edges_from((a, b) for a, deps in self._edges.items() for b in deps)
            self._nx = graph
        return self._nx

    # --- queries ----------------------------------------------------------------------------------

    @property
    def services(self) -> list[str]:
        return sorted(self._edges)

    def __contains__(self, service: object) -> bool:
        return service in self._edges

    def __len__(self) -> int:
        return len(self._edges)

    def edges(self) -> list[Edge]:
        """Every edge, sorted by (dependent, dependency)."""
        return [self._edges[a][b] for a in sorted(self._edges) for b in sorted(self._edges[a])]

    def edge(self, dependent: str, dependency: str) -> Edge:
        self._require(dependent)
        self._require(dependency)
        found = self._edges[dependent].get(dependency)
        if found is None:
            raise NotFoundError(f'service "{dependent}" does not depend on "{dependency}"')
        return found

    def dependencies(self, service: str, *, transitive: bool = False) -> list[str]:
        """What ``service`` needs, directly or (``transitive``) all the way down; sorted."""
        self._require(service)
        if transitive:
            return sorted(_networkx().descendants(self._graph, service))
        return sorted(self._edges[service])

    def dependents(self, service: str, *, transitive: bool = False) -> list[str]:
        """Who needs ``service``, directly or (``transitive``) all the way up; sorted."""
        self._require(service)
        if transitive:
            return sorted(_networkx().ancestors(self._graph, service))
        return sorted(self._graph.predecessors(service))

    def restart_dependents(self, service: str) -> list[str]:
        """The services to restart after ``service`` restarts: dependents over ``restart: true``
        edges, followed transitively (a restarted dependent restarts its own such dependents)."""
        self._require(service)
        seen: set[str] = set()
        todo = [service]
        while todo:
            current = todo.pop()
            for dependent in self._graph.predecessors(current):
                if self._edges[dependent][current].restart and dependent not in seen:
                    seen.add(dependent)
                    todo.append(dependent)
        seen.discard(service)
        return sorted(seen)

    def start_waves(self) -> list[list[str]]:
        """Services in waves: each wave's dependencies are all in earlier waves, and each service
        is in the earliest wave it can be (independent services start together). Sorted inside."""
        return [sorted(wave) for wave in _networkx().topological_generations(self._graph.reverse(copy=False))]

    def stop_waves(self) -> list[list[str]]:
        """Waves for stopping: every service stops in an earlier wave than what it depends on, each
        as early as possible (Compose stops from the services nothing depends on down)."""
        return [sorted(wave) for wave in _networkx().topological_generations(self._graph)]

    def start_order(self) -> list[str]:
        return [service for wave in self.start_waves() for service in wave]

    def stop_order(self) -> list[str]:
        return [service for wave in self.stop_waves() for service in wave]

    def subgraph(self, services: Iterable[str], *, with_dependencies: bool = True) -> DependencyGraph:
        """The graph restricted to ``services`` plus (``with_dependencies``, as ``up web`` does)
        everything they depend on transitively; without them (``--no-deps``) only the named ones
        and the edges among them. NotFoundError for an unknown name."""
        chosen: set[str] = set()
        for service in services:
            self._require(service)
            chosen.add(service)
            if with_dependencies:
                chosen.update(_networkx().descendants(self._graph, service))
        return DependencyGraph(
            {
                name: {dep: edge for dep, edge in self._edges[name].items() if dep in chosen}
                for name in sorted(chosen)
            }
        )

    def _require(self, service: str) -> None:
        if service not in self._edges:
            known = ", ".join(self.services) or "none"
            raise NotFoundError(f'no such service: "{service}" (services: {known})')


def _first_cycle(successors: Mapping[str, list[str]]) -> list[str] | None:
    """The cycle compose-go's CheckCycle reports: a depth-first search from each service in name
    order, visiting dependencies in name order (``successors`` lists are sorted), stopping at the
    first service already on the path. Returns the cycle with its first service repeated at the
    end, or None."""
    cycle_free: set[str] = set()  # fully explored without meeting a cycle: skip next time
    for start in sorted(successors):
        if start in cycle_free:
            continue
        path = [start]
        on_path = {start}
        pending = [iter(successors[start])]
        while pending:
            child = next(pending[-1], None)
            if child is None:
                done = path.pop()
                on_path.discard(done)
                cycle_free.add(done)
                pending.pop()
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in cycle_free:
                path.append(child)
                on_path.add(child)
                pending.append(iter(successors[child]))
    return None
