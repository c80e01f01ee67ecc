"""The loader pipeline on an in-memory FileSource: environment, discovery, names, merges,
extends/include, profiles, errors with positions, and purity (no os.environ, no disk)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from orchestrator.errors import StackError, UsageError
from orchestrator.stack.loader import LoadOptions, Project, load, normalize_project_name
from orchestrator.stack.source import MemoryFileSource

WEB = "services:\n  web:\n    image: busybox\n"


def load_files(
    sources: dict[str, str],
    *,
    cwd: str = "/p",
    env: dict[str, str] | None = None,
    **options: Any,
) -> Project:
    return load(LoadOptions(cwd=cwd, environ=env or {}, **options), MemoryFileSource(sources))


def web(project: Project) -> dict[str, Any]:
    service: dict[str, Any] = project.document["services"]["web"]
    return service


# --- environment ---------------------------------------------------------------------------------


def test_shell_beats_dotenv() -> None:
    files = {"/p/compose.yaml": "services:\n  web:\n    image: ${IMG}\n", "/p/.env": "IMG=dotenv\n"}
    assert web(load_files(files))["image"] == "dotenv"
    assert web(load_files(files, env={"IMG": "shell"}))["image"] == "shell"


def test_dotenv_of_working_dir_then_project_dir() -> None:
    files = {
        "/cwd/.env": "A=cwd\n",
        "/proj/compose.yaml": "services:\n  web:\n    image: ${A}-${B}\n",
        "/proj/.env": "A=proj\nB=proj\n",
    }
    # no -f: discovery from cwd finds nothing, so give the project dir explicitly via -f
    project = load_files(files, cwd="/cwd", files=("/proj/compose.yaml",))
    assert web(project)["image"] == "proj-proj"
    discovered = load_files(
        {**files, "/cwd/compose.yaml": "services:\n  web:\n    image: ${A}\n"}, cwd="/cwd"
    )
    assert web(discovered)["image"] == "cwd"


def test_env_file_option_is_repeatable_and_missing_is_an_error() -> None:
    files = {
        "/p/compose.yaml": "services:\n  web:\n    image: ${A}${B}\n",
        "/p/a.env": "A=a\n",
        "/p/b.env": "A=x\nB=b\n",
    }
    # later files override earlier ones (the shell still beats both)
    assert web(load_files(files, env_files=("a.env", "b.env")))["image"] == "xb"
    assert web(load_files(files, env_files=("a.env", "b.env"), env={"A": "sh"}))["image"] == "shb"
    with pytest.raises(StackError, match="couldn't find env file"):
        load_files(files, env_files=("missing.env",))


def test_compose_disable_env_file() -> None:
    files = {"/p/compose.yaml": "services:\n  web:\n    image: x${A:-off}\n", "/p/.env": "A=on\n"}
    assert web(load_files(files, env={"COMPOSE_DISABLE_ENV_FILE": "true"}))["image"] == "xoff"


def test_compose_file_and_path_separator() -> None:
    files = {"/p/a.yaml": WEB, "/p/b.yaml": "services:\n  web:\n    user: nobody\n"}
    project = load_files(files, env={"COMPOSE_FILE": "a.yaml,b.yaml", "COMPOSE_PATH_SEPARATOR": ","})
    assert web(project)["user"] == "nobody"
    assert project.files == ["/p/a.yaml", "/p/b.yaml"]


def test_os_environ_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMG", "from-os-environ")
    project = load_files({"/p/compose.yaml": "services:\n  web:\n    image: x${IMG}\n"})
    assert web(project)["image"] == "x"
    assert 'The "IMG" variable is not set. Defaulting to a blank string.' in project.warnings
    assert os.environ["IMG"] == "from-os-environ"


def test_only_the_file_source_is_read() -> None:
    source = MemoryFileSource({"/p/compose.yaml": WEB, "/p/.env": "A=1\n", "/elsewhere/x": ""})
    load(LoadOptions(cwd="/p", environ={}), source)
    assert sorted(set(source.reads)) == ["/p/.env", "/p/compose.yaml"]


# --- files ---------------------------------------------------------------------------------------------


def test_discovery_walks_up_and_takes_the_override() -> None:
    files = {
        "/p/compose.yaml": WEB,
        "/p/compose.override.yaml": "services:\n  web:\n    user: nobody\n",
        "/p/a/b/.keep": "",
    }
    project = load_files(files, cwd="/p/a/b")
    assert project.files == ["/p/compose.yaml", "/p/compose.override.yaml"]
    assert project.working_dir == "/p"
    assert web(project)["user"] == "nobody"


def test_discovery_order_of_names() -> None:
    files = {"/p/docker-compose.yml": "services: {old: {image: x}}\n", "/p/compose.yml": WEB}
    project = load_files(files)
    assert list(project.document["services"]) == ["web"]
    assert any("multiple config files" in w for w in project.warnings)


def test_no_file_is_an_error() -> None:
    with pytest.raises(StackError, match="no configuration file provided"):
        load_files({"/p/other.yaml": WEB})


def test_merge_rules_across_files() -> None:
    base = (
        "services:\n  web:\n    image: busybox\n    command: [a, b]\n    entrypoint: [x]\n"
        "    ports: ['8080:80']\n    environment: {A: '1'}\n    healthcheck: {test: [CMD, a], interval: 5s}\n"
        "    volumes: ['./a:/data']\n"
    )
    over = (
        "services:\n  web:\n    command: c\n    ports: ['8080:80', '9090:90']\n    environment: [B=2]\n"
        "    healthcheck: {test: [CMD, b]}\n    volumes: ['./b:/data']\n"
    )
    project = load_files({"/p/a.yaml": base, "/p/b.yaml": over}, files=("a.yaml", "b.yaml"))
    w = web(project)
    assert w["command"] == ["c"]
    assert w["entrypoint"] == ["x"]
    assert [p["published"] for p in w["ports"]] == ["8080", "9090"]
    assert w["environment"] == {"A": "1", "B": "2"}
    assert w["healthcheck"] == {"test": ["CMD", "b"], "interval": "5s"}
    assert w["volumes"] == [
        {"type": "bind", "source": "/p/b", "target": "/data", "bind": {"create_host_path": True}}
    ]


def test_multi_document_file_merges_like_successive_files() -> None:
    project = load_files({"/p/compose.yaml": WEB + "---\nservices:\n  web:\n    user: nobody\n"})
    assert web(project)["user"] == "nobody"


def test_reset_and_override() -> None:
    files = {
        "/p/compose.yaml": "services:\n  web:\n    image: busybox\n    ports: ['80:80']\n    environment: {A: '1'}\n",
        "/p/compose.override.yaml": "services:\n  web:\n    ports: !reset []\n    environment: !override {B: '2'}\n",
    }
    w = web(load_files(files))
    assert "ports" not in w
    assert w["environment"] == {"B": "2"}


def test_extends_across_files_with_relative_paths() -> None:
    files = {
        "/p/compose.yaml": "services:\n  web:\n    extends: {file: lib/base.yaml, service: app}\n  worker:\n    extends: web\n",
        "/p/lib/base.yaml": "services:\n  core:\n    image: busybox\n    volumes: ['./data:/data']\n  app:\n    extends: core\n    user: nobody\n",
    }
    project = load_files(files)
    for name in ("web", "worker"):
        service = project.document["services"][name]
        assert service["image"] == "busybox" and service["user"] == "nobody"
        assert service["volumes"][0]["source"] == "/p/lib/data"


def test_extends_cycle_is_an_error() -> None:
    files = {"/p/compose.yaml": "services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n"}
    with pytest.raises(StackError, match="Circular reference"):
        load_files(files)


def test_include_has_its_own_project_dir_and_env() -> None:
    files = {
        "/p/compose.yaml": "include: [sub/compose.yaml]\nservices:\n  web:\n    image: busybox\n",
        "/p/sub/compose.yaml": "services:\n  db:\n    image: ${DB}\n    volumes: ['./d:/d']\n",
        "/p/sub/.env": "DB=postgres\n",
    }
    db = load_files(files).document["services"]["db"]
    assert db["image"] == "postgres"
    assert db["volumes"][0]["source"] == "/p/sub/d"


def test_include_conflict_is_an_error() -> None:
    files = {
        "/p/compose.yaml": "include: [sub.yaml]\nservices:\n  db:\n    image: mysql\n",
        "/p/sub.yaml": "services:\n  db:\n    image: postgres\n",
    }
    with pytest.raises(StackError, match="conflicts with imported resource"):
        load_files(files)


def test_profiles() -> None:
    files = {"/p/compose.yaml": WEB + "  dbg:\n    image: x\n    profiles: [debug]\n"}
    assert list(load_files(files).document["services"]) == ["web"]
    assert list(load_files(files, profiles=("debug",)).document["services"]) == ["dbg", "web"]
    assert list(load_files(files, env={"COMPOSE_PROFILES": "debug"}).document["services"]) == ["dbg", "web"]
    assert list(load_files(files, profiles=("*",)).document["services"]) == ["dbg", "web"]


# --- project name ------------------------------------------------------------------------------------


def test_project_name_precedence() -> None:
    files = {"/p/My Dir/compose.yaml": "name: From_File\n" + WEB, "/p/Other Dir/compose.yaml": WEB}
    assert load_files(files, cwd="/p/My Dir", project_name="cli").name == "cli"
    assert load_files(files, cwd="/p/My Dir", env={"COMPOSE_PROJECT_NAME": "env"}).name == "env"
    assert load_files(files, cwd="/p/My Dir").name == "from_file"
    assert load_files(files, cwd="/p/Other Dir").name == "otherdir"


def test_invalid_project_name_is_rejected() -> None:
    with pytest.raises(UsageError, match="invalid project name"):
        load_files({"/p/compose.yaml": WEB}, project_name="Not Valid")


@pytest.mark.parametrize(("raw", "normal"), [("My App", "myapp"), ("_-x", "x"), ("a.b", "ab"), ("ÄÖ1", "1")])
def test_normalize_project_name(raw: str, normal: str) -> None:
    assert normalize_project_name(raw) == normal


def test_project_name_feeds_interpolation_and_resource_names() -> None:
    files = {
        "/p/compose.yaml": "services:\n  web:\n    image: ${COMPOSE_PROJECT_NAME}\n    volumes: ['data:/d']\nvolumes:\n  data:\n"
    }
    project = load_files(files, project_name="demo")
    assert web(project)["image"] == "demo"
    assert project.document["volumes"]["data"]["name"] == "demo_data"
    assert project.document["networks"]["default"]["name"] == "demo_default"


# --- canonical form -------------------------------------------------------------------------------------


def test_canonical_long_form() -> None:
    text = (
        "services:\n  web:\n    image: busybox\n    build: ./app\n    depends_on: [db]\n"
        "    ports: ['127.0.0.1:8080:80/udp']\n    environment: [A=1, B]\n    healthcheck: {test: curl x}\n"
        "    secrets: [s]\n  db:\n    image: postgres\nsecrets:\n  s: {file: ./s.txt}\n"
    )
    w = web(load_files({"/p/compose.yaml": text}, env={"B": "from-env"}))
    assert w["build"] == {"context": "/p/app", "dockerfile": "Dockerfile"}
    assert w["depends_on"] == {"db": {"condition": "service_started", "required": True}}
    assert w["ports"] == [
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "udp"}
    ]
    assert w["environment"] == {"A": "1", "B": "from-env"}
    assert w["healthcheck"] == {"test": ["CMD-SHELL", "curl x"]}
    assert w["secrets"] == [{"source": "s", "target": "/run/secrets/s"}]
    assert w["networks"] == {"default": None}
    assert w["command"] is None


def test_unused_resources_are_dropped() -> None:
    text = WEB + "volumes:\n  unused:\nnetworks:\n  unused:\n"
    document = load_files({"/p/compose.yaml": text}).document
    assert "volumes" not in document
    assert list(document["networks"]) == ["default"]


def test_config_hash_ignores_build_scale_depends_on_profiles() -> None:
    base = "services:\n  web:\n    image: busybox\n    environment: {A: '1'}\n"
    extra = (
        "    build: .\n    scale: 2\n    depends_on: [db]\n    profiles: [p]\n  db:\n    image: postgres\n"
    )
    plain = load_files({"/p/compose.yaml": base}, project_name="t")
    decorated = load_files({"/p/compose.yaml": base + extra}, project_name="t", profiles=("p",))
    # the value docker-compose 2.40.3 prints for this service (`config --hash web`)
    expected = "ab5c69c42a9fe4cb0729aeca1bd56b790862484d086aca3a4005400fbc2fe5a8"
    assert plain.config_hashes["web"] == expected
    assert decorated.config_hashes["web"] == expected
    changed = load_files({"/p/compose.yaml": base.replace("'1'", "'2'")}, project_name="t")
    assert changed.config_hashes["web"] != expected


def test_bound_stack_is_built() -> None:
    project = load_files({"/p/compose.yaml": WEB}, project_name="t")
    assert project.stack is not None


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "services:\n  web:\n    image: x\n    ports: ['99999:80']\n",
            (4, 13, "services.web.ports[0]"),
            "invalid hostPort",
        ),
        (
            "services:\n  web:\n    image: x\n    imagee: y\n",
            (4, 13, "services.web.imagee"),
            "additional properties",
        ),
        ("services:\n  web:\n    image: ${X:?set X}\n", (3, 12, "services.web.image"), "required variable X"),
        (
            "services:\n  web:\n    image: x\n    privileged: maybe\n",
            (4, 17, "services.web.privileged"),
            "privileged",
        ),
        (
            "services:\n  web:\n    image: x\n    depends_on: [db]\n",
            (4, 17, "services.web.depends_on.db"),
            "undefined service",
        ),
    ],
)
def test_errors_carry_file_line_column_and_path(text: str, where: tuple[int, int, str], message: str) -> None:
    with pytest.raises(StackError) as err:
        load_files({"/p/compose.yaml": text})
    [problem] = err.value.problems
    assert problem.file == "/p/compose.yaml"
    assert (problem.line, problem.column, problem.path) == where
    assert message in problem.message
    assert str(problem).startswith(f"/p/compose.yaml:{where[0]}:{where[1]} {where[2]}: ")


def test_alias_bomb_and_huge_file_through_the_loader() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(StackError, match="excessive aliasing"):
        load_files({"/p/compose.yaml": bomb})
    with pytest.raises(StackError, match="too large"):
        load_files({"/p/compose.yaml": "x-big: " + "a" * (50 * 1024 * 1024)})


def test_empty_file_is_an_error() -> None:
    with pytest.raises(StackError, match="empty compose file"):
        load_files({"/p/compose.yaml": ""})


# --- keys with a twin under deploy.resources -------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "part", "twin", "twin_value"),
    [
        ("cpus", "0.5", "limits", "cpus", "0.25"),
        ("mem_limit", "64m", "limits", "memory", "32m"),
        ("mem_reservation", "16m", "reservations", "memory", "8m"),
        ("pids_limit", "10", "limits", "pids", "20"),
    ],
)
def test_distinct_values_on_a_key_and_its_deploy_twin_are_an_error(
    key: str, value: str, part: str, twin: str, twin_value: str
) -> None:
    def compose(twin_setting: str) -> str:
        return (
            f"services:\n  web:\n    image: busybox\n    {key}: {value}\n"
            f"    deploy:\n      resources:\n        {part}:\n          {twin}: {twin_setting}\n"
        )

    load_files({"/p/compose.yaml": compose(value)})  # the same value twice is fine
    with pytest.raises(
        StackError, match=f"can't set distinct values on '{key}' and 'deploy.resources.{part}.{twin}'"
    ):
        load_files({"/p/compose.yaml": compose(twin_value)})
