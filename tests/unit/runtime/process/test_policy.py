"""Capabilities, user resolution, spec validation and seccomp profiles: the pure policy parts."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest

from orchestrator.errors import PermanentError
from orchestrator.runtime.process.capabilities import (
    DEFAULT_CAPABILITIES,
    effective_capabilities,
    last_cap_from_kernel,
    mask,
)
from orchestrator.runtime.process.seccomp import BpfCache, default_profile, profile_from_docker_json
from orchestrator.runtime.process.spec import (
    ContainerSpec,
    Device,
    DirectoryRootfs,
    Namespace,
    NamespaceMode,
    Namespaces,
    ProcessSpec,
    validate_spec,
)
from orchestrator.runtime.process.users import resolve_user
from tests.support.rootfs import GROUP, PASSWD


def test_docker_default_capabilities_have_the_well_known_mask() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14
    assert mask(DEFAULT_CAPABILITIES) == 0xA80425FB


def test_capability_arithmetic_follows_docker() -> None:
    assert effective_capabilities(["NET_ADMIN"], ["cap_chown"]) == DEFAULT_CAPABILITIES - {"CHOWN"} | {
        "NET_ADMIN"
    }
    assert effective_capabilities(["NET_ADMIN"], ["ALL"]) == frozenset({"NET_ADMIN"})
    assert effective_capabilities([], [], privileged=True, known=frozenset({"CHOWN", "BPF"})) == {
        "CHOWN",
        "BPF",
    }
    with pytest.raises(PermanentError, match="unknown capabilities: NOT_A_CAP"):
        effective_capabilities(["NOT_A_CAP"], [])
    assert "CHECKPOINT_RESTORE" not in last_cap_from_kernel("39\n")


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        ("", (), (0, 0, (), "/root")),
        ("tester", (), (1000, 1000, (2000,), "/home/tester")),
        ("1000", (), (1000, 1000, (2000,), "/home/tester")),
        ("tester:extra", (), (1000, 2000, (), "/home/tester")),
        ("4242", (), (4242, 0, (), "/")),
        ("4242:4343", ("daemon", "77"), (4242, 4343, (1, 77), "/")),
    ],
)
def test_users_resolve_like_docker(user: str, groups: tuple[str, ...], expected: tuple[object, ...]) -> None:
    resolved = resolve_user(user, groups, PASSWD, GROUP)
    assert (resolved.uid, resolved.gid, resolved.groups, resolved.home) == expected


def test_unknown_names_fail_but_unknown_numbers_do_not() -> None:
    with pytest.raises(PermanentError, match="unable to find user ghost"):
        resolve_user("ghost", (), PASSWD, GROUP)
    with pytest.raises(PermanentError, match="unable to find group nope"):
        resolve_user("tester:nope", (), PASSWD, GROUP)
    assert resolve_user("123:456", (), None, None).gid == 456


def _spec(**changes: object) -> ContainerSpec:
    base = ContainerSpec(id="c", rootfs=DirectoryRootfs("/r"), process=ProcessSpec(args=("true",)))
    return ContainerSpec(**{**base.__dict__, **changes})


def test_only_namespaced_sysctls_pass_validation() -> None:
    validate_spec(
        _spec(sysctls=(("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "1"), ("fs.mqueue.msg_max", "9")))
    )
    with pytest.raises(PermanentError) as info:
        validate_spec(
            _spec(
                sysctls=(("kernel.panic", "1"), ("net.core.somaxconn", "1"), ("vm.swappiness", "1")),
                namespaces=Namespaces(net=Namespace(NamespaceMode.HOST)),
            )
        )
    text = str(info.value)
    assert "kernel.panic" in text and "not namespaced" in text
    assert "net.core.somaxconn" in text and "network_mode is host" in text
    assert "vm.swappiness" in text


def test_validation_lists_every_problem() -> None:
    with pytest.raises(PermanentError) as info:
        validate_spec(
            _spec(
                process=ProcessSpec(args=(), cwd="relative"),
                namespaces=Namespaces(pid=Namespace(NamespaceMode.JOIN)),
                devices=(Device("/dev/sda", "/mnt/sda", "rwx"),),
            )
        )
    text = str(info.value)
    for fragment in ("nothing to run", "join needs a path", "not absolute", "below /dev", "not in rwm"):
        assert fragment in text


def test_default_seccomp_profile_gates_syscalls_on_capabilities() -> None:
    plain = default_profile(DEFAULT_CAPABILITIES, "amd64")
    allowed = set(plain.rules[0].names)
    assert {"read", "chroot", "arch_prctl"} <= allowed
    assert (
        not {"mount", "unshare", "setns", "keyctl", "bpf", "reboot", "init_module", "sethostname"} & allowed
    )
    assert any(r.names == ("clone3",) and r.errno == errno.ENOSYS for r in plain.rules)
    admin = default_profile(DEFAULT_CAPABILITIES | {"SYS_ADMIN"}, "amd64")
    assert {"mount", "unshare", "setns", "clone"} <= set(admin.rules[0].names)
    assert not any(r.names == ("clone3",) for r in admin.rules)
    assert plain.key() != admin.key()


def test_docker_format_profiles_are_filtered_by_caps_and_arch() -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            },
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }
    profile = profile_from_docker_json(json.dumps(doc), DEFAULT_CAPABILITIES, "amd64")
    names = [r.names for r in profile.rules]
    assert names == [("read", "write"), ("personality",), ("getpid",)]
    assert profile.rules[1].args[0].op == "eq" and profile.rules[2].errno == 38
    with pytest.raises(PermanentError, match="not a valid Docker seccomp profile"):
        profile_from_docker_json('{"defaultAction": "SCMP_ACT_NOPE"}', DEFAULT_CAPABILITIES)


class _CountingLibrary:
    def __init__(self) -> None:
        self.calls = 0

    def compile(self, profile: object) -> bytes:
        self.calls += 1
        return b"\x06\0\0\0\0\0\xff\x7f"


def test_bpf_cache_compiles_once_and_reuses_the_file(tmp_path: Path) -> None:
    library = _CountingLibrary()
    profile = default_profile(DEFAULT_CAPABILITIES, "amd64")
    first = BpfCache(tmp_path, library)  # type: ignore[arg-type]
    assert first.program(profile) == first.program(profile)
    assert library.calls == 1
    second = BpfCache(tmp_path, library)  # type: ignore[arg-type]
    second.program(profile)
    assert library.calls == 1, "a new process reads the cached file instead of compiling"
    (next(tmp_path.glob("*.bpf"))).write_bytes(b"bad")
    with pytest.raises(PermanentError, match="corrupt"):
        BpfCache(tmp_path, library).program(profile)  # type: ignore[arg-type]


def test_a_new_lib_root_takes_the_program_from_the_shared_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = _CountingLibrary()
    profile = default_profile(DEFAULT_CAPABILITIES, "amd64")
    shared = tmp_path / "shared"
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    program = BpfCache(tmp_path / "root1", library, shared).program(profile)  # type: ignore[arg-type]
    assert library.calls == 1
    second = BpfCache(tmp_path / "root2", library, shared)  # type: ignore[arg-type]
    assert second.program(profile) == program
    assert library.calls == 1 and second.compilations == 0
    assert [p.read_bytes() for p in (tmp_path / "root2").glob("*.bpf")] == [program]  # its own copy
    next(shared.glob("*.bpf")).write_bytes(b"bad")  # a bad shared program is compiled anew
    assert BpfCache(tmp_path / "root3", library, shared).program(profile) == program  # type: ignore[arg-type]
    assert library.calls == 2
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    unwritten = tmp_path / "unwritten"
    BpfCache(tmp_path / "root4", library, unwritten).program(profile)  # type: ignore[arg-type]
    assert library.calls == 3 and not unwritten.exists()


def test_libseccomp_compiles_the_default_profile(tmp_path: Path) -> None:
    from orchestrator.runtime.process.seccomp import LibSeccomp

    try:
        library = LibSeccomp()
    except PermanentError as exc:
        pytest.skip(str(exc))
    program = BpfCache(tmp_path, library).program(default_profile(DEFAULT_CAPABILITIES))
    assert len(program) % 8 == 0 and len(program) > 8 * 100


def test_bounding_set_is_read_from_proc_status() -> None:
    from orchestrator.runtime.process.capabilities import bounding_set_from_status

    caps = bounding_set_from_status("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    assert "SYS_RESOURCE" not in caps and {"SYS_ADMIN", "CHECKPOINT_RESTORE"} <= caps
