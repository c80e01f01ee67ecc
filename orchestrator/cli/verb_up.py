"""``orc up`` and ``orc plan``: their options, declared for typer; ``cli.up`` does the work
(its docstring says what ``up``, ``--dry-run``, ``--locked`` and the abort options do)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.up import (
    _scale,
    abort_exit_code,
    abort_verdict,
    print_plan,
    run_up,
    with_dependencies,
)

__all__ = ["abort_exit_code", "abort_verdict", "print_plan", "register", "with_dependencies"]


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        detach: Annotated[
            bool, typer.Option("--detach", "-d", help="Run containers in the background")
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing")] = False,
        force_recreate: Annotated[
            bool, typer.Option("--force-recreate", help="Recreate containers even if unchanged")
        ] = False,
        no_recreate: Annotated[bool, typer.Option("--no-recreate", help="Keep existing containers")] = False,
        always_recreate_deps: Annotated[
            bool, typer.Option("--always-recreate-deps", help="Recreate dependencies")
        ] = False,
        no_deps: Annotated[bool, typer.Option("--no-deps", help="Don't start linked services")] = False,
        remove_orphans: Annotated[
            bool, typer.Option("--remove-orphans", help="Remove containers of removed services")
        ] = False,
        no_start: Annotated[bool, typer.Option("--no-start", help="Create, don't start")] = False,
        scale: Annotated[
            list[str] | None, typer.Option("--scale", metavar="SERVICE=NUM", help="Number of replicas")
        ] = None,
        pull: Annotated[
            str | None, typer.Option("--pull", help="Pull image before running (always|missing|never)")
        ] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", "-t", help="Shutdown timeout in seconds")
        ] = None,
        wait: Annotated[
            bool, typer.Option("--wait", help="Wait for services to be running|healthy; implies -d")
        ] = False,
        wait_timeout: Annotated[
            float | None, typer.Option("--wait-timeout", help="Maximum seconds to wait with --wait")
        ] = None,
        locked: Annotated[
            bool,
            typer.Option(
                "--locked", help="Run the image digests pinned in compose.lock; refuse if it is stale"
            ),
        ] = False,
        abort_on_container_exit: Annotated[
            bool,
            typer.Option(
                "--abort-on-container-exit", help="Stops all containers if any container was stopped"
            ),
        ] = False,
        abort_on_container_failure: Annotated[
            bool,
            typer.Option(
                "--abort-on-container-failure",
                help="Stops all containers if any container exited with failure",
            ),
        ] = False,
        attach: Annotated[
            list[str] | None,
            typer.Option("--attach", metavar="SERVICE", help="Restrict attaching to the specified services"),
        ] = None,
        no_attach: Annotated[
            list[str] | None,
            typer.Option(
                "--no-attach", metavar="SERVICE", help="Do not attach (stream logs) to the specified services"
            ),
        ] = None,
        exit_code_from: Annotated[
            str | None,
            typer.Option(
                "--exit-code-from",
                metavar="SERVICE",
                help="Return the exit code of the selected service container; implies --abort-on-container-exit",
            ),
        ] = None,
        no_color: Annotated[bool, typer.Option("--no-color", help="Produce monochrome output")] = False,
        no_log_prefix: Annotated[
            bool, typer.Option("--no-log-prefix", help="Don't print prefix in logs")
        ] = False,
        timestamps: Annotated[bool, typer.Option("--timestamps", help="Show timestamps")] = False,
        attach_dependencies: Annotated[
            bool,
            typer.Option(
                "--attach-dependencies", help="Automatically attach to log output of dependent services"
            ),
        ] = False,
        renew_anon_volumes: Annotated[
            bool,
            typer.Option(
                "--renew-anon-volumes",
                "-V",
                help="Recreate anonymous volumes instead of retrieving data from the previous containers",
            ),
        ] = False,
        quiet_pull: Annotated[
            bool, typer.Option("--quiet-pull", help="Pull without printing progress information")
        ] = False,
        build: Annotated[
            bool, typer.Option("--build", help="Build images before starting containers (orc cannot)")
        ] = False,
        no_build: Annotated[
            bool,
            typer.Option("--no-build", help="Don't build an image, even if it's policy (orc never does)"),
        ] = False,
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Assume yes to all prompts (orc asks none)")
        ] = False,
    ) -> None:
        """Create and start containers."""
        run_up(
            ctx,
            services,
            detach=detach,
            dry_run=dry_run,
            force_recreate=force_recreate,
            no_recreate=no_recreate,
            always_recreate_deps=always_recreate_deps,
            no_deps=no_deps,
            remove_orphans=remove_orphans,
            no_start=no_start,
            scale=scale,
            pull=pull,
            timeout=timeout,
            wait=wait,
            wait_timeout=wait_timeout,
            locked=locked,
            abort_on_container_exit=abort_on_container_exit,
            abort_on_container_failure=abort_on_container_failure,
            attach=attach,
            no_attach=no_attach,
            exit_code_from=exit_code_from,
            no_color=no_color,
            no_log_prefix=no_log_prefix,
            timestamps=timestamps,
            attach_dependencies=attach_dependencies,
            renew_anon_volumes=renew_anon_volumes,
            quiet_pull=quiet_pull,
            build=build,
            no_build=no_build,
            yes=yes,
        )

    @app.command("plan")
    def plan_cmd(
        ctx: typer.Context,
        services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE...]")] = None,
        force_recreate: Annotated[bool, typer.Option("--force-recreate")] = False,
        no_recreate: Annotated[bool, typer.Option("--no-recreate")] = False,
        no_deps: Annotated[bool, typer.Option("--no-deps")] = False,
        remove_orphans: Annotated[bool, typer.Option("--remove-orphans")] = False,
        scale: Annotated[list[str] | None, typer.Option("--scale", metavar="SERVICE=NUM")] = None,
        pull: Annotated[str | None, typer.Option("--pull")] = None,
    ) -> None:
        """Print what `up` would do, with the cause of every action."""
        print_plan(
            ctx,
            list(services or []),
            {
                "no_deps": no_deps,
                "force_recreate": force_recreate,
                "no_recreate": no_recreate,
                "always_recreate_deps": False,
                "remove_orphans": remove_orphans,
                "no_start": False,
                "scale": _scale(scale),
                "pull": pull,
            },
        )
