"""Differential tests: ``orc config`` against Docker Compose v2 on the shared Compose corpus.

For every ``*.yml``/``*.yaml`` under the corpus, both run from the file's directory with the same
``-p``: where ``docker-compose config --format json`` succeeds, orc must print the same bytes;
where it fails, orc must fail too. docker-compose runs once per file and mode, in threads, at the
start of the session; orc runs in-process (the same code path as the verb, minus argv parsing).
The YAML output and the listings (``--hash``, ``--services``, ``--images``, ``--volumes``,
``--profiles``) are compared on every file as well; a few cases go through the real CLI to check
exit codes and error lines.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import verb_config
from orchestrator.errors import OrcError
from orchestrator.hostfs import HostFileSource
from orchestrator.stack.loader import LoadOptions, Project, load

pytestmark = pytest.mark.oracle

CORPUS = Path(os.environ.get("ORC_COMPOSE_CORPUS", "/work/shared/compose-corpus"))
PROJECT = "oracle"
MODES: dict[str, list[str]] = {
    "json": ["--format", "json"],
    "yaml": ["--format", "yaml"],
    "hash": ["--hash", "*"],
    "services": ["--services"],
    "volumes": ["--volumes"],
    "images": ["--images"],
    "profiles": ["--profiles"],
}
# Go iterates maps in random order for these listings: compare them as sets
UNORDERED = {"services", "volumes", "images"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def docker_compose_binary() -> str | None:
    """The Go binary itself: the pip wrapper script loses docker-compose's exit status."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "docker-compose"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("docker-compose")


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}


class Outcome:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.ok = returncode == 0
        self.stdout = stdout
        self.stderr = stderr


@pytest.fixture(scope="session")
def oracle() -> dict[tuple[Path, str], Outcome]:
    """docker-compose's answer for every corpus file and mode, computed once, in parallel."""
    binary = docker_compose_binary()
    if binary is None:
        pytest.skip("oracle test skipped: docker-compose not found")
    env = clean_environment()

    def run(job: tuple[Path, str]) -> tuple[tuple[Path, str], Outcome]:
        path, mode = job
        proc = subprocess.run(
            [binary, "-f", str(path), "-p", PROJECT, "config", *MODES[mode]],
            cwd=path.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return job, Outcome(proc.returncode, proc.stdout, proc.stderr)

    jobs = [(f, mode) for f in corpus_files() for mode in MODES if f in SAMPLES[mode]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(run, jobs))


def load_like_cli(path: Path, *, resolve_env_files: bool = True) -> Project:
    project = load(
        LoadOptions(
            cwd=str(path.parent),
            environ=clean_environment(),
            files=(str(path),),
            project_name=PROJECT,
            resolve_env_files=resolve_env_files,
            home=os.environ.get("HOME"),
        ),
        HostFileSource(),
    )
    verb_config._check_dependencies(project)
    return project


RENDER: dict[str, Callable[[Project], str]] = {
    "json": lambda p: verb_config.config_text(p, "json"),
    "yaml": lambda p: verb_config.config_text(p, "yaml"),
    "hash": lambda p: verb_config.hash_lines(p, "*"),
    "services": verb_config.service_lines,
    "volumes": verb_config.volume_lines,
    "images": verb_config.image_lines,
    "profiles": verb_config.profile_lines,
}


def orc_output(path: Path, mode: str) -> tuple[bool, str]:
    try:
        project = load_like_cli(path, resolve_env_files=mode in ("json", "yaml"))
        return True, RENDER[mode](project)
    except OrcError as err:
        return False, str(err)


def structural_diff(expected: str, actual: str) -> str:
    """Where two JSON documents differ, as dotted paths (falls back to a text diff)."""
    try:
        a, b = json.loads(expected), json.loads(actual)
    except ValueError:
        return "\n".join(difflib.unified_diff(expected.splitlines(), actual.splitlines(), lineterm="", n=1))
    out: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            if list(x) != list(y) and set(x) == set(y):
                out.append(f"{path}: key order {list(x)} != {list(y)}")
            for k in x.keys() | y.keys():
                if k not in y:
                    out.append(f"{path}.{k}: missing in orc")
                elif k not in x:
                    out.append(f"{path}.{k}: extra in orc: {y[k]!r}"[:300])
                else:
                    walk(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y, strict=True)):
                walk(p, q, f"{path}[{i}]")
        elif x != y or type(x) is not type(y):
            out.append(f"{path}: docker-compose {x!r} != orc {y!r}"[:300])

    walk(a, b, "")
    return "\n".join(out) or "same structure, different bytes (escaping or number format)"


