"""Secrets, configs, named volumes and unsupported keys, resolved for the runtime adapter."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import PermanentError
from orchestrator.model import Service
from orchestrator.reconciler.desired import BUILD_PREFIX, document_payload, from_document, from_loaded
from orchestrator.reconciler.stackrefs import FileMount, ServiceRefs, VolumeRef, refs_of, write_file_mounts
from orchestrator.stack.loader import LoadOptions, load
from orchestrator.stack.source import MemoryFileSource

COMPOSE = """
services:
  app:
    image: busybox
    secrets:
      - token
      - {source: from_env, target: renamed, uid: "1000", gid: "1001", mode: 0400}
    configs:
      - inline
      - {source: from_file, target: /etc/app.conf, mode: 0640}
    volumes: [data:/data, named:/named, bound:/bound, /anon]
  watched:
    image: busybox
    develop: {watch: [{action: sync, path: ./src, target: /src}]}
  built:
    build: ./ctx
  external:
    image: busybox
    secrets: [outside]
    volumes: [ext:/ext]
secrets:
  token: {file: ./token.txt}
  from_env: {environment: SECRET_VAR}
  outside: {external: true}
configs:
  inline: {content: "hello"}
  from_file: {file: /abs/app.conf}
volumes:
  data: {}
  named: {name: custom-name}
  bound: {driver_opts: {type: none, o: bind, device: /srv/device}}
  ext: {external: true, name: shared}
"""


def load_demo(environ: dict[str, str]) -> Any:
    return load(
        LoadOptions(cwd="/srv/demo", environ=environ), MemoryFileSource({"/srv/demo/compose.yaml": COMPOSE})
    )


def service_of(spec: Any, name: str) -> Service:
    source = spec.behaviour(name).source
    assert isinstance(source, Service)
    return source


def test_files_volumes_and_defaults() -> None:
    spec = from_loaded(load_demo({"SECRET_VAR": "v4lue"}))
    refs = refs_of(service_of(spec, "app"))
    assert refs.problems == ()
    assert refs.files == (
        FileMount("secret", "token", "/run/secrets/token", file="/srv/demo/token.txt"),
        FileMount(
            "secret", "from_env", "/run/secrets/renamed", content="v4lue", uid=1000, gid=1001, mode=0o400
        ),
        FileMount("config", "inline", "/inline", content="hello"),
        FileMount("config", "from_file", "/etc/app.conf", file="/abs/app.conf", mode=0o640),
    )
    assert refs.volumes == (
        VolumeRef("data", "demo_data"),
        VolumeRef("named", "custom-name"),
        VolumeRef("bound", "demo_bound", device="/srv/device"),
    )
    assert spec.desired.volumes == ("custom-name", "demo_bound", "demo_data")
    assert refs_of(service_of(spec, "external")).volume("ext") == VolumeRef("ext", "shared", external=True)
    assert "shared" not in spec.desired.volumes  # external: never created nor removed


def test_problems_name_the_service_and_the_key() -> None:
    spec = from_loaded(load_demo({}))
    assert refs_of(service_of(spec, "app")).problems == (
        "service app: secret 'from_env': environment variable SECRET_VAR is not set",
    )
    assert refs_of(service_of(spec, "watched")).problems == (
        "service watched: orc does not support 'develop' (remove it or run this service elsewhere)",
    )
    assert any("secret 'outside' is external" in p for p in refs_of(service_of(spec, "external")).problems)
    built = spec.desired.service("built")
    assert built is not None and built.image == BUILD_PREFIX + "built"


def test_every_unsupported_key_is_a_problem() -> None:
    text = """
services:
  s:
    image: busybox
    develop: {watch: [{action: rebuild, path: .}]}
    deploy: {placement: {constraints: ["node.role==manager"]}}
    build: {context: ., ssh: [default]}
"""
    project = load(LoadOptions(cwd="/p", environ={}), MemoryFileSource({"/p/compose.yaml": text}))
    service = service_of(from_loaded(project), "s")
    keys = sorted(service.unsupported)
    assert keys  # the model kept them
    problems = refs_of(service).problems
    assert len(problems) == len(keys)
    for key, problem in zip(keys, problems, strict=True):
        assert f"service s: orc does not support {key!r}" in problem


def test_document_payload_carries_only_the_variables_files_need() -> None:
    project = load_demo({"SECRET_VAR": "v", "UNRELATED": "x"})
    payload = document_payload(project)
    assert payload["file_environment"] == {"SECRET_VAR": "v"}
    spec = from_document(payload)
    files = refs_of(service_of(spec, "app")).files
    assert [f.content for f in files if f.source == "from_env"] == ["v"]


def test_unsupported_driver_opts() -> None:
    text = """
