"""PURE. Desired project + observed snapshot → a Plan: a DAG of actions, each with its cause.

Owned here: :class:`Action`, :class:`Gate`, :class:`Plan` (with its waves and its golden text
form, which ``orc plan`` and ``orc up --dry-run`` print), :func:`plan_up` and :func:`plan_down`.
The reconciler calls them on every pass of its loop and hands the plan to its executor; the
executor carries no policy, so every decision (recreate or not, in which order, waiting for what)
is made here and can be read in the plan.

Decisions, as Docker Compose v2 makes them:

* A container is recreated when the service's config hash differs from the one it was created
  from (cause names the changed keys, ``config changed: environment.FOO``), when the local image
  behind its reference has a new digest, or on ``--force-recreate``; ``--no-recreate`` keeps it.
* Replicas are numbered from 1; scaling up creates the missing numbers, scaling down removes the
  highest numbers first. Stopped containers that are up to date are started again.
* A dependent with ``depends_on.<dep>.restart: true`` is restarted after its dependency is recreated.
* Containers of services no longer in the files are orphans: removed with ``--remove-orphans``,
  otherwise reported as a warning.
* ``down`` stops dependents before their dependencies, removes every container, then the
  networks orc created and, with ``--volumes``, the named volumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.errors import NotFoundError, PermanentError, StackError, UsageError
from orchestrator.planner.observed import Desired, DesiredService, ObservedContainer, ObservedState

ACTION_KINDS = (
    "pull",
    "create-network",
    "create-volume",
    "create",
    "recreate",
    "start",
    "restart",
    "stop",
    "remove",
    "remove-network",
    "remove-volume",
)
MAX_NAMED_CHANGES = 3


@dataclass(frozen=True)
class Gate:
    """Before a start, wait until ``service`` meets ``condition``; if it never does and the
    dependency is not ``required``, start anyway with a warning."""

    service: str
    condition: str
    required: bool = True

    def __str__(self) -> str:
        word = {
            "service_started": "started",
            "service_healthy": "healthy",
            "service_completed_successfully": "completed successfully",
        }[self.condition]
        return f"{self.service} {word}" + ("" if self.required else " (optional)")


@dataclass(frozen=True)
class Action:
    """One step. ``target`` is a container, network, volume or image name; ``after`` holds the
    keys of actions that must finish first; ``gates`` are runtime conditions checked before it."""

    kind: str
    target: str
    cause: str
    service: str | None = None
    number: int | None = None
    after: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}")

    @property
    def key(self) -> str:
        return f"{self.kind} {self.target}"

    def describe(self) -> str:
        text = f"{self.key}: {self.cause}"
        if self.gates:
            text += "; waits for " + ", ".join(str(g) for g in self.gates)
        return text


@dataclass(frozen=True)
class Plan:
    """A DAG of actions (``after`` edges), the containers left as they are, and warnings."""

    project: str
    actions: tuple[Action, ...]
    unchanged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = [a.key for a in self.actions]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate actions in plan: {sorted(k for k in keys if keys.count(k) > 1)}")
        known = set(keys)
        for action in self.actions:
            missing = [k for k in action.after if k not in known]
            if missing:
                raise ValueError(f"{action.key} waits for actions not in the plan: {missing}")

    @property
    def empty(self) -> bool:
        return not self.actions

    def waves(self) -> list[list[Action]]:
        """Actions grouped so each wave depends only on earlier ones; each wave in key order."""
        by_key = {a.key: a for a in self.actions}
        generations = topological_generations(by_key, {a.key: a.after for a in self.actions})
        return [sorted((by_key[k] for k in generation), key=_action_order) for generation in generations]

    def to_text(self) -> str:
        """The plan as stable text (golden-tested; printed by ``orc plan`` and ``up --dry-run``)."""
        lines: list[str] = []
        if self.empty:
            lines.append(f"project {self.project}: nothing to do")
        else:
            waves = self.waves()
            lines.append(
                f"project {self.project}: {len(self.actions)} action{'s' * (len(self.actions) != 1)}"
                f" in {len(waves)} wave{'s' * (len(waves) != 1)}"
            )
            for index, wave in enumerate(waves, start=1):
                lines.append(f"wave {index}")
                lines.extend(f"  {action.describe()}" for action in wave)
        if self.unchanged:
            lines.append("unchanged: " + ", ".join(self.unchanged))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class UpOptions:
    """The flags of ``orc up``/``create`` that change the plan (Compose's names)."""

    services: tuple[str, ...] = ()
    no_deps: bool = False
    force_recreate: bool = False
    no_recreate: bool = False
    always_recreate_deps: bool = False
    remove_orphans: bool = False
    no_start: bool = False
    scale: Mapping[str, int] = field(default_factory=dict)
    pull: str | None = None
    # A recreated container gets new anonymous volumes instead of its predecessor's (`-V`).
    renew_anon_volumes: bool = False


@dataclass(frozen=True)
class DownOptions:
    """The flags of ``orc down``/``rm`` that change the plan."""

    services: tuple[str, ...] = ()
    volumes: bool = False
    remove_orphans: bool = False
    keep_networks: bool = False


def plan_up(desired: Desired, observed: ObservedState, options: UpOptions | None = None) -> Plan:
    """What ``up`` must do to turn ``observed`` into ``desired``."""
    options = options or UpOptions()
    if options.force_recreate and options.no_recreate:
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    order = service_order(desired)
    selected = _select(desired, options.services, with_dependencies=not options.no_deps)
    requested = set(options.services) if options.services else set(selected)

    actions: dict[str, Action] = {}
    unchanged: list[str] = []
    warnings: list[str] = []

    def add(action: Action) -> str:
        actions[action.key] = action
        return action.key

    image_keys = _plan_pulls(desired, observed, selected, options, add)
    network_keys = {
        net: add(Action("create-network", net, "missing"))
        for net in desired.networks
        if net not in observed.networks and _used(desired, selected, net, "networks")
    }
    volume_keys = {
        vol: add(Action("create-volume", vol, "missing"))
        for vol in desired.volumes
        if vol not in observed.volumes and _used(desired, selected, vol, "volumes")
    }

    # Per service: keys of the actions that (re)start it in this plan, and whether it was recreated.
    started_by: dict[str, list[str]] = {}
    recreated: set[str] = set()
    for name in order:
        if name not in selected:
            continue
        service = desired.service(name)
        assert service is not None
        replicas = options.scale.get(name, service.replicas)
        if replicas < 0:
            raise UsageError(f"invalid scale {replicas} for service {name}")
        if service.container_name and replicas > 1:
            raise PermanentError(
                f'service "{name}" has container_name "{service.container_name}" and cannot be scaled to {replicas}'
            )
        # A container is created from its image and volumes; its networks are needed only once
        # it starts, so its create goes on while they are made.
        prerequisites = tuple(
            k for k in (image_keys.get(service.image), *(volume_keys.get(v) for v in service.volumes)) if k
        )
        network_prerequisites = tuple(k for k in (network_keys.get(n) for n in service.networks) if k)
        dependency_keys = tuple(
            k
            for dep in service.depends_on
            if dep.service in selected
            for k in started_by.get(dep.service, [])
        )
        gates = tuple(
            Gate(dep.service, dep.condition, dep.required)
            for dep in service.depends_on
            if dep.service in selected or not dep.required
        )
        restart_causes = [
            f"dependency {dep.service} recreated"
            for dep in service.depends_on
            if dep.restart and dep.service in recreated
        ]
        force = options.force_recreate or (options.always_recreate_deps and name not in requested)

        existing = observed.of_service(name)
        by_number = {c.number: c for c in existing}
        names = _replica_names(desired.project, service, replicas)
        started_by[name] = []
        for number, container in enumerate(names, start=1):
            current = (
                by_number.get(number) if not service.container_name else (existing[0] if existing else None)
            )
            start_cause: str | None = None
            start_after: tuple[str, ...]
            if current is None:
                cause = "new service" if not existing else f"scale {len(existing)}→{replicas}"
                if existing and len(existing) >= replicas:
                    cause = "missing"
                created = add(Action("create", container, cause, name, number, after=prerequisites))
                start_after = (created,)
                start_cause = "created"
            else:
                reason = None if options.no_recreate else _recreate_reason(current, service, observed, force)
                if reason:
                    created = add(Action("recreate", current.name, reason, name, number, after=prerequisites))
                    recreated.add(name)
                    start_after = (created,)
                    start_cause = "recreated"
                elif not current.running:
                    start_after = ()
                    start_cause = _status_text(current)
                elif restart_causes and not options.no_start:
                    restarted = add(
                        Action(
                            "restart",
                            current.name,
                            ", ".join(restart_causes),
                            name,
                            number,
                            after=dependency_keys,
                            gates=gates,
                        )
                    )
                    started_by[name].append(restarted)
                    continue
                else:
                    unchanged.append(current.name)
                    continue
            if options.no_start:
                continue
            started_by[name].append(
                add(
                    Action(
                        "start",
                        container if current is None else current.name,
                        start_cause,
                        name,
                        number,
                        after=start_after + network_prerequisites + dependency_keys,
                        gates=gates,
                    )
                )
            )
        if not service.container_name:
            for extra in sorted((c for c in existing if c.number > replicas), key=lambda c: -c.number):
                add(Action("remove", extra.name, f"scale {len(existing)}→{replicas}", name, extra.number))

    orphans = sorted(
        (c for c in observed.containers if desired.service(c.service) is None and not c.one_off),
        key=lambda c: c.name,
    )
    if orphans and options.remove_orphans:
        for orphan in orphans:
            add(Action("remove", orphan.name, "orphan", orphan.service, orphan.number))
    elif orphans:
        warnings.append(
            f"found orphan containers ({', '.join(c.name for c in orphans)}) for this project; if you"
            " removed or renamed their service, run this command with --remove-orphans to clean them up"
        )
    return Plan(desired.project, tuple(actions.values()), tuple(sorted(unchanged)), tuple(warnings))


def plan_down(
    project: str, observed: ObservedState, desired: Desired | None = None, options: DownOptions | None = None
) -> Plan:
    """What ``down`` must do: stop dependents first, remove containers, then networks (and volumes).

    Without ``desired`` (no files, only ``-p NAME``) every container of the project goes and no
    order between them is known.
    """
    options = options or DownOptions()
    known = {s.name for s in desired.services} if desired else None
    containers = [c for c in observed.containers if not c.one_off or not options.services]
    if options.services:
        containers = [c for c in containers if c.service in options.services]
    warnings: list[str] = []
    if known is not None:
        orphans = sorted(c.name for c in containers if c.service not in known)
        if orphans and not options.remove_orphans:
            containers = [c for c in containers if c.service in known]
            warnings.append(
                f"found orphan containers ({', '.join(orphans)}) for this project; run with"
                " --remove-orphans to remove them too"
            )

    dependents: dict[str, set[str]] = {}
    if desired is not None:
        for service in desired.services:
            for dep in service.depends_on:
                dependents.setdefault(dep.service, set()).add(service.name)
    stop_keys: dict[str, list[str]] = {}
    for c in containers:
        if c.running:
            stop_keys.setdefault(c.service, []).append(f"stop {c.name}")

    actions: list[Action] = []
    for c in sorted(containers, key=lambda c: c.name):
        after = tuple(
            sorted(k for dependent in dependents.get(c.service, ()) for k in stop_keys.get(dependent, []))
        )
        remove_after: tuple[str, ...] = ()
        if c.running:
            actions.append(Action("stop", c.name, "down", c.service, c.number, after=after))
            remove_after = (f"stop {c.name}",)
        actions.append(Action("remove", c.name, "down", c.service, c.number, after=remove_after))

    removes = tuple(a.key for a in actions if a.kind == "remove")
    if not options.services:
        if not options.keep_networks:
            networks = (
                sorted(observed.networks & set(desired.networks)) if desired else sorted(observed.networks)
            )
            actions.extend(Action("remove-network", n, "down", after=removes) for n in networks)
        if options.volumes:
            volumes = sorted(observed.volumes & set(desired.volumes)) if desired else sorted(observed.volumes)
            actions.extend(Action("remove-volume", v, "down --volumes", after=removes) for v in volumes)
    return Plan(project, tuple(actions), (), tuple(warnings))


def plan_stop(
    project: str, observed: ObservedState, desired: Desired | None, services: Sequence[str] = ()
) -> Plan:
    """``stop``: the running containers of ``services`` (all when empty), dependents first."""
    down = plan_down(project, observed, desired, DownOptions(services=tuple(services)))
    return Plan(project, tuple(replace(a, cause="stop") for a in down.actions if a.kind == "stop"))


def plan_start(desired: Desired, observed: ObservedState, services: Sequence[str] = ()) -> Plan:
    """``start``: the existing, stopped containers of ``services`` in dependency order (it
    creates nothing)."""
    existing = {c.name for c in observed.containers}
    up = plan_up(desired, observed, UpOptions(services=tuple(services), no_recreate=True))
    starts = [a for a in up.actions if a.kind == "start" and a.target in existing]
    keys = {a.key for a in starts}
    return Plan(
        desired.project, tuple(replace(a, after=tuple(k for k in a.after if k in keys)) for a in starts)
    )


def plan_restart(desired: Desired, observed: ObservedState, services: Sequence[str] = ()) -> Plan:
    """``restart``: ``plan_stop``, then ``plan_start`` of the state those stops leave, each start
    after its container's stop (one plan, as ``--dry-run`` prints it; the supervisor runs the
    two parts one after the other)."""
    stops = tuple(
        replace(a, cause="restart") for a in plan_stop(desired.project, observed, desired, services).actions
    )
    stopped = {a.target for a in stops}
    after_stops = replace(
        observed,
        containers=tuple(
            replace(c, status="exited") if c.name in stopped else c for c in observed.containers
        ),
    )
    starts = plan_start(desired, after_stops, services)
    chained = tuple(
        replace(a, cause="restart", after=(*a.after, f"stop {a.target}")) if a.target in stopped else a
        for a in starts.actions
    )
    return Plan(desired.project, stops + chained)


def plan_remove(project: str, observed: ObservedState, services: Sequence[str], stop_first: bool) -> Plan:
    """``rm``: the stopped containers of ``services`` (all when empty); running ones too with
    ``stop_first`` (``rm -s``)."""
    return Plan(
        project,
        tuple(
            Action("remove", c.name, "rm", c.service, c.number)
            for c in observed.containers
            if (not services or c.service in services) and (stop_first or not c.running)
        ),
    )


def service_order(desired: Desired) -> list[str]:
    """Services with every dependency before its dependents, ties broken by name."""
    names = {s.name for s in desired.services}
    requires: dict[str, list[str]] = {name: [] for name in names}
    for service in desired.services:
        for dep in service.depends_on:
            if dep.service in names:
                requires[service.name].append(dep.service)
            elif dep.required:
                raise StackError(f'service "{service.name}" depends on undefined service "{dep.service}"')
    ordered: list[str] = []
    ready = sorted(n for n in names if not requires[n])
    remaining = {n: set(deps) for n, deps in requires.items()}
    while ready:
        name = ready.pop(0)
        ordered.append(name)
        for other in sorted(remaining):
            if name in remaining[other]:
                remaining[other].discard(name)
                if not remaining[other] and other not in ordered and other not in ready:
                    ready.append(other)
                    ready.sort()
    if len(ordered) < len(names):
        members = _cycle({n: deps for n, deps in remaining.items() if n not in ordered})
        raise StackError(f"dependency cycle between services: {' → '.join([*members, members[0]])}")
    return ordered


def topological_generations(nodes: Iterable[str], after: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Kahn's algorithm by levels: each generation holds the nodes whose prerequisites are all in
    earlier generations. (Hand-written: importing networkx for this costs the supervisor ~20 MiB.)"""
    pending = {node: set(after.get(node, ())) for node in nodes}
    generations: list[list[str]] = []
    while pending:
        generation = sorted(node for node, before in pending.items() if not before)
        if not generation:
            raise ValueError(f"cycle among {_cycle(pending)}")
        generations.append(generation)
        for node in generation:
            del pending[node]
        for before in pending.values():
            before.difference_update(generation)
    return generations


def _cycle(requires: Mapping[str, Iterable[str]]) -> list[str]:
    """One cycle in a graph where every node has an unmet requirement, smallest name first."""
    start = min(requires)
    path = [start]
    node = start
    while True:
        node = min(n for n in requires[node] if n in requires)
        if node in path:
            members = path[path.index(node) :]
            first = members.index(min(members))
            return members[first:] + members[:first]
        path.append(node)


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted paths whose values differ between two canonical configs, sorted."""
    # A key set to null and a key left out mean the same thing in a canonical config.
    flat_old = {k: v for k, v in _flatten(old).items() if v is not None}
    flat_new = {k: v for k, v in _flatten(new).items() if v is not None}
    return sorted(
        k for k in flat_old.keys() | flat_new.keys() if flat_old.get(k, _MISSING) != flat_new.get(k, _MISSING)
    )


_MISSING = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        if not value and prefix:
            return {prefix: {}}
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple):
        # Lists are compared whole: an inserted item would otherwise "change" every later index.
        return {prefix: list(value)}
    return {prefix: value}


def _recreate_reason(
    container: ObservedContainer, service: DesiredService, observed: ObservedState, force: bool
) -> str | None:
    if force:
        return "forced"
    if container.config_hash != service.config_hash:
        if container.config is None:
            return "config hash changed"
        changes = config_changes(container.config, service.config)
        if not changes:
            return "config hash changed"
        named = ", ".join(changes[:MAX_NAMED_CHANGES])
        more = len(changes) - MAX_NAMED_CHANGES
        return f"config changed: {named}" + (f" and {more} more" if more > 0 else "")
    local_digest = observed.images.get(service.image)
    if local_digest and container.image_digest and local_digest != container.image_digest:
        return "image digest changed"
    return None


def _status_text(container: ObservedContainer) -> str:
    if container.status == "exited" and container.exit_code is not None:
        return f"exited ({container.exit_code})"
    return container.status


def _replica_names(project: str, service: DesiredService, replicas: int) -> list[str]:
    if service.container_name:
        return [service.container_name] if replicas > 0 else []
    return [f"{project}-{service.name}-{n}" for n in range(1, replicas + 1)]


def _select(desired: Desired, requested: Sequence[str], with_dependencies: bool) -> set[str]:
    names = {s.name for s in desired.services}
    unknown = sorted(set(requested) - names)
    if unknown:
        raise UsageError(f"no such service: {', '.join(unknown)}")
    if not requested:
        return names
    selected = set(requested)
    pending = list(requested)
    while with_dependencies and pending:
        service = desired.service(pending.pop())
        assert service is not None
        for dep in service.depends_on:
            if dep.service in names and dep.service not in selected:
                selected.add(dep.service)
                pending.append(dep.service)
    return selected


def _used(desired: Desired, selected: Iterable[str], name: str, attribute: str) -> bool:
    for service_name in selected:
        service = desired.service(service_name)
        if service is not None and name in getattr(service, attribute):
            return True
    return False


def _plan_pulls(
    desired: Desired,
    observed: ObservedState,
    selected: set[str],
    options: UpOptions,
    add: Callable[[Action], str],
) -> dict[str, str]:
    keys: dict[str, str] = {}
    for service in sorted((desired.service(n) for n in selected), key=lambda s: s.name if s else ""):
        assert service is not None
        if service.image in keys:
            continue
        policy = options.pull or service.pull_policy or "missing"
        present = service.image in observed.images
        if policy == "always":
            keys[service.image] = add(Action("pull", service.image, "pull policy always"))
        elif present:
            continue
        elif policy == "never":
            raise NotFoundError(
                f"image {service.image} of service {service.name} is not present and its pull policy is never"
            )
        elif policy == "build":
            raise PermanentError(
                f"service {service.name}: building images is not supported; pull or import it"
            )
        else:
            keys[service.image] = add(Action("pull", service.image, "not present locally"))
    return keys


def _action_order(action: Action) -> tuple[int, str]:
    return (ACTION_KINDS.index(action.kind), action.target)
