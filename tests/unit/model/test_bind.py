"""stack.bind: the canonical Compose document → model.Stack.

``data/kitchen-sink.json`` is what ``docker-compose -f data/kitchen-sink.compose.yaml -p sink
--profile p1 config --format json`` printed (Compose v2.40.3); the oracle test in
test_bind_corpus.py regenerates it and checks the same things.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import StackError
from orchestrator.model import (
    BindOptions,
    Build,
    Dependency,
    Device,
    ExtraHost,
    FileRef,
    Healthcheck,
    Link,
    Mount,
    NetworkAttachment,
    PortSpec,
    Service,
    Stack,
    ThrottleDevice,
    TmpfsOptions,
    Ulimit,
    VolumeOptions,
    VolumesFrom,
)
from orchestrator.stack.bind import bind

DATA = Path(__file__).parent / "data"


def unescape_config_output(text: str) -> str:
    """``docker compose config`` doubles every ``$`` in what it prints (so the output can be
    loaded again); bind takes the values themselves, as the loader holds them."""
    return text.replace("$$", "$")


def kitchen_sink() -> dict[str, Any]:
    return json.loads(unescape_config_output((DATA / "kitchen-sink.json").read_text()))


def bind_all(document: dict[str, Any]) -> Stack:
    return bind(document, config_hashes={name: f"hash-{name}" for name in document.get("services", {})})


def assert_every_key_accounted_for(document: dict[str, Any], stack: Stack) -> None:
    """Each key a service sets is either bound to a field with a non-default value, kept in
    ``unsupported``/``extensions``, or carries no meaning (empty). Nothing is dropped silently."""
    defaults = Service(name="")
    for name, raw in document.get("services", {}).items():
        service = stack.services[name]
        assert service.config_hash
        for key, value in raw.items():
            if value in (None, "", [], {}, False):
                continue
            if key.startswith("x-"):
                assert key in service.extensions, f"{name}.{key}"
            elif key in service.unsupported:
                continue
            else:
                assert hasattr(service, key), f"services.{name}.{key} is neither bound nor unsupported"
                assert getattr(service, key) != getattr(defaults, key), (
                    f"services.{name}.{key} lost its value"
                )


def test_kitchen_sink_every_key_accounted_for() -> None:
    document = kitchen_sink()
    assert_every_key_accounted_for(document, bind_all(document))


def test_kitchen_sink_web() -> None:
    web = bind_all(kitchen_sink()).services["web"]
    assert web.config_hash == "hash-web"
    assert web.image == "nginx"
    assert isinstance(web.build, Build)
    assert (
        web.build.dockerfile == "Dockerfile"
        and web.build.args == {"A": "1"}
        and web.build.cache_from == ("x",)
    )
    assert web.command == ("echo", "hi")
    assert web.entrypoint == ("/bin/sh", "-c")
    assert web.environment == {"A": "1", "B": None, "X": "1"}
    assert web.ports == (
        PortSpec(target=80, published="8080"),
        PortSpec(target=9000, published="9000", host_ip="127.0.0.1", protocol="udp"),
        PortSpec(target=9001, published="9001", host_ip="127.0.0.1", protocol="udp"),
        PortSpec(target=3000),
    )
    bind_mount, volume_mount, tmpfs_mount = web.volumes
    assert bind_mount.type == "bind" and bind_mount.read_only and bind_mount.target == "/data"
    assert bind_mount.source is not None and bind_mount.source.endswith("/data")
    assert bind_mount.bind == BindOptions(selinux="z", create_host_path=True)
    assert volume_mount == Mount(type="volume", source="vol", target="/v", volume=VolumeOptions(nocopy=True))
    assert tmpfs_mount == Mount(type="tmpfs", target="/t", tmpfs=TmpfsOptions(size=10 << 20, mode=0o1777))
    assert web.tmpfs == (
        Mount(type="tmpfs", target="/run", tmpfs=TmpfsOptions()),
        Mount(type="tmpfs", target="/tmp", tmpfs=TmpfsOptions(size=1 << 20)),
    )
    assert web.networks == {
        "front": NetworkAttachment(
            aliases=("w",), ipv4_address="10.1.0.5", mac_address="02:42:ac:11:00:02", priority=10
        )
    }
    assert web.depends_on == {
        "cache": Dependency("service_started", required=False),
        "db": Dependency("service_healthy", required=True, restart=True),
    }
    assert web.healthcheck == Healthcheck(
        test=("CMD-SHELL", "curl -f localhost"),
        interval=90.0,
        timeout=10.0,
        start_period=40.0,
        start_interval=5.0,
        retries=3,
    )
    assert web.restart == "on-failure:3"
    assert web.deploy is not None and web.deploy.replicas == 1
    assert (
        web.deploy.limits is not None
        and web.deploy.limits.memory == 50 << 20
        and web.deploy.limits.cpus == 0.5
    )
    assert web.deploy.reservations is not None and web.deploy.reservations.devices[0].capabilities == ("gpu",)
    assert web.deploy.restart_policy is not None and web.deploy.restart_policy.window == 120.0
    assert (web.user, web.group_add, web.working_dir, web.hostname, web.domainname) == (
        "1000:1000",
        ("audio",),
        "/app",
        "h",
        "d.com",
    )
    assert (web.cap_add, web.cap_drop, web.security_opt) == (
        ("NET_ADMIN",),
        ("ALL",),
        ("no-new-privileges:true",),
    )
    assert web.read_only and web.init and web.tty and web.stdin_open and web.oom_kill_disable
    assert web.ulimits == {"nproc": Ulimit(65535, 65535), "nofile": Ulimit(20000, 40000)}
    assert web.sysctls == {"net.core.somaxconn": "1024"}
    assert web.devices == (Device("/dev/ttyUSB0", "/dev/ttyUSB0", "rwm"),)
    assert (web.dns, web.dns_search, web.dns_opt) == (("8.8.8.8",), ("example.com",), ("use-vc",))
    assert web.extra_hosts == (ExtraHost("other", "1.2.3.4"), ExtraHost("somehost", "162.242.195.82"))
    assert web.labels == {"a": "b"} and web.annotations == {"a": "b"}
    assert (
        web.logging is not None
        and web.logging.driver == "json-file"
        and web.logging.options == {"max-size": "1m"}
    )
    assert (web.stop_signal, web.stop_grace_period) == ("SIGUSR1", 60.0)
    assert (web.shm_size, web.mem_limit, web.memswap_limit, web.mem_reservation) == (
        64 << 20,
        50 << 20,
        2 << 30,
        20 << 20,
    )
    assert (web.cpus, web.cpu_shares, web.cpu_quota, web.cpu_period, web.cpuset, web.pids_limit) == (
        0.5,
        512,
        50000,
        100000,
        "0,1",
        10,
    )
    assert web.blkio_config is not None and web.blkio_config.weight == 300
    assert web.blkio_config.device_read_bps == (ThrottleDevice("/dev/sda", 12 << 20),)
    assert (web.oom_score_adj, web.pid, web.ipc, web.uts, web.userns_mode, web.cgroup, web.cgroup_parent) == (
        500,
        "host",
        "shareable",
        "host",
        "host",
        "private",
        "foo",
    )
    assert web.volumes_from == (VolumesFrom("db"), VolumesFrom("foo", kind="container", read_only=True))
    assert web.links == (Link("db", "database"),)
    assert (web.external_links, web.expose, web.profiles) == (
        ("redis_1",),
        ("3000", "8000-8010/udp"),
        ("p1",),
    )
    assert (web.pull_policy, web.platform, web.container_name, web.runtime) == (
        "always",
        "linux/amd64",
        "webc",
        "runc",
    )
    assert web.secrets == (FileRef("s1", "/run/secrets/s1"), FileRef("s2", "/x", uid="1", mode=0o400))
    assert web.configs == (FileRef("c1"),)
    assert web.storage_opt == {"size": "1G"}
    assert web.unsupported == {"isolation": "default"}


def test_kitchen_sink_other_services_and_top_level() -> None:
    stack = bind_all(kitchen_sink())
    assert stack.name == "sink"
    other = stack.services["other"]
    assert other.healthcheck == Healthcheck(disable=True) and other.healthcheck.disabled
    assert other.ports == (
        PortSpec(
            target=53, published="1053-1060", host_ip="::1", protocol="udp", name="dns", app_protocol="dns"
        ),
    )
    src, subpath, anonymous = other.volumes
    assert src.bind == BindOptions(propagation="rshared", create_host_path=False)
    assert subpath.volume == VolumeOptions(subpath="sub")
    assert anonymous == Mount(type="volume", target="/anon", volume=VolumeOptions())
    assert other.networks["default"] == NetworkAttachment(
        gw_priority=1, interface_name="eth7", link_local_ips=("169.254.1.1",)
    )
    assert other.extra_hosts == (
        ExtraHost("h6", "::1"),
        ExtraHost("multi", "1.1.1.1"),
        ExtraHost("multi", "2.2.2.2"),
    )
    assert other.stop_grace_period == 1.5
    assert other.mem_swappiness == 10
    assert other.effective_replicas == 3
    assert (
        other.deploy is not None and other.deploy.mode == "replicated" and other.deploy.labels == {"l": "v"}
    )
    assert set(other.unsupported) == {"develop", "deploy.placement", "deploy.update_config"}
    assert stack.services["db"].network_mode == "service:cache"
    assert stack.services["db"].effective_replicas == 2
    assert stack.services["side"].mem_limit == 100000

    assert stack.networks["front"].name == "sink_front"
    assert stack.networks["front"].ipam.pools[0].aux_addresses == {"h": "10.1.0.3"}
    assert stack.networks["front"].internal and stack.networks["front"].attachable
    assert stack.networks["front"].enable_ipv6 is False and stack.networks["front"].enable_ipv4 is None
    assert stack.networks["ext"].external and stack.networks["ext"].name == "ext"
    assert stack.volumes["evol"].external and stack.volumes["evol"].name == "realname"
    assert stack.volumes["vol"].driver_opts == {"type": "none"}
    assert stack.secrets["s2"].environment == "HOME"
    assert stack.secrets["s1"].file is not None and stack.secrets["s1"].file.endswith(
        "kitchen-sink.compose.yaml"
    )
    assert stack.configs["c1"].content == "hello $x"  # written "hello $$x" in the file
    assert stack.extensions == {"x-top": 1}
    assert stack.unsupported_keys() == [
        "services.other.deploy.placement",
        "services.other.deploy.update_config",
        "services.other.develop",
        "services.web.isolation",
    ]


def test_working_dir_files_and_extensions_are_carried() -> None:
    document = kitchen_sink()
    document["services"]["web"]["x-orc"] = {"restart-backoff": "1s"}
    document["models"] = {"m": {"model": "ai/x"}}
    stack = bind(
        document,
        config_hashes={name: "h" for name in document["services"]},
        working_dir="/project",
        compose_files=("/project/compose.yaml",),
    )
    assert stack.working_dir == "/project" and stack.compose_files == ("/project/compose.yaml",)
    assert stack.services["web"].orc_extension == {"restart-backoff": "1s"}
    assert "models" in stack.unsupported


def test_a_missing_config_hash_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no config hash given for service 'web'"):
        bind({"name": "p", "services": {"web": {"image": "x"}}}, config_hashes={})


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(StackError) as caught:
        bind_all(document)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def project(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "services": {name: {"image": "x", **keys} for name, keys in services.items()}}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"healthcheck": {"interval": "5 s"}}, 'services.web.healthcheck.interval: invalid duration "5 s"'),
        (
            {"healthcheck": {"timeout": "10"}},
            'services.web.healthcheck.timeout: invalid duration "10": missing unit',
        ),
        (
            {"stop_grace_period": "1y"},
            'services.web.stop_grace_period: invalid duration "1y": unknown unit "y"',
        ),
        ({"mem_limit": "1x"}, "services.web.mem_limit: invalid size '1x': unknown suffix 'x'"),
        ({"shm_size": "lots"}, "services.web.shm_size: invalid size 'lots'"),
        ({"restart": "sometimes"}, 'services.web.restart: unknown restart policy "sometimes"'),
        ({"restart": "always:3"}, 'services.web.restart: invalid restart policy "always:3": only on-failure'),
        ({"restart": "on-failure:x"}, 'services.web.restart: invalid restart policy "on-failure:x"'),
        (
            {"deploy": {"restart_policy": {"condition": "often"}}},
            'services.web.deploy.restart_policy.condition: unknown restart policy "often"',
        ),
        (
            {"depends_on": {"db": {"condition": "service_ready"}}},
            'services.web.depends_on.db.condition: unknown condition "service_ready"',
        ),
        ({"ports": [{"target": 0}]}, "services.web.ports[0].target: port 0 out of range 1-65535"),
        (
            {"ports": [{"target": 80, "published": "90-80"}]},
            'services.web.ports[0].published: invalid published port "90-80"',
        ),
        (
            {"ports": [{"target": 80, "published": "http"}]},
            'services.web.ports[0].published: invalid published port "http"',
        ),
        ({"ports": ["80:80"]}, "services.web.ports[0]: expected the long port syntax"),
        (
            {"volumes": [{"type": "disk", "target": "/x"}]},
            'services.web.volumes[0].type: unknown mount type "disk"',
        ),
        ({"volumes": [{"type": "volume"}]}, "services.web.volumes[0].target: a mount needs a target path"),
        ({"volumes": ["./a:/b"]}, "services.web.volumes[0]: expected the long volume syntax"),
        (
            {"secrets": [{"source": "s", "mode": "rw"}]},
            "services.web.secrets[0].mode: invalid file mode 'rw'",
        ),
        (
            {"ulimits": {"nofile": {"soft": 10}}},
            "services.web.ulimits.nofile: a ulimit mapping needs both soft and hard",
        ),
        (
            {"ulimits": {"nofile": {"soft": 10, "hard": 5}}},
            "services.web.ulimits.nofile: soft limit 10 is greater",
        ),
        ({"volumes_from": ["db:rx"]}, "services.web.volumes_from[0]: invalid volumes_from 'db:rx'"),
        ({"extra_hosts": ["nohost"]}, "services.web.extra_hosts[0]: invalid extra host 'nohost'"),
        ({"scale": -1}, "services.web.scale: must be greater than or equal to 0, got -1"),
        ({"cpus": "many"}, "services.web.cpus: expected a number, got 'many'"),
        ({"privileged": "yes"}, "services.web.privileged: expected a boolean, got 'yes'"),
        ({"image": 5}, "services.web.image: expected a string, got a number"),
        (
            {"healthcheck": {"test": ["RUN", "x"]}},
            'services.web.healthcheck.test: healthcheck.test must start either by "CMD"',
        ),
        ({"command": "echo 'unterminated"}, "services.web.command: cannot split command"),
        ({"tmpfs": ["/t:size=big"]}, "services.web.tmpfs[0]: invalid size 'big'"),
        ({"devices": ["/a:/b:/c:/d"]}, "services.web.devices[0]: invalid device"),
        (
            {"blkio_config": {"device_read_bps": [{"path": "/dev/sda", "rate": "fast"}]}},
            "services.web.blkio_config.device_read_bps[0].rate: invalid size 'fast'",
        ),
    ],
)
def test_unbindable_values_name_their_path(keys: dict[str, Any], expected: str) -> None:
    problems = problems_of(project(web=keys))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_every_problem_is_reported_at_once() -> None:
    document = project(
        web={"healthcheck": {"interval": "x", "timeout": "y"}, "mem_limit": "z"},
        db={"restart": "sometimes"},
    )
    document["networks"] = {"n": {"internal": "maybe"}}
    document["name"] = ""
    problems = problems_of(document)
    assert [p.split(":")[0] for p in problems] == [
        "name",
        "services.web.healthcheck.interval",
        "services.web.healthcheck.timeout",
        "services.web.mem_limit",
        "services.db.restart",
        "networks.n.internal",
    ]


def test_short_forms_and_raw_values_bind_too() -> None:
    stack = bind_all(
        project(
            web={
                "build": "./app",
                "command": "sh -c 'echo hi'",
                "environment": ["A=1", "B", "C="],
                "depends_on": ["db"],
                "networks": ["front"],
                "healthcheck": {"test": "curl -f localhost", "interval": "1m"},
                "ulimits": {"nproc": 10},
                "devices": ["/dev/fuse", "/dev/a:/dev/b", "/dev/c:r", "/dev/d:/dev/e:rw"],
                "extra_hosts": ["a:::1", "b=10.0.0.1,10.0.0.2"],
                "labels": ["k=v", "flag"],
                "sysctls": {"net.ipv4.ip_forward": 1},
                "tmpfs": "/run:size=64k,mode=1770,noexec,uid=1000",
                "dns": "1.1.1.1",
                "mem_limit": "1g",
                "ports": [8080],
                "secrets": ["token"],
                "links": ["db"],
                "expose": [3000, "4000/udp"],
                "user": 1000,
                "attach": False,
            },
            db={},
        )
    )
    web = stack.services["web"]
    assert web.build == Build(context="./app")
    assert web.command == ("sh", "-c", "echo hi")
    assert web.environment == {"A": "1", "B": None, "C": ""}
    assert web.depends_on == {"db": Dependency()}
    assert web.networks == {"front": NetworkAttachment()}
    assert web.healthcheck == Healthcheck(test=("CMD-SHELL", "curl -f localhost"), interval=60.0)
    assert web.ulimits == {"nproc": Ulimit(10, 10)}
    assert web.devices == (
        Device("/dev/fuse", "/dev/fuse"),
        Device("/dev/a", "/dev/b"),
        Device("/dev/c", "/dev/c", "r"),
        Device("/dev/d", "/dev/e", "rw"),
    )
    assert web.extra_hosts == (ExtraHost("a", "::1"), ExtraHost("b", "10.0.0.1"), ExtraHost("b", "10.0.0.2"))
    assert web.labels == {"k": "v", "flag": ""}
    assert web.sysctls == {"net.ipv4.ip_forward": "1"}
    assert web.tmpfs == (
        Mount(
            type="tmpfs",
            target="/run",
            tmpfs=TmpfsOptions(size=65536, mode=0o1770, options=("noexec", "uid=1000")),
        ),
    )
    assert web.dns == ("1.1.1.1",)
    assert web.mem_limit == 1 << 30
    assert web.ports == (PortSpec(target=8080),)
    assert web.secrets == (FileRef("token"),)
    assert web.links == (Link("db", "db"),)
    assert web.expose == ("3000", "4000/udp")
    assert web.user == "1000"
    assert web.attach is False


def test_top_level_names_default_and_legacy_external() -> None:
    document = {
        "name": "p",
        "networks": {
            "a": {},
            "b": {"external": True},
            "c": {"external": {"name": "real-c"}},
            "d": {"name": "given"},
        },
        "volumes": {"v": None, "w": {"external": True, "name": "real-w"}},
        "secrets": {"s": {"file": "/s"}},
        "configs": {"c": {"content": "hi"}},
    }
    stack = bind_all(document)
    assert {k: n.name for k, n in stack.networks.items()} == {
        "a": "p_a",
        "b": "b",
        "c": "real-c",
        "d": "given",
    }
    assert stack.networks["c"].external
    assert {k: v.name for k, v in stack.volumes.items()} == {"v": "p_v", "w": "real-w"}
    assert stack.secrets["s"].name == "p_s" and stack.configs["c"].content == "hi"
    assert stack.services == {}


def test_empty_unmodelled_values_are_not_unsupported() -> None:
    web = bind_all(
        project(web={"deploy": {"placement": {}, "resources": {}}, "develop": None, "gpus": []})
    ).services["web"]
    assert web.unsupported == {}
    assert web.deploy is not None and web.deploy.limits is None


def test_the_document_is_not_modified_and_the_stack_is_frozen() -> None:
    document = kitchen_sink()
    before = copy.deepcopy(document)
    stack = bind_all(document)
    assert document == before
    with pytest.raises(TypeError):
        stack.services["web"].environment["A"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        stack.name = "other"  # type: ignore[misc]


def test_not_a_mapping() -> None:
    with pytest.raises(StackError, match="must be a mapping"):
        bind([], config_hashes={})  # type: ignore[arg-type]
    assert problems_of({"name": "p", "services": {"web": "nginx"}}) == [
        "services.web: expected a mapping, got a string"
    ]


def test_pull_policy_intervals_are_checked() -> None:
    assert problems_of(project(web={"pull_policy": "every_fortnight"})) == [
        "services.web.pull_policy: invalid pull_policy 'every_fortnight': invalid duration \"fortnight\""
    ]
    assert (
        bind_all(project(web={"pull_policy": "every_1h"})).services["web"].effective_pull_policy.interval
        == 3600.0
    )


def test_a_bound_stack_pickles_and_copies() -> None:
    """The supervisor may receive the Stack from another process; it must survive the trip."""
    stack = bind_all(kitchen_sink())
    assert pickle.loads(pickle.dumps(stack)) == stack
    assert copy.deepcopy(stack) == stack