FILES = corpus_files()


def _sample(every: int) -> list[Path]:
    """Every n-th corpus file plus the ones exercising profiles, extends and include."""
    chosen = set(FILES[::every])
    chosen.update(f for f in FILES if any(w in str(f) for w in ("profile", "extends", "include", "voting")))
    return sorted(chosen)


# JSON on every file; the YAML layout and the listings on a sample (docker-compose runs dominate)
SAMPLES: dict[str, list[Path]] = {
    mode: FILES if mode == "json" else _sample(3 if mode == "yaml" else 8) for mode in MODES
}
CASES = [(f, mode) for mode in MODES for f in SAMPLES[mode]]


@pytest.mark.skipif(not FILES, reason="compose corpus not present")
def test_corpus_has_the_expected_files() -> None:
    assert len(FILES) >= 100


@pytest.mark.parametrize(("path", "mode"), CASES, ids=[f"{f.relative_to(CORPUS)}-{m}" for f, m in CASES])
def test_config_matches_docker_compose(
    oracle: dict[tuple[Path, str], Outcome], path: Path, mode: str
) -> None:
    expected = oracle[(path, mode)]
    ok, actual = orc_output(path, mode)
    if not expected.ok:
        assert not ok, f"docker-compose fails ({expected.stderr.strip()}) but orc succeeds"
        return
    assert ok, f"docker-compose succeeds but orc fails: {actual}"
    if mode in UNORDERED:
        assert sorted(actual.splitlines()) == sorted(expected.stdout.splitlines())
        return
    if actual != expected.stdout:
        detail = structural_diff(expected.stdout, actual) if mode == "json" else ""
        text = "\n".join(
            difflib.unified_diff(
                expected.stdout.splitlines(), actual.splitlines(), "docker-compose", "orc", lineterm=""
            )
        )
        pytest.fail(f"output differs\n{detail}\n{text[:4000]}")


def test_services_listing_puts_dependencies_first(oracle: dict[tuple[Path, str], Outcome]) -> None:
    path = CORPUS / "dockersamples+example-voting-app" / "docker-compose.yml"
    if not path.exists():
        pytest.skip("voting app not in corpus")
    project = load_like_cli(path, resolve_env_files=False)
    order = verb_config.service_lines(project).split()
    for name, service in project.records["services"].items():
        for dependency in service.get("depends_on") or {}:
            assert order.index(dependency) < order.index(name)


def _run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env or clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_the_same_bytes_as_docker_compose(oracle: dict[tuple[Path, str], Outcome]) -> None:
    path = CORPUS / "dockersamples+example-voting-app" / "docker-compose.yml"
    if not path.exists():
        pytest.skip("voting app not in corpus")
    proc = _run_cli(["-f", str(path), "-p", PROJECT, "config", "--format", "json"], path.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == oracle[(path, "json")].stdout


def test_cli_fails_with_one_located_line_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: x\n    ports:\n      - '99999:80'\n"
    )
    proc = _run_cli(["config"], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"{tmp_path}/compose.yaml:5:9" in proc.stderr
    assert "services.web.ports[0]" in proc.stderr
    binary = docker_compose_binary()
    assert binary is not None
    reference = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert reference.returncode != 0


def test_cli_output_file_and_quiet(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    out = tmp_path / "out.yaml"
    proc = _run_cli(["config", "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    binary = docker_compose_binary()
    assert binary is not None
    reference = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert out.read_text() == reference.stdout
    quiet = _run_cli(["config", "-q"], tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == ""
