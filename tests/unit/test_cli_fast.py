"""The typer-free path of `up -d`, `down`, `ps`, `stop`, `start` and `restart` (cli.fast): what it accepts, it runs exactly as the
typer app would (same functions, same values); everything else it leaves to the app."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from orchestrator.cli import down, fast, ps, stop, up, verb_down, verb_ps, verb_stop, verb_up
from orchestrator.cli.app import main as app_main
from orchestrator.cli.options import global_options

# Every option of run_up and run_ps at its default (read before any test replaces them).
DEFAULTS = {
    verb: {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if name not in ("ctx", "services")
    }
    for verb, function in (("up", up.run_up), ("ps", ps.run_ps))
}

ACCEPTED = [
    ["up", "-d"],
    ["up", "--detach", "web"],
    ["up", "web", "-d", "db"],
    ["-f", "a.yaml", "--file=b.yaml", "-p", "x", "up", "-d"],
    ["--root", "/r", "--progress", "plain", "--ansi", "never", "--parallel", "3", "down"],
    ["down", "-v", "--remove-orphans", "-t", "5"],
    ["down", "--timeout=2.5"],
    ["--profile", "a", "--profile=b", "--env-file", "e", "--project-directory", "d", "down", "--volumes"],
    ["--project-name=demo", "--root=/somewhere", "down"],
    ["ps"],
    ["ps", "-a", "--format", "json"],
    ["-p", "demo", "ps", "--all", "--format=table", "web", "-q"],
    ["ps", "--services", "--quiet", "db"],
    ["ps", "--no-orphans", "-a"],
    ["ps", "--orphans", "web"],
    ["stop"],
    ["stop", "-t", "3", "web", "db"],
    ["--root", "/r", "restart", "--timeout=0.5", "web"],
    ["start", "web"],
    ["start"],
]

DECLINED = [
    ["up"],  # attached: the app's, with all its options
    ["up", "-d", "--wait"],
    ["--dry-run", "down"],
    ["down", "-t=5"],
    ["-fcompose.yaml", "up", "-d"],
    ["up", "-dV"],
    ["down", "--help"],
    ["--help"],
    ["-p", "a", "-p", "b", "down"],
    ["--parallel", "x", "down"],
    ["ps", "--status", "running"],
    ["ps", "--filter=status=exited"],
    ["ps", "--format"],
    ["ps", "-aq"],
    ["ps", "--orphans=false"],  # cli.entry spells it --no-orphans first (test_cli_entry)
    ["start", "-t", "3"],
    ["stop", "-t=3"],
    ["restart", "--no-deps"],
    ["down", "-t"],
    ["down", "--volumes=yes"],
    ["--root=", "down"],
    ["-p"],
    [],
]


def _recorded(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], path: str
) -> list[tuple[str, Any, dict[str, Any]]]:
    calls: list[tuple[str, Any, dict[str, Any]]] = []

    def recorder(verb: str) -> Any:
        def record(ctx: Any, services: Any = None, **arguments: Any) -> None:
            if verb != "down":
                arguments["services"] = list(services or [])
            calls.append((verb, global_options(ctx), arguments))

        return record

    if path == "typer":
        monkeypatch.setattr(verb_up, "run_up", recorder("up"))
        monkeypatch.setattr(verb_down, "run_down", recorder("down"))
        monkeypatch.setattr(verb_ps, "run_ps", recorder("ps"))
        for verb in ("stop", "start", "restart"):
            monkeypatch.setattr(verb_stop, f"run_{verb}", recorder(verb))
        with pytest.raises(SystemExit) as ended:
            app_main(argv)
        assert ended.value.code in (0, None)
    else:
        monkeypatch.setattr(up, "run_up", recorder("up"))
        monkeypatch.setattr(down, "run_down", recorder("down"))
        monkeypatch.setattr(ps, "run_ps", recorder("ps"))
        for verb in ("stop", "start", "restart"):
            monkeypatch.setattr(stop, f"run_{verb}", recorder(verb))
        assert fast.run(argv) == 0
    return calls


def _defaults(verb: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as the app passes them: every option, at its default unless given."""
    if verb not in DEFAULTS:
        return arguments
    full = dict(DEFAULTS[verb])
    full.update(arguments)
    return full


@pytest.mark.parametrize("argv", ACCEPTED)
@pytest.mark.parametrize("orc_root", [None, "/from/env"])
def test_an_accepted_command_line_runs_as_the_app_would_run_it(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], orc_root: str | None
) -> None:
    if orc_root is None:
        monkeypatch.delenv("ORC_ROOT", raising=False)
    else:
        monkeypatch.setenv("ORC_ROOT", orc_root)
    assert fast.parse(argv) is not None
    through_app = _recorded(monkeypatch, argv, "typer")
    without_typer = _recorded(monkeypatch, argv, "fast")
    assert len(through_app) == len(without_typer) == 1
    (verb, options, arguments), (fast_verb, fast_options, fast_arguments) = through_app[0], without_typer[0]
    assert fast_verb == verb
    assert fast_options == options
    assert _defaults(verb, fast_arguments) == _defaults(verb, arguments)


@pytest.mark.parametrize("argv", DECLINED)
def test_anything_else_is_left_to_the_app(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    ran: list[str] = []
    monkeypatch.setattr(up, "run_up", lambda *a, **k: ran.append("up"))
    monkeypatch.setattr(down, "run_down", lambda *a, **k: ran.append("down"))
    monkeypatch.setattr(ps, "run_ps", lambda *a, **k: ran.append("ps"))
    for verb in ("stop", "start", "restart"):
        monkeypatch.setattr(stop, f"run_{verb}", lambda *a, **k: ran.append("stop"))
    assert fast.parse(argv) is None
    assert fast.run(argv) is None
    assert ran == []


def test_an_error_is_one_line_and_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fast.run(["--progress", "loud", "down"]) == 2
    assert (
        capsys.readouterr().err
        == "error: unsupported --progress 'loud': one of auto, tty, plain, json, quiet\n"
    )
    assert fast.run(["--parallel", "0", "down"]) == 2


def test_a_plain_up_d_imports_neither_typer_nor_click() -> None:
    import json
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from orchestrator.cli import fast, up\n"
        "up.run_up = lambda ctx, **kw: None\n"
        "assert fast.run(['up', '-d']) == 0\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_reader_that_goes_away_ends_it_quietly_as_click_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def write_to_a_closed_pipe(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(ps, "run_ps", write_to_a_closed_pipe)
    assert fast.run(["ps"]) == 1
