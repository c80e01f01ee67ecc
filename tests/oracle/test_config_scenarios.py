"""Differential tests on small hand-written projects: the loader rules the corpus does not reach.

Each scenario is a set of files, command-line arguments and environment; docker-compose and orc
run on a copy of it in a temporary directory and must agree (same bytes on success, both failing
otherwise). Covers env-file precedence, ``--env-file``, ``COMPOSE_*`` variables, discovery and
override files, multi-document files, ``!reset``/``!override``, merge rules across ``-f`` files,
``extends``/``include`` corners, interpolation operators and casts, and project-name rules.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.cli import verb_config
from orchestrator.errors import OrcError
from orchestrator.hostfs import HostFileSource
from orchestrator.stack.loader import LoadOptions, load
from tests.oracle.test_config_oracle import clean_environment, docker_compose_binary

pytestmark = pytest.mark.oracle


@dataclass(frozen=True)
class Scenario:
    name: str
    files: dict[str, str]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."
    mode: tuple[str, ...] = ("--format", "json")
    services: tuple[str, ...] = ()


WEB = "services:\n  web:\n    image: busybox\n"

# most of the service, network, volume, secret and config attributes Compose knows
KITCHEN_SINK = """\
name: big
x-common: &common
  restart: unless-stopped
  logging:
    driver: json-file
    options: {max-size: 10m, max-file: 3}
services:
  api:
    <<: *common
    image: api:1.0
    build:
      context: ./api
      dockerfile: Dockerfile.dev
      args: {VERSION: 1.2, DEBUG: true, EMPTY: null}
      labels: [a=b]
      cache_from: [api:cache]
      secrets: [tok]
      ssh: [default]
      target: dev
      shm_size: 256m
      extra_hosts: {h1: 10.0.0.1}
      ulimits: {nofile: 1024}
      platforms: [linux/amd64]
    deploy:
      mode: replicated
      replicas: 2
      labels: {tier: api}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 1m, max_failure_ratio: 0.3, order: start-first}
      rollback_config: {parallelism: 1}
      resources:
        limits: {cpus: '1.5', memory: 512M, pids: 100}
        reservations:
          cpus: 0.25
          memory: 128M
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ['0']
            - capabilities: [gpu]
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 120s}
      placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 1}
      endpoint_mode: vip
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sda, rate: 12mb}]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 1m30s
      timeout: 10s
      retries: 3
      start_period: 40s
      start_interval: 5s
    stop_grace_period: 1m
    stop_signal: SIGTERM
    tmpfs: [/run, "/tmp:size=64m"]
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs: {size: 1000000, mode: 01777}
      - type: volume
        source: data
        target: /data
        volume: {nocopy: true, subpath: sub}
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
        bind: {propagation: rslave, create_host_path: false}
    networks:
      front:
        aliases: [api.local]
        ipv4_address: 172.16.238.10
        priority: 100
      back: {}
    extra_hosts:
      somehost: "162.242.195.82"
      otherhost: ["50.31.209.229", "::1"]
    ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}
    sysctls: [net.core.somaxconn=1024, net.ipv4.tcp_syncookies=0]
    environment:
      INT: 1
      FLOAT: 1.50
      BOOL: true
      NUL:
      STR: "x"
      BIG: 12345678901234
    labels:
      com.example.num: 5
      com.example.float: 0.1
    ports:
      - target: 80
        published: 8080
        protocol: tcp
        mode: host
        name: web
        app_protocol: http
      - "3000-3002:3000-3002"
      - "49153-49155:22"
    expose: ["3000", 4000, "5000-5001"]
    user: "1000"
    working_dir: /app
    dns: 8.8.8.8
    dns_search: example.com
    dns_opt: [use-vc]
    cap_add: [NET_ADMIN, SYS_PTRACE, NET_ADMIN]
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true]
    devices:
      - source: /dev/ttyUSB0
        target: /dev/ttyUSB0
        permissions: rwm
      - /dev/sda:/dev/xvda:r
    cpus: 1.5
    cpu_shares: 512
    cpuset: "0,1"
    mem_limit: 512m
    mem_reservation: 128M
    memswap_limit: 1g
    mem_swappiness: 60
    oom_score_adj: -500
    pids_limit: 100
    shm_size: 64M
    init: true
    privileged: false
    read_only: true
    stdin_open: true
    tty: true
    hostname: api
    domainname: example.com
    mac_address: 02:42:ac:11:65:43
    secrets:
      - tok
      - source: db_pass
        target: /run/secrets/db
        uid: "103"
        gid: "103"
        mode: 0440
    configs:
      - source: cfg
        target: /etc/cfg
    depends_on:
      db:
        condition: service_healthy
        restart: true
    post_start:
      - command: ["echo", "hi"]
        user: root
    pre_stop:
      - command: echo bye
    develop:
      watch:
        - path: ./src
          action: sync
          target: /app/src
          ignore: node_modules/
        - path: package.json
          action: rebuild
    pull_policy: always
    annotations: {a.b: c}
    group_add: [mail]
    storage_opt: {size: 1G}
    runtime: runc
    platform: linux/amd64
    isolation: default
    cgroup_parent: m-executor-abcd
    oom_kill_disable: false
    credential_spec: {file: my-credential-spec.json}
    gpus: all
  db:
    image: postgres:16
    healthcheck:
      disable: true
    network_mode: "service:cache"
    volumes_from: [cache:ro]
    links: [cache:web]
    entrypoint: ["/entry.sh"]
    command: []
    env_file: [db.env]
    label_file: [db.labels]
  cache:
    image: redis
    healthcheck:
      test: ["NONE"]
    network_mode: host
    scale: 2
