"""The pure layers (stack, model, planner) never read the process environment.

import-linter (run by .ci/run) holds the import rules; this test holds what it cannot see:
attribute uses of ``os.environ``/``os.getenv``/``os.putenv``/``os.chdir`` and ``sys.exit``.
"""

import ast
from pathlib import Path

import pytest

PURE = ("stack", "model", "planner")
BELOW_CLI = ("api", "daemon", "reconciler", "planner", "stack", "model", "runtime", "state")
ROOT = Path(__file__).resolve().parents[2] / "orchestrator"


def attribute_uses(package: str, names: set[tuple[str, str]]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in names
            ):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_layers_do_not_read_the_environment(package: str) -> None:
    assert attribute_uses(package, {("os", "environ"), ("os", "getenv"), ("os", "putenv")}) == []


@pytest.mark.parametrize("package", BELOW_CLI)
def test_only_the_cli_exits_or_changes_directory(package: str) -> None:
    assert attribute_uses(package, {("sys", "exit"), ("os", "chdir"), ("os", "_exit")}) == [] or package in (
        "runtime",
        "daemon",
    )
