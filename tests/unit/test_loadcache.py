"""The lifecycle verbs' load cache (``cli.loadcache``): reused only while every input holds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import loadcache
from orchestrator.errors import Problem, StackError
from orchestrator.stack.loader import LoadOptions, load
from orchestrator.stack.project import Project

OPTIONS: dict[str, Any] = {"files": (), "project_name": None, "profiles": (), "interpolate": True}


def _load_and_store(cache: Path, cwd: Path, environ: dict[str, str]) -> tuple[str, Project]:
    key = loadcache.cache_key(str(cwd), environ, OPTIONS)
    source = loadcache.RecordingFileSource()
    project = load(LoadOptions(cwd=str(cwd), environ=environ, files=(), profiles=()), source)
    loadcache.store(cache, key, source.answers, project)
    return key, project


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    work = tmp_path / "app"
    work.mkdir()
    (work / "compose.yaml").write_text(
        "name: demo\nservices:\n  web:\n    image: busybox\n    environment:\n      - GREETING=${GREETING:-hi}\n"
        "  db:\n    image: busybox\n    depends_on: [web]\n"
    )
    return work


def test_the_same_inputs_give_the_stored_project(tmp_path: Path, project_dir: Path) -> None:
    cache = tmp_path / "cache"
    key, loaded = _load_and_store(cache, project_dir, {"PATH": "/bin"})
    hit = loadcache.lookup(cache, key)
    assert hit is not None and hit is not loaded
    assert (hit.name, hit.document, hit.config_hashes, hit.files) == (
        loaded.name,
        loaded.document,
        loaded.config_hashes,
        loaded.files,
    )
    assert stat_mode(cache) == 0o700 and stat_mode(cache / f"{key}.pickle") == 0o600
    # an error found after loading still gets its file:line from a stored project
    located = hit.locate(StackError([Problem("a cycle", path="services.db.depends_on")]))
    assert located.problems[0].file == str(project_dir / "compose.yaml")
    assert located.problems[0].line == 9


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_changed_file_is_seen_by_its_content_not_its_times(tmp_path: Path, project_dir: Path) -> None:
    cache = tmp_path / "cache"
    key, _ = _load_and_store(cache, project_dir, {})
    compose = project_dir / "compose.yaml"
    text = compose.read_text()
    os.utime(compose)  # touched, same content: still the same project
    assert loadcache.lookup(cache, key) is not None
    before = compose.stat()
    compose.write_text(text.replace("image: busybox", "image: busyboy", 1))
    # same size, and the old modification time put back (as within one clock tick)
    os.utime(compose, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert compose.stat().st_size == before.st_size
    assert loadcache.lookup(cache, key) is None


@pytest.mark.parametrize("name", ["compose.override.yaml", ".env"])
def test_a_file_that_appears_where_the_loader_looked_is_seen(
    tmp_path: Path, project_dir: Path, name: str
) -> None:
    cache = tmp_path / "cache"
    key, _ = _load_and_store(cache, project_dir, {})
    (project_dir / name).write_text("GREETING=hello\n" if name == ".env" else "services: {}\n")
    assert loadcache.lookup(cache, key) is None


def test_the_environment_the_options_and_the_loader_code_are_in_the_key(
    tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = loadcache.cache_key(str(project_dir), {"GREETING": "hi"}, OPTIONS)
    assert key == loadcache.cache_key(str(project_dir), {"GREETING": "hi"}, dict(OPTIONS))
    assert key != loadcache.cache_key(str(project_dir), {"GREETING": "hello"}, OPTIONS)
    assert key != loadcache.cache_key(str(tmp_path), {"GREETING": "hi"}, OPTIONS)
    assert key != loadcache.cache_key(str(project_dir), {"GREETING": "hi"}, {**OPTIONS, "profiles": ("x",)})
    monkeypatch.setattr(loadcache, "_loader_code", lambda: [["loader.py", 1, 2]])
    assert key != loadcache.cache_key(str(project_dir), {"GREETING": "hi"}, OPTIONS)


def test_anything_unreadable_is_a_miss_and_old_entries_are_pruned(tmp_path: Path, project_dir: Path) -> None:
    cache = tmp_path / "cache"
    key, _ = _load_and_store(cache, project_dir, {})
    (cache / f"{key}.pickle").write_bytes(b"not a pickle")
    assert loadcache.lookup(cache, key) is None
    (cache / f"{key}.pickle").write_bytes(pickle.dumps({"answers": [], "project": "not a project"}))
    assert loadcache.lookup(cache, key) is None
    for i in range(loadcache.MAX_ENTRIES + 5):
        (cache / f"{i:064x}.pickle").write_bytes(b"x")
        os.utime(cache / f"{i:064x}.pickle", ns=(i, i))
    _load_and_store(cache, project_dir, {"N": "1"})
    assert len(list(cache.glob("*.pickle"))) == loadcache.MAX_ENTRIES
    assert not (cache / f"{0:064x}.pickle").exists()


def test_the_cli_reuses_a_load_only_while_the_files_hold(tmp_path: Path, project_dir: Path) -> None:
    """End to end: a second `ps` loads nothing (no loader, no YAML imported); after an edit the
    files are loaded again."""

    def ps() -> str:
        env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "--root", str(tmp_path / "root"), "ps"],
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "orchestrator.stack.loader" in ps()
    assert "orchestrator.stack.loader" not in ps()
    assert list((tmp_path / "root" / "run" / ".load-cache").glob("*.pickle"))
    (project_dir / "compose.yaml").write_text("name: demo\nservices:\n  web:\n    image: busybox:2\n")
    assert "orchestrator.stack.loader" in ps()
