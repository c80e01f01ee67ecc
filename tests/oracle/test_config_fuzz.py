"""Randomised differential test: generated two-file projects, orc vs docker-compose.

A seeded generator writes ``compose.yaml`` + ``compose.override.yaml`` pairs mixing awkward
scalars (YAML 1.1 booleans, octal-looking numbers, dates, quotes, tabs, ``${...}``, HTML
characters, unicode) with ports, volumes, healthchecks, sizes, hosts and extensions, then asks
both tools for the JSON document, the YAML document or the config hashes. Every case must agree
(same bytes, or both failing). The seed is fixed so a failure reproduces; set
``ORC_FUZZ_SEED``/``ORC_FUZZ_CASES`` to explore further.
"""

from __future__ import annotations

import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.cli import verb_config
from orchestrator.errors import OrcError
from orchestrator.hostfs import HostFileSource
from orchestrator.stack.loader import LoadOptions, load
from tests.oracle.test_config_oracle import clean_environment, docker_compose_binary

pytestmark = pytest.mark.oracle

SEED = int(os.environ.get("ORC_FUZZ_SEED", "20261126"))
CASES = int(os.environ.get("ORC_FUZZ_CASES", "60"))
SCALARS = [
    "1", "1.0", "1.50", "0.1", "1e3", "-2", "0x10", "010", "true", "yes", "off", "~", "''", '""',
    "'a b'", '"x: y"', "hello world", "'#hash'", "a#b", "'*star'", "'@at'", "caf\u00e9", "'  pad  '",
    '"tab\\there"', '"line\\nbreak"', "${SET}", "${UNSET:-dflt}", "$${ESC}", "'<html>&'", "'x=y'",
    "12345678901234567890", "3.14159265358979", "1_000", ".5", "-.5e-3", "2023-01-01", "'2023-01-01'",
    "null", "'null'", "0o17", "+1", "'[a]'", "a,b", "'- x'", "': c'",
]  # fmt: skip
COMMANDS = ["echo hi", 'sh -c "echo $$HOME && ls"', "[a, b]", "[]", "echo 'quoted arg'", '""']
PORTS = ["80", "8080:80", "127.0.0.1:53:53/udp", "9000-9002:9000-9002", "[::1]:22:22", "1234"]
VOLUMES = ["data:/data", "./src:/src:ro", "/abs:/abs:z", "/anon", "vol2:/v2:nocopy", "~/h:/h"]


def generate(rnd: random.Random) -> str:
    lines = ["services:"]
    for i in range(rnd.randint(1, 3)):
        lines += [f"  s{i}:", f"    image: {rnd.choice(['busybox', 'nginx:1.2', 'reg.io:5000/a/b'])}"]
        if rnd.random() < 0.7:
            lines.append("    environment:")
            lines += [f"      K{j}: {rnd.choice(SCALARS)}" for j in range(rnd.randint(1, 4))]
        if rnd.random() < 0.5:
            lines.append("    labels:")
            lines += [
                f"      - 'l{j}={rnd.choice(['1', 'a b', 'x=y', ''])}'" for j in range(rnd.randint(1, 3))
            ]
        if rnd.random() < 0.5:
            lines.append("    command: " + rnd.choice(COMMANDS))
        if rnd.random() < 0.5:
            lines.append(f"    ports: {[p for p in rnd.sample(PORTS, rnd.randint(1, 3))]}")
        if rnd.random() < 0.4:
            lines.append(f"    volumes: {[v for v in rnd.sample(VOLUMES, rnd.randint(1, 3))]}")
        if rnd.random() < 0.3:
            test = rnd.choice(["curl x", "[CMD, a]", "[NONE]"])
            interval = rnd.choice(["1s", "90s", "1h30m", "500ms", "2m"])
            lines.append(
                f"    healthcheck: {{test: {test}, interval: {interval}, retries: {rnd.randint(0, 5)}}}"
            )
        if rnd.random() < 0.3:
            lines.append(f"    cpus: {rnd.choice(['0.5', '1', '1.25', '0.333', '2.0'])}")
        if rnd.random() < 0.3:
            lines.append(f"    mem_limit: {rnd.choice(['512m', '1g', '1073741824', '1.5g', '100k'])}")
        if rnd.random() < 0.3:
            lines.append(f"    extra_hosts: [{rnd.choice(['a:1.2.3.4', 'b=::1', 'c:[::2]'])}]")
    if rnd.random() < 0.5:
        lines.append("volumes:\n  data:\n  vol2:\n    external: true")
    lines.append("x-meta:\n  k: " + rnd.choice(SCALARS))
    return "\n".join(lines) + "\n"


MODES = {"json": ("--format", "json"), "yaml": ("--format", "yaml"), "hash": ("--hash", "*")}


def _cases() -> list[tuple[int, str, str, str]]:
    rnd = random.Random(SEED)
    return [(i, generate(rnd), generate(rnd), rnd.choice(list(MODES))) for i in range(CASES)]


CASE_LIST = _cases()
ENVIRONMENT = {**clean_environment(), "SET": "value", "EMPTY": ""}


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, bool, str]]:
    binary = docker_compose_binary()
    if binary is None:
        pytest.skip("oracle test skipped: docker-compose not found")
    base = tmp_path_factory.mktemp("fuzz")

    def run(case: tuple[int, str, str, str]) -> tuple[int, tuple[Path, bool, str]]:
        index, main, override, mode = case
        root = base / f"case{index}"
        root.mkdir()
        (root / "compose.yaml").write_text(main)
        (root / "compose.override.yaml").write_text(override)
        proc = subprocess.run(
            [binary, "-p", "fz", "config", *MODES[mode]],
            cwd=root,
            env=ENVIRONMENT,
            capture_output=True,
            text=True,
        )
        return index, (root, proc.returncode == 0, proc.stdout if proc.returncode == 0 else proc.stderr)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(run, CASE_LIST))


@pytest.mark.parametrize(
    ("index", "main", "override", "mode"), CASE_LIST, ids=[f"seed{SEED}-{c[0]}-{c[3]}" for c in CASE_LIST]
)
def test_generated_project_matches_docker_compose(
    answers: dict[int, tuple[Path, bool, str]], index: int, main: str, override: str, mode: str
) -> None:
    root, expected_ok, expected = answers[index]
    try:
        project = load(
            LoadOptions(
                cwd=str(root),
                environ=ENVIRONMENT,
                project_name="fz",
                resolve_env_files=mode != "hash",
                home=ENVIRONMENT.get("HOME"),
            ),
            HostFileSource(),
        )
        verb_config._check_dependencies(project)
        if mode == "hash":
            actual = verb_config.hash_lines(project, "*")
        else:
            actual = verb_config.config_text(project, mode)
        ok = True
    except OrcError as err:
        ok, actual = False, str(err)
    context = f"--- compose.yaml\n{main}--- compose.override.yaml\n{override}"
    if not expected_ok:
        assert not ok, f"docker-compose fails ({expected.strip()}) but orc succeeds\n{context}"
        return
    assert ok, f"docker-compose succeeds but orc fails: {actual}\n{context}"
    assert actual == expected, context
