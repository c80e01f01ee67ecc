"""``orc kill``, ``orc rm``, ``orc pause``, ``orc unpause``, ``orc top``, ``orc port``.

Small verbs on existing containers, carried out by the project's supervisor: ``kill`` signals the
running containers (their restart policy applies), ``rm`` removes stopped ones (``-s`` stops them
first), ``pause``/``unpause`` freeze and thaw them through the cgroup freezer, ``top`` lists their
processes and ``port`` prints the host address of a published port.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.lifecycle import finish, global_options, print_event, project_handle
from orchestrator.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("kill")
    def kill_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        signal_name: Annotated[str, typer.Option("--signal", "-s", help="SIGNAL to send")] = "SIGKILL",
    ) -> None:
        """Force stop service containers."""
        handle, _ = project_handle(ctx, need_files=False)
        handle.request("kill", services=list(services or []), signal=signal_name)

    @app.command("rm")
    def rm_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        force: Annotated[bool, typer.Option("--force", "-f", help="Don't ask to confirm removal")] = False,
        stop: Annotated[
            bool, typer.Option("--stop", "-s", help="Stop the containers, if required, before removing")
        ] = False,
    ) -> None:
        """Removes stopped service containers."""
        handle, loaded = project_handle(ctx, need_files=False)
        if global_options(ctx).dry_run:
            from orchestrator.cli.dryrun import print_plan

            print_plan(handle, loaded, "rm", services or [], stop_first=stop)
            return
        if handle.supervisor() is None and not handle.containers():
            typer.echo("No stopped containers", err=True)
            return
        finish(
            handle.request("rm", start=True, services=list(services or []), stop=stop, on_event=print_event)
        )

    @app.command("pause")
    def pause_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
    ) -> None:
        """Pause services."""
        handle, _ = project_handle(ctx, need_files=False)
        for name in handle.request("pause", services=list(services or []))["containers"]:
            typer.echo(f" ✔ Container {name}  Paused", err=True)

    @app.command("unpause")
    def unpause_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
    ) -> None:
        """Unpause services."""
        handle, _ = project_handle(ctx, need_files=False)
        for name in handle.request("unpause", services=list(services or []))["containers"]:
            typer.echo(f" ✔ Container {name}  Unpaused", err=True)

    @app.command("top")
    def top_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
    ) -> None:
        """Display the running processes."""
        handle, _ = project_handle(ctx, need_files=False)
        containers = handle.request("top", services=list(services or []))["containers"]
        for name in sorted(containers):
            typer.echo(name)
            typer.echo("PID     CMD")
            for pid, command in containers[name]:
                typer.echo(f"{pid:<7} {command}")
            typer.echo("")

    @app.command("port")
    def port_cmd(
        ctx: typer.Context,
        service: Annotated[str, typer.Argument(metavar="SERVICE")],
        private_port: Annotated[str, typer.Argument(metavar="PRIVATE_PORT")],
        protocol: Annotated[str, typer.Option("--protocol", help="tcp or udp")] = "tcp",
        index: Annotated[int, typer.Option("--index", help="Index of the container")] = 1,
    ) -> None:
        """Print the public port for a port binding."""
        if not private_port.isdigit():
            raise UsageError(f"invalid port {private_port!r}")
        handle, _ = project_handle(ctx, need_files=False)
        result = handle.request(
            "port", service=service, index=index, target=int(private_port), protocol=protocol
        )
        for address in result["addresses"]:
            typer.echo(address)