services:
  s:
    image: busybox
    volumes: ["vol:/v"]
volumes:
  vol:
    driver_opts: {type: nfs, o: "addr=1.2.3.4", device: ":/x"}
"""
    project = load(LoadOptions(cwd="/p", environ={}), MemoryFileSource({"/p/compose.yaml": text}))
    (problem,) = refs_of(service_of(from_loaded(project), "s")).problems
    assert "driver_opts" in problem and "only type: none, o: bind" in problem


def test_refs_of_a_plain_service_are_empty() -> None:
    assert refs_of(Service(name="x")) == ServiceRefs()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_write_file_mounts_owner_mode_and_rewrite(tmp_path: Path) -> None:
    source = tmp_path / "token.txt"
    source.write_text("one")
    source.chmod(0o604)
    os.chown(source, 5, 6)
    files = (
        FileMount("secret", "token", "/run/secrets/token", file=str(source)),
        FileMount("config", "c", "/c", content="inline", uid=7, gid=8, mode=0o640),
        FileMount("config", "d", "/d", content="defaults"),
        FileMount("secret", "t2", "/run/secrets/t2", file=str(source), uid=0, mode=0o400),
    )
    mounts = write_file_mounts(tmp_path / "files", files)
    assert [(m.target, m.read_only) for m in mounts] == [
        ("/run/secrets/token", True),
        ("/c", True),
        ("/d", True),
        ("/run/secrets/t2", True),
    ]
    first, second, third, fourth = (Path(m.source) for m in mounts)
    assert first.read_text() == "one" and second.read_text() == "inline"

    def owner_mode(path: Path) -> tuple[int, int, int]:
        info = path.stat()
        return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid

    assert owner_mode(first) == (0o604, 5, 6)  # a file keeps its own, as Docker's bind mount
    assert owner_mode(second) == (0o640, 7, 8)
    assert owner_mode(third) == (0o444, 0, 0)  # content: Docker Compose's defaults
    assert owner_mode(fourth) == (0o400, 0, 6)  # what the entry sets wins
    assert stat.S_IMODE((tmp_path / "files").stat().st_mode) == 0o700
    source.write_text("two")
    write_file_mounts(tmp_path / "files", files)
    assert first.read_text() == "two"


def test_write_file_mounts_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot read"):
        write_file_mounts(
            tmp_path, (FileMount("secret", "s", "/run/secrets/s", file=str(tmp_path / "nope")),)
        )


def test_modelled_keys_orc_cannot_apply_are_problems() -> None:
    text = """
services:
  s:
    image: busybox
    userns_mode: "keep-id"
    cgroup_parent: elsewhere
    runtime: kata
    storage_opt: {size: 1G}
    device_cgroup_rules: ["c 1:3 mr"]
    cpu_rt_runtime: 400000
    oom_kill_disable: true
    external_links: [other]
    links: ["db:database"]
    security_opt: ["apparmor=custom", "label=disable", "no-new-privileges:true", "seccomp=unconfined"]
    blkio_config: {weight: 300, device_read_bps: [{path: /dev/sda, rate: 1mb}]}
    deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}
  db:
    image: busybox
  fine:
    image: busybox
    userns_mode: host
    links: [db]
    security_opt: ["apparmor:unconfined"]
    blkio_config: {weight: 300}
"""
    project = load(LoadOptions(cwd="/p", environ={}), MemoryFileSource({"/p/compose.yaml": text}))
    spec = from_loaded(project)
    problems = refs_of(service_of(spec, "s")).problems
    for key in (
        "userns_mode",
        "cgroup_parent",
        "runtime",
        "storage_opt",
        "device_cgroup_rules",
        "cpu_rt_runtime",
        "oom_kill_disable",
        "external_links",
        "links (an alias other than the service name)",
        "security_opt apparmor=custom",
        "blkio_config.device_read_bps",
        "deploy.resources.reservations.devices",
    ):
        assert any(f"service s: orc does not support {key!r}" in p for p in problems), key
    assert not any("label=disable" in p or "seccomp" in p or "no-new-privileges" in p for p in problems)
    assert refs_of(service_of(spec, "fine")).problems == ()


def test_no_secrets_or_configs_make_no_directory(tmp_path: Path) -> None:
    assert write_file_mounts(tmp_path / "files", ()) == []
    assert not (tmp_path / "files").exists()
