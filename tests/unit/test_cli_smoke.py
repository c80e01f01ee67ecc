"""The CLI starts, prints its version and maps usage errors to exit code 2."""

import subprocess
import sys

import pytest

from orchestrator import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True)


def test_version() -> None:
    res = run("version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"orc version v{__version__}"
    assert run("version", "--short").stdout.strip() == __version__


def test_unknown_verb_is_a_usage_error() -> None:
    res = run("no-such-verb")
    assert res.returncode == 2
    assert "No such command" in res.stderr
    assert "Traceback" not in res.stderr


def test_requested_verb_skips_global_options() -> None:
    from orchestrator.cli.app import _requested_verb

    assert _requested_verb(["-f", "a.yaml", "-p", "x", "--profile", "dev", "up", "-d"]) == "up"
    assert _requested_verb(["--root", "/r", "--env-file", "e", "config", "--services"]) == "config"
    assert _requested_verb(["--file=a.yaml", "ps"]) == "ps"
    assert _requested_verb(["--help"]) is None


def test_each_verb_runs_from_a_slim_app_holding_only_itself() -> None:
    from orchestrator.cli.app import _app_for, app

    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert {"config", "up", "down", "ps", "image"} <= set(names)
    for name in names:
        slim = _app_for(["-p", "x", name, "--help"])
        slim_names = [c.name for c in slim.registered_commands] + [g.name for g in slim.registered_groups]
        assert slim_names == [name]
        assert slim.registered_callback is app.registered_callback
    assert _app_for(["no-such-verb"]) is app


def test_global_options_reach_a_verb_run_from_the_slim_app(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    res = run("-f", str(tmp_path / "compose.yaml"), "-p", "slimtest", "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert '"name": "slimtest"' in res.stdout


def test_warnings_print_as_docker_compose_does_and_nothing_without_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from orchestrator.cli.project import print_warnings

    print_warnings([])
    assert capsys.readouterr().err == ""
    print_warnings(['the "x" key is obsolete', "a\\b"])
    lines = capsys.readouterr().err.splitlines()
    stamp = r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=warning'
    assert re.fullmatch(stamp + r' msg="the \\"x\\" key is obsolete"', lines[0])
    assert re.fullmatch(stamp + r' msg="a\\\\b"', lines[1])
