"""The CLI starts, prints its version and maps usage errors to exit code 2."""

import subprocess
import sys

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
