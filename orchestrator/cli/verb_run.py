"""``orc run``: a one-off container of a service, with another command if given.

The service's dependencies are started first (``--no-deps`` skips them); the container gets no
restart policy and publishes no ports. In the foreground it uses our stdin/stdout/stderr, or a
pseudo-terminal of its own when stdin is a terminal (``-T`` turns that off); its exit code becomes
orc's; ``--rm`` removes it afterwards, ``-d`` prints its name and returns.

``-u -w --entrypoint -v -p --service-ports`` change the service for this container only: they are
turned here into the service's keys in canonical Compose (:func:`service_changes`, with the
loader's own short-syntax parsers; relative ``-v`` sources are taken from the current directory,
as Docker Compose does) and bound by the supervisor like the file's own keys. ``--name`` names
the container.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Annotated, Any

import typer

from orchestrator.cli.lifecycle import (
    image_options,
    print_event,
    project_handle,
    project_payload,
    pull_option,
    without_pulls,
)
from orchestrator.cli.verb_exec import terminal_for
from orchestrator.errors import UsageError


def service_changes(
    document: dict[str, Any],
    service: str,
    *,
    user: str | None = None,
    workdir: str | None = None,
    entrypoint: str | None = None,
    volumes: list[str] | None = None,
    publish: list[str] | None = None,
    service_ports: bool = False,
    cap_add: list[str] | None = None,
    cap_drop: list[str] | None = None,
    labels: list[str] | None = None,
    cwd: str,
    home: str | None = None,
) -> dict[str, Any]:
    """The keys of ``service`` (canonical Compose) that ``run``'s options change for its container.

    ``-v`` mounts are added to the service's; ``-p`` replaces its ports (which ``run`` otherwise
    drops; ``--service-ports`` keeps them). An empty ``--entrypoint ""`` clears the image's.
    ``--cap-add``/``--cap-drop`` add to the service's lists; ``-l KEY=VALUE`` adds or replaces a
    label (``-l KEY`` sets it empty).
    """
    from orchestrator.errors import StackError
    from orchestrator.stack import canonical as canon

    if publish and service_ports:
        raise UsageError("--service-ports and --publish are incompatible")
    written = (document.get("services") or {}).get(service)
    if written is None:
        raise UsageError(f"no such service: {service}")
    changes: dict[str, Any] = {}
    if user is not None:
        changes["user"] = user
    if workdir is not None:
        changes["working_dir"] = workdir
    if entrypoint is not None:
        try:
            changes["entrypoint"] = shlex.split(entrypoint)
        except ValueError as exc:
            raise UsageError(f"invalid --entrypoint {entrypoint!r}: {exc}") from exc
    if volumes or publish:
        added: dict[str, Any] = {"services": {service: {}}}
        if volumes:
            added["services"][service]["volumes"] = list(volumes)
        if publish:
            added["services"][service]["ports"] = list(publish)
        try:
            added = canon.canonical(added)
            added = canon.set_defaults(added)
            added = canon.resolve_paths(added, cwd, home)
        except StackError as exc:
            raise UsageError(f"run: {exc}") from exc
        if volumes:
            changes["volumes"] = [*(written.get("volumes") or []), *added["services"][service]["volumes"]]
        if publish:
            changes["ports"] = added["services"][service]["ports"]
    if service_ports:
        changes["ports"] = list(written.get("ports") or [])
    for key, given in (("cap_add", cap_add), ("cap_drop", cap_drop)):
        if given:
            changes[key] = list(dict.fromkeys([*(written.get(key) or []), *given]))
    if labels:
        merged = dict(written.get("labels") or {})
        for item in labels:
            label, _, value = item.partition("=")
            if not label:
                raise UsageError(f"invalid --label {item!r}: expected KEY=VALUE")
            merged[label] = value
        changes["labels"] = merged
    return changes


def environment_files(paths: list[str]) -> dict[str, str]:
    """``--env-from-file``: the variables of each file (the env-file syntax of ``env_file:``,
    ``${X}`` taken from this shell), later files winning; ``-e`` wins over all of them."""
    from orchestrator.stack.dotenv import DotEnvError, parse_dotenv

    environment: dict[str, str] = {}
    for path in paths:
        try:
            with open(path) as handle:
                environment.update(parse_dotenv(handle.read(), os.environ.get))
        except OSError as exc:
            raise UsageError(f"--env-from-file {path}: {exc.strerror or exc}") from exc
        except DotEnvError as exc:
            raise UsageError(f"--env-from-file {path}: {exc}") from exc
    return environment


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings={"allow_interspersed_args": False})
    def run_cmd(
        ctx: typer.Context,
        service: Annotated[str, typer.Argument(metavar="SERVICE")],
        command: Annotated[list[str] | None, typer.Argument(metavar="[COMMAND] [ARGS...]")] = None,
        remove: Annotated[bool, typer.Option("--rm", help="Remove the container when it exits")] = False,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background")] = False,
        env: Annotated[
            list[str] | None, typer.Option("--env", "-e", help="Set environment variables")
        ] = None,
        no_deps: Annotated[bool, typer.Option("--no-deps", help="Don't start linked services")] = False,
        no_tty: Annotated[bool, typer.Option("--no-TTY", "-T", help="Disable pseudo-TTY allocation")] = False,
        user: Annotated[
            str | None, typer.Option("--user", "-u", help="Run as specified username or uid")
        ] = None,
        workdir: Annotated[
            str | None, typer.Option("--workdir", "-w", help="Working directory inside the container")
        ] = None,
        volume: Annotated[
            list[str] | None, typer.Option("--volume", "-v", help="Bind mount a volume")
        ] = None,
        publish: Annotated[
            list[str] | None,
            typer.Option("--publish", "-p", help="Publish a container's port(s) to the host"),
        ] = None,
        service_ports: Annotated[
            bool,
            typer.Option(
                "--service-ports",
                "-P",
                help="Run command with the service's ports enabled and mapped to the host",
            ),
        ] = False,
        entrypoint: Annotated[
            str | None, typer.Option("--entrypoint", help="Override the entrypoint of the image")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Assign a name to the container")] = None,
        cap_add: Annotated[list[str] | None, typer.Option("--cap-add", help="Add Linux capabilities")] = None,
        cap_drop: Annotated[
            list[str] | None, typer.Option("--cap-drop", help="Drop Linux capabilities")
        ] = None,
        label: Annotated[
            list[str] | None, typer.Option("--label", "-l", help="Add or override a label")
        ] = None,
        use_aliases: Annotated[
            bool,
            typer.Option(
                "--use-aliases",
                help="Use the service's network useAliases in the network(s) the container connects to",
            ),
        ] = False,
        pull: Annotated[
            str | None,
            typer.Option("--pull", help='Pull image before running ("always"|"missing"|"never"|"policy")'),
        ] = None,
        quiet_pull: Annotated[
            bool, typer.Option("--quiet-pull", help="Pull without printing progress information")
        ] = False,
        remove_orphans: Annotated[
            bool,
            typer.Option(
                "--remove-orphans", help="Remove containers for services not defined in the Compose file"
            ),
        ] = False,
        env_from_file: Annotated[
            list[str] | None,
            typer.Option("--env-from-file", metavar="FILE", help="Set environment variables from file"),
        ] = None,
        interactive: Annotated[
            bool,
            typer.Option(
                "--interactive/--no-interactive",
                "-i",
                help="Keep STDIN open even if not attached (the default, as Compose's)",
            ),
        ] = True,
    ) -> None:
        """Run a one-off command on a service."""
        environment = environment_files(env_from_file or [])
        for item in env or []:
            key, sep, value = item.partition("=")
            if not key:
                raise UsageError(f"invalid --env {item!r}: expected KEY=VALUE")
            environment[key] = value if sep else ""
        handle, loaded = project_handle(ctx)
        payload = project_payload(loaded)
        changes = service_changes(
            payload["document"],
            service,
            user=user,
            workdir=workdir,
            entrypoint=entrypoint,
            volumes=volume,
            publish=publish,
            service_ports=service_ports,
            cap_add=cap_add,
            cap_drop=cap_drop,
            labels=label,
            cwd=os.getcwd(),
            home=os.environ.get("HOME"),
        )
        # --no-interactive: the container's stdin is /dev/null, and so no terminal either
        stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
        with terminal_for(not no_tty and not detach and interactive) as on_terminal:
            result = handle.request(
                "run",
                start=True,
                on_event=without_pulls if quiet_pull else print_event,
                project=payload,
                service=service,
                service_changes=changes,
                name=name,
                command=list(command) if command else None,
                environment=environment,
                rm=remove,
                use_aliases=use_aliases,
                pull=pull_option(pull),
                remove_orphans=remove_orphans,
                detach=detach,
                no_deps=no_deps,
                tty=on_terminal,
                # The registry settings of this shell, for pulling the service's image (as up).
                image_options=image_options(loaded),
                # In the foreground the container uses our stdin/stdout/stderr directly (or,
                # on a terminal, a pseudo-terminal of its own shuttled to them).
                pass_fds=None if detach else (stdin, 1, 2),
            )
        if detach:
            typer.echo(result["container"])
            return
        sys.stdout.write(str(result.get("output", "")))
        sys.stdout.flush()
        code = result.get("exit_code")
        if code:
            raise typer.Exit(int(code))
