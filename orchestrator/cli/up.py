"""The behaviour of ``orc up`` and ``orc plan``, without typer (``verb_up`` declares their options).

``up`` sends the project to its supervisor (started detached if none runs) and prints progress;
without ``-d`` it then follows the logs and stops the containers on Ctrl-C, as Docker Compose
does. ``plan`` and ``up --dry-run`` print the plan (actions in waves, each with its cause) computed
from the files and the recorded state, changing nothing. ``up --locked`` runs the digests pinned in
``compose.lock`` and refuses, before anything starts, when the lock and the files disagree.
``--abort-on-container-exit`` stops every container once one of the attached ones has exited and
ends with the first one's exit code; ``--exit-code-from SERVICE`` implies it and ends with that
service's exit code instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from orchestrator.cli.lifecycle import (
    finish,
    global_options,
    print_event,
    project_handle,
    pull_option,
    without_pulls,
)
from orchestrator.cli.options import CommandContext
from orchestrator.errors import OrcError, UsageError


def _scale(values: list[str] | None) -> dict[str, int]:
    scale: dict[str, int] = {}
    for item in values or []:
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise UsageError(f"invalid --scale {item!r}: expected SERVICE=NUM")
        scale[name] = int(count)
    return scale


def print_plan(ctx: CommandContext, services: list[str], options: dict[str, Any]) -> None:
    from orchestrator.daemon.offline import observe_offline
    from orchestrator.planner.plan import UpOptions, plan_up
    from orchestrator.reconciler.desired import from_loaded

    handle, loaded = project_handle(ctx)
    spec = from_loaded(loaded)
    if options.get("locked"):
        from orchestrator.cli.lifecycle import locked_images
        from orchestrator.reconciler.desired import pin_images

        spec = pin_images(spec, locked_images(loaded))
    observed = observe_offline(handle, spec)
    plan = plan_up(
        spec.desired,
        observed,
        UpOptions(
            services=tuple(services),
            no_deps=options["no_deps"],
            force_recreate=options["force_recreate"],
            no_recreate=options["no_recreate"],
            always_recreate_deps=options["always_recreate_deps"],
            remove_orphans=options["remove_orphans"],
            no_start=options["no_start"],
            scale=options["scale"],
            pull=options["pull"],
        ),
    )
    sys.stdout.write(plan.to_text())


def run_up(
    ctx: CommandContext,
    services: list[str] | None = None,
    *,
    detach: bool = False,
    dry_run: bool = False,
    force_recreate: bool = False,
    no_recreate: bool = False,
    always_recreate_deps: bool = False,
    no_deps: bool = False,
    remove_orphans: bool = False,
    no_start: bool = False,
    scale: list[str] | None = None,
    pull: str | None = None,
    timeout: float | None = None,
    wait: bool = False,
    wait_timeout: float | None = None,
    locked: bool = False,
    abort_on_container_exit: bool = False,
    abort_on_container_failure: bool = False,
    attach: list[str] | None = None,
    no_attach: list[str] | None = None,
    exit_code_from: str | None = None,
    no_color: bool = False,
    no_log_prefix: bool = False,
    timestamps: bool = False,
    attach_dependencies: bool = False,
    renew_anon_volumes: bool = False,
    quiet_pull: bool = False,
    build: bool = False,
    no_build: bool = False,
    yes: bool = False,
) -> None:
    """``orc up`` once its command line is parsed (by typer, or by ``cli.fast``)."""
    if build:
        raise UsageError(
            "orc does not build images: --build cannot be honoured (use --no-build or build elsewhere)"
        )
    options = {
        "no_deps": no_deps,
        "force_recreate": force_recreate,
        "no_recreate": no_recreate,
        "always_recreate_deps": always_recreate_deps,
        "remove_orphans": remove_orphans,
        "no_start": no_start,
        "scale": _scale(scale),
        "pull": pull_option(pull),
        "renew_anon_volumes": renew_anon_volumes,
    }
    kill_after = os.environ.get("ORC_TEST_KILL_AFTER_ACTIONS")
    if kill_after:
        # Test hook: the supervisor SIGKILLs itself after this many actions (durability tests).
        options["test_kill_after_actions"] = int(kill_after)
    if force_recreate and no_recreate:
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    if abort_on_container_exit and abort_on_container_failure:
        raise UsageError("--abort-on-container-failure cannot be combined with --abort-on-container-exit")
    abort = abort_on_container_exit or abort_on_container_failure or exit_code_from is not None
    if abort and detach:
        raise UsageError("--detach cannot be combined with --abort-on-container-exit")
    if abort and wait:
        raise UsageError("--wait cannot be combined with --abort-on-container-exit")
    if dry_run or global_options(ctx).dry_run:
        print_plan(ctx, list(services or []), {**options, "locked": locked})
        return
    from orchestrator.cli.lifecycle import (
        cgroup_prefix,
        guess_project_name,
        image_options,
        locked_images,
        project_payload,
        roots,
    )
    from orchestrator.daemon.client import call
    from orchestrator.daemon.handle import ProjectHandle

    # Boot the supervisor while the files load: the two take about as long as each other.
    # Not with --locked: a stale lock must fail before anything is started.
    guess = guess_project_name(ctx) if not locked else None
    booting = None
    if guess:
        from orchestrator.cli.entry import claim_early_boot

        booting = claim_early_boot(guess, roots(ctx).run) or (
            ProjectHandle(roots(ctx), guess, cgroup_prefix()).begin_supervisor()
        )
    try:
        handle, loaded = project_handle(ctx)
        names = _service_names(loaded)
        if exit_code_from is not None and exit_code_from not in names:
            raise UsageError(f"no such service: {exit_code_from}")
        for given in [*(attach or []), *(no_attach or [])]:
            if given not in names:
                raise UsageError(f"no such service: {given}")
        if locked:
            options["locked_images"] = locked_images(loaded)
        options["image_options"] = image_options(loaded)
    except BaseException:
        if booting is not None:
            with contextlib.suppress(Exception):
                call(booting(), "exit")
        raise
    socket = booting() if booting is not None else None
    if socket is not None and handle.name != guess:
        call(socket, "exit")
    # A supervisor this command starts leaves again if the project is refused (an x-orc
    # block, a lock that does not match...): a rejected `up` leaves nothing running.
    started_here = (socket is not None and handle.name == guess) or handle.supervisor() is None
    try:
        show = without_pulls if quiet_pull else print_event
        result = handle.up(project_payload(loaded), list(services or []), options, on_event=show)
    except OrcError:
        path = handle.supervisor() if started_here else None
        if path is not None:
            with contextlib.suppress(Exception):
                call(path, "exit")  # refused (and so kept) once it has containers
        raise
    finish(result)
    if wait:
        _wait_ready(handle, list(services or []), wait_timeout)
    if detach or no_start or wait:
        return
    chosen = attach or list(services or []) or sorted(_service_names(loaded))
    if attach_dependencies:
        chosen = with_dependencies(loaded, chosen)
    shown = [s for s in chosen if s not in (no_attach or [])]
    code = _attach(
        handle,
        list(services or []),
        timeout,
        shown=shown,
        failures_only=abort_on_container_failure,
        abort=abort,
        exit_code_from=exit_code_from,
        no_color=no_color,
        prefix=not no_log_prefix,
        timestamps=timestamps,
    )
    if code:
        raise SystemExit(code)


def _wait_ready(handle: Any, services: list[str], timeout: float | None) -> None:
    """``--wait``: until every container of the services runs (and is healthy where it has a
    health check); a container that exits or turns unhealthy fails the command at once."""
    from orchestrator.errors import PermanentError, TemporaryError

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        records = [
            r for r in handle.containers() if not r.one_off and (not services or r.service in services)
        ]
        bad = [r for r in records if r.status == "exited" or r.health == "unhealthy"]
        if bad:
            what = ", ".join(f"{r.name} is {r.health or f'exited ({r.exit_code})'}" for r in bad)
            raise PermanentError(f"not ready: {what}")
        if records and all(r.status == "running" and r.health in (None, "healthy") for r in records):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TemporaryError(f"timeout waiting for services to be ready ({timeout:g}s)")
        time.sleep(0.05)


def _service_names(loaded: Any) -> set[str]:
    document = getattr(loaded, "document", None) or {}
    return set(document.get("services") or {})


def with_dependencies(loaded: Any, services: list[str]) -> list[str]:
    """``services`` and, transitively, what they depend on (``depends_on``), in the order met:
    the services ``up --attach-dependencies`` shows."""
    document = getattr(loaded, "document", None) or {}
    definitions = document.get("services") or {}
    found: list[str] = []
    pending = list(services)
    while pending:
        name = pending.pop(0)
        if name in found or name not in definitions:
            continue
        found.append(name)
        pending.extend(sorted((definitions[name].get("depends_on") or {}).keys()))
    return found


def abort_verdict(records: list[Any], services: list[str], failures_only: bool = False) -> Any | None:
    """The attached container whose exit ends ``up --abort-on-container-exit`` (the first to
    have exited, by finish time), or None while they all run (one-off containers do not count).
    With ``failures_only`` (``--abort-on-container-failure``) only an exit code other than 0 counts."""
    exited = [
        r
        for r in records
        if not r.one_off
        and (not services or r.service in services)
        and r.status in ("exited", "dead")
        and not (failures_only and r.exit_code == 0)
    ]
    return min(exited, key=lambda r: (r.finished_at or 0.0, r.name)) if exited else None


def abort_exit_code(records: list[Any], first: Any, exit_code_from: str | None) -> int:
    """What ``up`` exits with after aborting: ``--exit-code-from``'s service's container (its
    first replica), else the container that exited first."""
    if exit_code_from is not None:
        own = sorted(
            (r for r in records if r.service == exit_code_from and not r.one_off), key=lambda r: r.number
        )
        first = own[0] if own else None
    if first is None or first.exit_code is None:
        return 1 if exit_code_from is not None else 0
    return int(first.exit_code)


def _attach(
    handle: Any,
    services: list[str],
    timeout: float | None,
    *,
    shown: list[str] | None = None,
    failures_only: bool = False,
    abort: bool = False,
    exit_code_from: str | None = None,
    no_color: bool = False,
    prefix: bool = True,
    timestamps: bool = False,
) -> int:
    """Follow the logs of ``shown`` (default: ``services``) until every container has exited,
    or stop them all on Ctrl-C (or, with ``abort``, once one has exited; with ``failures_only``
    once one has exited with a failure). Returns the exit code ``up`` ends with."""
    from orchestrator.cli.verb_logs import LinePrinter, use_colour
    from orchestrator.state.logs import follow_logs

    logged = services if shown is None else shown
    sources = handle.log_sources(logged)
    printer = LinePrinter(
        max((len(name) for name, _ in sources), default=0),
        colour=use_colour(no_color),
        prefix=prefix,
        timestamps=timestamps,
    )
    first_exited: list[Any] = []

    def keep_going() -> bool:
        records = handle.containers(include_stopped=True)
        if abort:
            first = abort_verdict(records, logged, failures_only)  # the attached containers
            if first is not None:
                first_exited.append(first)
                return False
        return any(r.status in ("running", "restarting") for r in records)

    try:
        for entry in follow_logs(
            lambda: handle.log_sources(logged) if logged else [], keep_going=keep_going, from_start=True
        ):
            sys.stdout.write(printer.format(entry))
            sys.stdout.flush()
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
        finish(handle.request("stop", services=services, timeout=timeout, on_event=print_event))
        return 0
    if not first_exited:
        return 0
    message = "Aborting on container exit..."
    from orchestrator.cli.lifecycle import ansi_allowed

    print(f"\033[31m\033[1m{message}\033[0m" if ansi_allowed(sys.stderr) else message, file=sys.stderr)
    finish(handle.request("stop", services=[], timeout=timeout, on_event=print_event))
    return abort_exit_code(handle.containers(include_stopped=True), first_exited[0], exit_code_from)
