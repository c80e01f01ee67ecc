"""Oracle: every Compose file of the shared corpus that Docker Compose accepts binds, with every
key accounted for, and its dependency graph builds.

For each *.yml/*.yaml under /work/shared/compose-corpus (ORC_COMPOSE_CORPUS overrides), run
``docker-compose -f FILE -p corpus config --format json`` from the file's directory; where it
succeeds, ``bind`` must succeed on its output. Where it fails (not a Compose file, missing env
file, cycle, ...) there is nothing to bind. Also checks that data/kitchen-sink.json is still what
Docker Compose prints, and that real ``config --hash`` values ride along.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model import Service
from orchestrator.planner.graph import DependencyGraph
from orchestrator.stack.bind import bind
from tests.unit.model.test_bind import DATA, assert_every_key_accounted_for, unescape_config_output

pytestmark = pytest.mark.oracle

CORPUS = Path(os.environ.get("ORC_COMPOSE_CORPUS", "/work/shared/compose-corpus"))
# Files Docker Compose accepts today; a drop below this means the oracle itself is broken.
MIN_ACCEPTED = 90


def compose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("docker-compose")
    assert executable is not None
    # A clean environment: no COMPOSE_* or variables from the developer's shell leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60)


def oracle_document(path: Path) -> dict[str, Any] | None:
    result = compose("-f", path.name, "-p", "corpus", "config", "--format", "json", cwd=path.parent)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    document: dict[str, Any] = json.loads(unescape_config_output(result.stdout))
    return document


@pytest.fixture(scope="module")
def accepted_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, Docker Compose's document) for every corpus file Docker Compose accepts."""
    if not CORPUS.is_dir():
        pytest.fail(f"compose corpus not found at {CORPUS}")
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    with ThreadPoolExecutor(max_workers=4) as pool:
        documents = list(pool.map(oracle_document, files))
    accepted = [(path, doc) for path, doc in zip(files, documents, strict=True) if doc is not None]
    assert len(accepted) >= MIN_ACCEPTED, f"only {len(accepted)} corpus files accepted by docker-compose"
    return accepted


def test_every_accepted_corpus_file_binds(accepted_documents: list[tuple[Path, dict[str, Any]]]) -> None:
    failures = []
    for path, document in accepted_documents:
        try:
            stack = bind(document, config_hashes={name: "h" for name in document.get("services", {})})
            assert_every_key_accounted_for(document, stack)
            graph = DependencyGraph.from_stack(stack)
            position = {name: i for i, wave in enumerate(graph.start_waves()) for name in wave}
            for name, service in stack.services.items():
                for dependency in service.depends_on:
                    if dependency in position:
                        assert position[dependency] < position[name], f"{name} starts before {dependency}"
        except Exception as exc:
            failures.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
    assert failures == []


def test_orc_loader_binds_to_the_same_model(accepted_documents: list[tuple[Path, dict[str, Any]]]) -> None:
    """What the reconciler sees is the same whether Docker Compose or orc's loader read the file:
    the Stack bound from orc's project equals the one bound from Docker Compose's document."""
    from orchestrator.hostfs import HostFileSource
    from orchestrator.stack.loader import LoadOptions, load

    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    differences = []
    for path, document in accepted_documents:
        options = LoadOptions(
            cwd=str(path.parent),
            environ=environ,
            files=(path.name,),
            project_name="corpus",
            home=environ["HOME"],
        )
        try:
            project = load(options, HostFileSource())
        except Exception as exc:
            differences.append(f"{path.relative_to(CORPUS)}: orc failed to load: {exc}")
            continue
        hashes = {name: "h" for name in document.get("services", {})}
        expected = bind(document, config_hashes=hashes)
        got = bind(
            project.document, config_hashes={name: "h" for name in project.document.get("services", {})}
        )
        if got != expected:
            fields = [
                f"services.{name}.{field}"
                for name in sorted(set(expected.services) | set(got.services))
                for field in Service.__dataclass_fields__
                if getattr(expected.services.get(name), field, None)
                != getattr(got.services.get(name), field, None)
            ]
            differences.append(f"{path.relative_to(CORPUS)}: differs in {fields or 'top-level objects'}")
    assert differences == []


def test_kitchen_sink_fixture_is_what_compose_prints() -> None:
    result = compose(
        "-f",
        "kitchen-sink.compose.yaml",
        "-p",
        "sink",
        "--profile",
        "p1",
        "config",
        "--format",
        "json",
        cwd=DATA,
    )
    assert result.returncode == 0, result.stderr
    saved = (DATA / "kitchen-sink.json").read_text()
    # The saved file was generated in the repository at /work/main; paths differ elsewhere.
    saved = saved.replace("/work/main/tests/unit/model/data", str(DATA.resolve()))
    assert json.loads(result.stdout) == json.loads(saved)


def test_config_hashes_ride_along() -> None:
    project = CORPUS / "dockersamples+example-voting-app"
    result = compose("-p", "vote", "config", "--hash", "*", cwd=project)
    assert result.returncode == 0, result.stderr
    hashes = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.strip())
    document = oracle_document(project / "docker-compose.yml")
    assert document is not None
    stack = bind(document, config_hashes=hashes)
    assert {name: service.config_hash for name, service in stack.services.items()} == hashes
    assert len(set(hashes.values())) == len(hashes) == 5
