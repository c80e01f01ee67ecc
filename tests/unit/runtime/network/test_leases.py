"""The state file: transactions, atomic writes, and two processes leasing at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from orchestrator.errors import PermanentError
from orchestrator.runtime.network import ipam
from orchestrator.runtime.network.leases import FileLeaseStore, MemoryLeaseStore, NetworkState
from orchestrator.runtime.network.spec import Attachment, IpamPool, NetworkSpec


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_transaction_saves_or_drops(tmp_path: Path, kind: str) -> None:
    store = FileLeaseStore(tmp_path) if kind == "file" else MemoryLeaseStore()
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    with pytest.raises(RuntimeError), store.transaction() as state:
        ipam.lease_addresses(state.ipam, "p_a", "c1")
        raise RuntimeError("boom")
    assert store.read().ipam.networks["p_a"].addresses == {}
    with store.transaction() as state:  # the next change does not start from the dropped one
        assert state.ipam.networks["p_a"].addresses == {}


def test_the_last_state_written_is_reused_while_the_file_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of connects does not parse the whole file each time; another writer's change
    (another supervisor under the same root) is read from the file."""
    store = FileLeaseStore(tmp_path)
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    parsed: list[int] = []
    real = NetworkState.from_json
    monkeypatch.setattr(NetworkState, "from_json", lambda data: parsed.append(1) or real(data))
    for i in range(3):
        with store.transaction() as state:
            ipam.lease_addresses(state.ipam, "p_a", f"c{i}")
    assert parsed == []
    other = FileLeaseStore(tmp_path)
    with other.transaction() as state:
        ipam.lease_addresses(state.ipam, "p_a", "elsewhere")
    assert len(parsed) == 1
    with store.transaction() as state:
        assert sorted(state.ipam.networks["p_a"].addresses.values()) == ["c0", "c1", "c2", "elsewhere"]
    assert len(parsed) == 2


def test_file_is_replaced_atomically_and_corruption_is_reported(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path)
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    assert sorted(p.name for p in (tmp_path / "network").iterdir()) == ["state.json", "state.lock"]
    (tmp_path / "network" / "state.json").write_text("{not json")
    with pytest.raises(PermanentError, match="is corrupt"):
        store.read()


def test_a_transaction_that_changes_nothing_leaves_the_file_alone(tmp_path: Path) -> None:
    """No new inode for an unchanged state (a rewrite allocates one and frees the old)."""
    store = FileLeaseStore(tmp_path)
    path = tmp_path / "network" / "state.json"
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    inode = path.stat().st_ino
    with store.transaction() as state:
        state.attachments.pop("nobody", None)
    assert path.stat().st_ino == inode
    with store.transaction() as state:
        ipam.lease_addresses(state.ipam, "p_a", "c1")
    assert path.stat().st_ino != inode
    assert "c1" in store.read().ipam.networks["p_a"].addresses.values()


def test_saves_reuse_two_inodes(tmp_path: Path) -> None:
    """Each save used to be a new file renamed over the old: a new inode and a freed one."""
    store = FileLeaseStore(tmp_path)
    path = tmp_path / "network" / "state.json"
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    inodes = set()
    for n in range(6):
        with store.transaction() as state:
            ipam.lease_addresses(state.ipam, "p_a", f"c{n}")
        inodes.add(path.stat().st_ino)
    assert len(inodes) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == [".state.json.spare", "state.json", "state.lock"]
    assert len(store.read().ipam.networks["p_a"].addresses) == 6


def _lease_many(root: str, prefix: str, count: int) -> None:
    store = FileLeaseStore(Path(root))
    for i in range(count):
        with store.transaction() as state:
            ipam.lease_addresses(state.ipam, "p_a", f"{prefix}{i}")


def test_two_processes_never_lease_the_same_address(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path)
    with store.transaction() as state:
        ipam.reserve_network(
            state.ipam, NetworkSpec(project="p", name="p_a", pools=(IpamPool("10.7.0.0/24"),))
        )
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_lease_many, args=(str(tmp_path), f"w{n}-", 25)) for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    addresses = store.read().ipam.networks["p_a"].addresses
    assert len(addresses) == 50 and len(set(addresses.values())) == 50