networks:
  front:
    driver: bridge
    driver_opts: {com.docker.network.bridge.name: br0}
    enable_ipv6: true
    ipam:
      driver: default
      config:
        - subnet: 172.16.238.0/24
          gateway: 172.16.238.1
          ip_range: 172.16.238.128/25
          aux_addresses: {host1: 172.16.238.5}
    labels: {a: b}
  back:
    external: true
    name: shared_back
volumes:
  data:
    driver: local
    driver_opts: {type: none, o: bind, device: ./data}
    labels: [x=y]
secrets:
  tok:
    file: ./tok.txt
  db_pass:
    environment: HOME
configs:
  cfg:
    content: |
      hello
      world
"""
KITCHEN_FILES = {"compose.yaml": KITCHEN_SINK, "db.env": "A=1\nB=two\n", "db.labels": "lbl=1\n"}

SCENARIOS = [
    Scenario("plain", {"compose.yaml": WEB}),
    Scenario("discovery walks up", {"compose.yaml": WEB, "sub/dir/.keep": ""}, cwd="sub/dir"),
    Scenario(
        "discovery prefers compose.yaml",
        {"compose.yaml": WEB, "docker-compose.yml": "services: {x: {image: y}}\n"},
    ),
    Scenario(
        "override file is merged",
        {"compose.yaml": WEB, "compose.override.yaml": "services:\n  web:\n    command: echo hi\n"},
    ),
    Scenario("no file at all fails", {"other.yaml": WEB}),
    Scenario(
        "shell beats .env",
        {"compose.yaml": "services:\n  web:\n    image: ${IMG}\n", ".env": "IMG=fromdotenv\n"},
        env={"IMG": "fromshell"},
    ),
    Scenario(
        "dotenv feeds interpolation",
        {"compose.yaml": "services:\n  web:\n    image: ${IMG}\n", ".env": "IMG=x\n"},
    ),
    Scenario(
        "env-file option replaces .env",
        {
            "compose.yaml": "services:\n  web:\n    image: ${IMG:-none}\n",
            ".env": "IMG=a\n",
            "alt.env": "IMG=b\n",
        },
        args=("--env-file", "alt.env"),
    ),
    Scenario(
        "env-file repeated: last wins",
        {"compose.yaml": "services:\n  web:\n    image: ${IMG}\n", "a.env": "IMG=a\n", "b.env": "IMG=b\n"},
        args=("--env-file", "a.env", "--env-file", "b.env"),
    ),
    Scenario("missing env-file fails", {"compose.yaml": WEB}, args=("--env-file", "nope.env")),
    Scenario(
        "COMPOSE_DISABLE_ENV_FILE",
        {"compose.yaml": "services:\n  web:\n    image: ${IMG:-off}\n", ".env": "IMG=on\n"},
        env={"COMPOSE_DISABLE_ENV_FILE": "1"},
    ),
    Scenario(
        "COMPOSE_FILE and separator",
        {"a.yaml": WEB, "b.yaml": "services:\n  web:\n    user: nobody\n"},
        env={"COMPOSE_FILE": "a.yaml;b.yaml", "COMPOSE_PATH_SEPARATOR": ";"},
    ),
    Scenario(
        "COMPOSE_PROJECT_NAME",
        {"compose.yaml": "name: fromfile\n" + WEB},
        env={"COMPOSE_PROJECT_NAME": "fromenv"},
    ),
    Scenario("name from file, interpolated", {"compose.yaml": "name: My_${X:-proj}\n" + WEB}),
    Scenario(
        "-p beats everything",
        {"compose.yaml": "name: fromfile\n" + WEB},
        args=("-p", "given"),
        env={"COMPOSE_PROJECT_NAME": "e"},
    ),
    Scenario("invalid -p", {"compose.yaml": WEB}, args=("-p", "Bad Name")),
    Scenario(
        "profiles from COMPOSE_PROFILES",
        {"compose.yaml": WEB + "  dbg:\n    image: x\n    profiles: [debug]\n"},
        env={"COMPOSE_PROFILES": "debug"},
    ),
    Scenario(
        "profile flag",
        {"compose.yaml": WEB + "  dbg:\n    image: x\n    profiles: [debug]\n"},
        args=("--profile", "debug"),
        mode=("--profiles",),
    ),
    Scenario(
        "multi-document file merges",
        {"compose.yaml": WEB + "---\nservices:\n  web:\n    environment: [A=1]\n"},
    ),
    Scenario(
        "reset and override tags",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    ports: ['80:80']\n    environment: {A: '1', B: '2'}\n",
            "compose.override.yaml": "services:\n  web:\n    ports: !reset []\n    environment: !override {C: '3'}\n",
        },
    ),
    Scenario(
        "merge rules across files",
        {
            "a.yaml": "services:\n  web:\n    image: busybox\n    command: [a, b]\n    ports: ['8080:80', '9090:90']\n"
            "    volumes: ['./x:/x']\n    environment: {A: '1'}\n    labels: [l=1]\n"
            "    healthcheck: {test: [CMD, a], interval: 5s}\n    dns: 1.1.1.1\n",
            "b.yaml": "services:\n  web:\n    command: c\n    ports: ['8080:80', '7070:70']\n"
            "    volumes: ['./y:/x']\n    environment: [B=2]\n    labels: {m: '2'}\n"
            "    healthcheck: {test: [CMD, b]}\n    dns: [8.8.8.8]\n",
        },
        args=("-f", "a.yaml", "-f", "b.yaml"),
    ),
    Scenario(
        "yaml 1.2 scalars",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    environment:\n      A: yes\n      B: on\n"
            "      C: 22:22\n      D: 0x1F\n      E: 1_000\n      F: 1.50\n      G: ~\n      H: 0777\n"
            "    labels:\n      a: no\n    privileged: 'true'\n    tty: off\n"
        },
    ),
    Scenario("duplicate key fails", {"compose.yaml": WEB + "    image: other\n"}),
    Scenario(
        "repeated merge key fails",
        {
            "compose.yaml": "x-a: &a {image: a}\nx-b: &b {user: b}\nservices:\n  web:\n    <<: *a\n    <<: *b\n"
        },
    ),
    Scenario(
        "anchors and merge keys",
        {
            "compose.yaml": "x-base: &base\n  image: busybox\n  environment: {A: '1'}\nservices:\n  web:\n    <<: *base\n    user: nobody\n"
        },
    ),
    Scenario(
        "interpolation operators",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    environment:\n"
            "      A: ${SET}\n      B: ${UNSET:-dflt}\n      C: ${EMPTY:-dflt}\n      D: ${EMPTY-dflt}\n"
            "      E: ${SET:+alt}\n      F: ${EMPTY+alt}\n      G: ${UNSET:-${SET}x}\n      H: $$SET\n"
            "      I: $SET.$SET\n      J: ${UNSET}\n      K: ${SET?need}\n"
        },
        env={"SET": "s", "EMPTY": ""},
    ),
    Scenario(
        "required variable", {"compose.yaml": "services:\n  web:\n    image: ${NEEDED:?please set it}\n"}
    ),
    Scenario("invalid template", {"compose.yaml": "services:\n  web:\n    image: ${bad-}x}\n    user: ${\n"}),
    Scenario(
        "keys are not interpolated",
        {"compose.yaml": "services:\n  web:\n    image: busybox\n    labels:\n      ${K}: v\n"},
        env={"K": "k"},
    ),
    Scenario(
        "casts at compose paths",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    privileged: ${P}\n    cpus: ${C}\n    ports:\n      - target: ${T}\n        published: '8080'\n"
        },
        env={"P": "true", "C": "0.5", "T": "80"},
    ),
    Scenario(
        "bad cast fails",
        {"compose.yaml": "services:\n  web:\n    image: busybox\n    privileged: ${P}\n"},
        env={"P": "maybe"},
    ),
    Scenario(
        "extends in file and nested",
        {
            "compose.yaml": "services:\n  web:\n    extends: {file: base/common.yaml, service: app}\n    user: nobody\n"
            "  worker:\n    extends: web\n",
            "base/common.yaml": "services:\n  core:\n    image: busybox\n    volumes: ['./data:/data']\n"
            "  app:\n    extends: core\n    env_file: app.env\n",
            "base/app.env": "X=1\n",
        },
    ),
    Scenario(
        "include with own env and dir",
        {
            "compose.yaml": "include:\n  - sub/compose.yaml\nservices:\n  web:\n    image: busybox\n    depends_on: [db]\n",
            "sub/compose.yaml": "services:\n  db:\n    image: ${DBIMG}\n    volumes: ['./d:/d']\n",
            "sub/.env": "DBIMG=postgres\n",
        },
    ),
    Scenario(
        "env_file folded into environment",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    env_file: [a.env, {path: missing.env, required: false}]\n    environment: {B: explicit}\n",
            "a.env": "# comment\nexport A=1\nB=fromfile\nC='single $A'\nD=\"double ${A}\\n\"\nE=unquoted # comment\n",
        },
    ),
    Scenario(
        "long syntax everywhere",
        {
            "compose.yaml": "services:\n  web:\n    image: busybox\n    ports: ['127.0.0.1:8000-8001:80-81/udp', '[::1]:53:53', 9000]\n"
            "    volumes: ['data:/data:ro,nocopy', '/host:/c:z', 'anon', '~/x:/y']\n    expose: [80, '90']\n"
            "    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 5}\n    stop_grace_period: 1m30s\n"
            "    mem_limit: 50M\n    shm_size: 64m\n    extra_hosts: ['a:1.2.3.4', 'b=::1']\n"
            "    secrets: [s]\n    configs: [{source: c, target: /c, mode: 0440}]\n    devices: ['/dev/null']\n"
            "    deploy: {replicas: 2, resources: {limits: {cpus: '0.5', memory: 50M}}}\n"
            "volumes:\n  data:\nsecrets:\n  s: {file: ./s.txt}\nconfigs:\n  c: {content: hello}\n",
        },
    ),
    Scenario("bad port", {"compose.yaml": WEB + "    ports: ['1.2.3:80:80']\n"}),
    Scenario("bad volume", {"compose.yaml": WEB + "    volumes: ['a:b:c:d']\n"}),
    Scenario("unknown key", {"compose.yaml": WEB + "    imagee: x\n"}),
    Scenario("wrong type", {"compose.yaml": WEB + "    ports: 80\n"}),
    Scenario("yaml syntax error", {"compose.yaml": "services:\n  web:\n   image: [\n"}),
    Scenario(
        "dependency cycle",
        {"compose.yaml": "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n"},
    ),
    Scenario("undefined dependency", {"compose.yaml": "services:\n  a: {image: x, depends_on: [b]}\n"}),
    Scenario(
        "dollar in values is escaped",
        {"compose.yaml": "services:\n  web:\n    image: busybox\n    command: echo $$HOME\n"},
    ),
    Scenario(
        "html characters escaped in json",
        {"compose.yaml": "services:\n  web:\n    image: busybox\n    command: [sh, -c, 'a && b < c > d']\n"},
    ),
    Scenario(
        "hash of every service",
        {"compose.yaml": WEB + "    environment: [A=1]\n  db:\n    image: postgres\n    ports: ['5432']\n"},
        mode=("--hash", "*"),
    ),
    Scenario(
        "no interpolation, json",
        {
            "compose.yaml": "services:\n  web:\n    image: x${TAG:-1}\n    ports: ['${P:-80}:80', '90:90']\n"
            "    environment: [A=1, HOME]\n    volumes: ['${X}:/x']\n    cpus: ${C:-1.5}\n"
            "  db:\n    image: pg\n    profiles: [x]\nvolumes:\n  v: {}\n"
        },
        mode=("--no-interpolate", "--format", "json"),
    ),
    Scenario(
        "no interpolation, yaml",
        {"compose.yaml": "services:\n  web:\n    image: x${TAG:-1}\n    command: echo $$HOME\n"},
        mode=("--no-interpolate",),
    ),
    Scenario(
        "selected services and their dependencies",
        {
            "compose.yaml": "services:\n  web:\n    image: x\n    depends_on: [db]\n    volumes: [ww:/w]\n"
            "  db:\n    image: pg\n  other:\n    image: o\n    volumes: [vv:/v]\n    depends_on: [web]\n"
            "volumes:\n  vv: {}\n  ww: {}\n"
        },
        services=("web",),
    ),
    Scenario("unknown selected service", {"compose.yaml": WEB}, services=("nope",)),
    Scenario(
        "ports de-duplicated by key, number and string differ",
        {
            "a.yaml": "services:\n  web:\n    image: x\n    ports: [{published: 9200, target: 9200}, '80:80']\n",
            "b.yaml": "services:\n  web:\n    ports: ['9200:9200', '80:80', {published: '81', target: 81}]\n",
        },
        args=("-f", "a.yaml", "-f", "b.yaml"),
    ),
    Scenario(
        "COMPOSE_* variables from .env",
        {
            ".env": "COMPOSE_FILE=one.yaml:two.yaml\nCOMPOSE_PROJECT_NAME=fromdotenv\nCOMPOSE_PROFILES=extra\n",
            "one.yaml": WEB,
            "two.yaml": "services:\n  more:\n    image: y\n    profiles: [extra]\n",
        },
    ),
    Scenario(
        "include with env_file and project_directory",
        {
            "compose.yaml": "include:\n  - path: inc/compose.yaml\n    project_directory: other\n    env_file: inc/vars.env\n"
            "services:\n  web:\n    image: busybox\n",
            "inc/compose.yaml": "services:\n  side:\n    image: ${SIDE}\n    build: ./ctx\n",
            "inc/vars.env": "SIDE=sidecar\n",
        },
    ),
    Scenario(
        "extends with reset",
        {
            "compose.yaml": "services:\n  base:\n    image: busybox\n    ports: ['80:80']\n    environment: {A: '1'}\n"
            "  web:\n    extends: base\n    ports: !reset []\n    environment: !override {B: '2'}\n",
        },
    ),
    Scenario(
        "required variable in .env",
        {"compose.yaml": WEB, ".env": "A=${NOPE:?must be set}\n"},
    ),
    Scenario(
        "unquoted date in a value fails",
        {"compose.yaml": WEB + "    environment:\n      BUILT: 2023-01-01\n"},
    ),
    Scenario("unquoted date in an extension, json", {"compose.yaml": WEB + "x-meta:\n  at: 2023-01-01\n"}),
    Scenario(
        "unquoted date in an extension, yaml",
        {"compose.yaml": WEB + "x-meta:\n  at: 2023-1-2 3:04:05.50\n"},
        mode=(),
    ),
    Scenario(
        "yaml quoting of special characters",
        {
            "compose.yaml": WEB
            + "    environment:\n      T: \"tab\\there\"\n      D: '2023-01-01'\n      H: '#x'\n      U: caf\u00e9\n"
        },
        mode=(),
    ),
    Scenario("kitchen sink, json", KITCHEN_FILES),
    Scenario("kitchen sink, yaml", KITCHEN_FILES, mode=()),
    Scenario("kitchen sink, hashes", KITCHEN_FILES, mode=("--hash", "*")),
    Scenario(
        "yaml output",
        {
            "compose.yaml": WEB
            + "    command: ['a: b', '*x', 'yes', '1', '']\n    environment: {MULTI: \"a\\nb\"}\n"
        },
        mode=(),
    ),
]


def _materialise(root: Path, scenario: Scenario) -> None:
    for name, text in scenario.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, bool, str]]]:
    binary = docker_compose_binary()
    if binary is None:
        pytest.skip("oracle test skipped: docker-compose not found")
    base = tmp_path_factory.mktemp("scenarios")

    def run(scenario: Scenario) -> tuple[str, tuple[Path, bool, str]]:
        root = base / scenario.name.replace(" ", "_")
        _materialise(root, scenario)
        cwd = root / scenario.cwd
        cwd.mkdir(parents=True, exist_ok=True)
        env = {**clean_environment(), **scenario.env}
        proc = subprocess.run(
            [binary, *scenario.args, "config", *scenario.mode, *scenario.services],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        return scenario.name, (
            cwd,
            proc.returncode == 0,
            proc.stdout if proc.returncode == 0 else proc.stderr,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        yield dict(pool.map(run, SCENARIOS))


def _orc(scenario: Scenario, cwd: Path) -> tuple[bool, str]:
    args = list(scenario.args)
    files: list[str] = []
    env_files: list[str] = []
    profiles: list[str] = []
    name = None
    while args:
        flag = args.pop(0)
        value = args.pop(0)
        {"-f": files, "--env-file": env_files, "--profile": profiles}.get(flag, []).append(value)
        if flag == "-p":
            name = value
    mode = scenario.mode
    raw = "--no-interpolate" in mode
    try:
        project = load(
            LoadOptions(
                cwd=str(cwd),
                environ={**clean_environment(), **scenario.env},
                files=tuple(files),
                env_files=tuple(env_files),
                profiles=tuple(profiles),
                project_name=name,
                resolve_env_files=mode in ((), ("--format", "json")),
                home=os.environ.get("HOME"),
                interpolate=not raw,
                services=scenario.services,
            ),
            HostFileSource(),
        )
        if not raw:
            verb_config._check_dependencies(project)
    except OrcError as err:
        return False, str(err)
    if mode == ("--hash", "*"):
        return True, verb_config.hash_lines(project, "*")
    if mode == ("--profiles",):
        return True, verb_config.profile_lines(project)
    fmt = "json" if "json" in mode else "yaml"
    return True, verb_config.config_text(project, fmt, interpolated=not raw)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_matches_docker_compose(
    workspace: dict[str, tuple[Path, bool, str]], scenario: Scenario
) -> None:
    cwd, expected_ok, expected = workspace[scenario.name]
    ok, actual = _orc(scenario, cwd)
    if not expected_ok:
        assert not ok, f"docker-compose fails ({expected.strip()}) but orc succeeds:\n{actual}"
        return
    assert ok, f"docker-compose succeeds but orc fails: {actual}"
    assert actual == expected