def _create_networks(root: str, project: str, count: int) -> None:
    from orchestrator.runtime.network.driver import NetworkDriver
    from orchestrator.runtime.network.fake import RecordingLinkOps, RecordingRunner
    from orchestrator.runtime.network.firewall import Firewall

    driver = NetworkDriver(
        links=RecordingLinkOps(routes=[]),
        firewall=Firewall(RecordingRunner()),
        store=FileLeaseStore(Path(root)),
    )
    for i in range(count):
        driver.create_network(NetworkSpec(project=project, name=f"{project}_n{i}"))


def test_two_supervisors_creating_networks_get_distinct_subnets(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create_networks, args=(str(tmp_path), f"p{n}", 6)) for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    subnets = [s for info in FileLeaseStore(tmp_path).read().networks.values() for s in info.subnets]
    assert len(subnets) == 12 and len(set(subnets)) == 12


def test_read_does_not_write(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path)
    assert store.read().networks == {}
    assert not (tmp_path / "network" / "state.json").exists()
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
    before = (tmp_path / "network" / "state.json").stat().st_mtime_ns
    assert "p_a" in store.read().ipam.networks
    assert (tmp_path / "network" / "state.json").stat().st_mtime_ns == before


def _attachment(container: str, network: str, address: str) -> Attachment:
    return Attachment(
        network=network,
        container=container,
        ifname="eth0",
        host_ifname=f"veth{container}",
        mac="02:42:ac:11:00:02",
        ipv4=address,
        ipv4_prefix=24,
        ipv6=None,
        ipv6_prefix=None,
        gateway4="10.9.0.1",
        gateway6=None,
        default_route=True,
        names=(container, "alias-é"),
    )


def test_the_file_is_what_json_dumps_writes_and_attachments_are_encoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLeaseStore(tmp_path)
    encoded: list[str] = []
    real = Attachment.to_json
    monkeypatch.setattr(Attachment, "to_json", lambda self: encoded.append(self.container) or real(self))

    def check(state: NetworkState) -> None:
        text = (tmp_path / "network" / "state.json").read_text()
        expected = json.dumps(state.to_json(), separators=(",", ":"))
        assert text == expected
        assert NetworkState.from_json(json.loads(text)).to_json() == state.to_json()

    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
        state.dnat_tables["c1"] = "orc-dnat-c1"
    for i in range(4):
        with store.transaction() as state:
            address, _ = ipam.lease_addresses(state.ipam, "p_a", f"c{i}")
            assert address is not None
            state.attachments[f"c{i}"] = [_attachment(f"c{i}", "p_a", address)]
        encoded.clear()
        check(state)  # (check's own to_json calls are not counted: cleared before the save)
    with store.transaction() as state:
        state.attachments["c1"] = [*state.attachments["c1"], _attachment("c1", "p_b", "10.9.1.2")]
        state.attachments.pop("c2")
        state.attachments["c3"] = []
        encoded.clear()
    assert encoded == ["c1"]  # only the new attachment was encoded by that save
    check(state)


def test_inspect_looks_at_the_state_without_parsing_or_writing_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLeaseStore(tmp_path)
    with store.transaction() as state:
        ipam.reserve_network(state.ipam, NetworkSpec(project="p", name="p_a"))
        ipam.lease_addresses(state.ipam, "p_a", "c1")
    path = tmp_path / "network" / "state.json"
    before = path.stat()
    parsed: list[int] = []
    real = NetworkState.from_json
    monkeypatch.setattr(NetworkState, "from_json", lambda data: parsed.append(1) or real(data))
    addresses = store.inspect(lambda s: sorted(s.ipam.networks["p_a"].addresses.values()))
    assert addresses == ["c1"]
    assert parsed == []  # the state written last, still the file's
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with store.transaction() as state:  # and it is still reused by the next change
        ipam.lease_addresses(state.ipam, "p_a", "c2")
    assert parsed == []
    other = FileLeaseStore(tmp_path)  # another writer: the file is read again
    with other.transaction() as state:
        ipam.lease_addresses(state.ipam, "p_a", "elsewhere")
    assert store.inspect(lambda s: sorted(s.ipam.networks["p_a"].addresses.values())) == [
        "c1",
        "c2",
        "elsewhere",
    ]
    assert len(parsed) == 2  # once by the other store, once here
    assert MemoryLeaseStore().inspect(lambda s: s.networks) == {}
