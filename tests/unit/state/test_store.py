"""State stores: atomic JSON round trips, the project lock, versions, and the file/memory twins agreeing."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import PermanentError
from orchestrator.state.proc import pid_start_time, same_process
from orchestrator.state.records import (
    SCHEMA_VERSION,
    ContainerRecord,
    EndpointRecord,
    NetworkRecord,
    ProjectRecord,
    StateVersionError,
)
from orchestrator.state.store import (
    FileStateStore,
    MemoryStateStore,
    ProjectBusyError,
    StateStore,
    write_json_atomic,
)


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "file":
        yield FileStateStore(tmp_path / "run")
    else:
        yield MemoryStateStore()


def make_container(name: str = "demo-web-1", **changes: object) -> ContainerRecord:
    record = ContainerRecord(
        project="demo",
        name=name,
        service="web",
        number=1,
        container_id="c0ffee" * 10 + "abcd",
        config_hash="sha256:1234",
        image="busybox:latest",
        status="running",
        pid=4242,
        pid_start_time=987654,
        networks=[
            EndpointRecord(network="demo_default", interface="eth0", ipv4="172.18.0.2", aliases=["web"])
        ],
        cgroup_dirs=["/sys/fs/cgroup/memory/x/orc/demo-web-1"],
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_container_round_trip(store: StateStore) -> None:
    record = make_container()
    store.save_container(record)
    assert store.load_container("demo", "demo-web-1") == record
    assert store.list_containers("demo") == [record]
    assert store.load_container("demo", "missing") is None


def test_containers_list_in_name_order_and_delete(store: StateStore) -> None:
    for name in ("demo-web-2", "demo-db-1", "demo-web-1"):
        store.save_container(make_container(name))
    assert [c.name for c in store.list_containers("demo")] == ["demo-db-1", "demo-web-1", "demo-web-2"]
    store.delete_container("demo", "demo-web-1")
    store.delete_container("demo", "demo-web-1")  # idempotent
    assert [c.name for c in store.list_containers("demo")] == ["demo-db-1", "demo-web-2"]


def test_project_round_trip_and_delete(store: StateStore) -> None:
    project = ProjectRecord(
        name="demo",
        working_dir="/srv/demo",
        config_files=["/srv/demo/compose.yaml"],
        networks=[NetworkRecord(name="demo_default", driver_name="orc-1a2b", subnet="172.18.0.0/16")],
        volumes=["demo_data"],
    )
    store.save_project(project)
    store.save_container(make_container())
    assert store.load_project("demo") == project
    assert store.list_projects() == ["demo"]
    store.delete_project("demo")
    assert store.load_project("demo") is None
    assert store.list_containers("demo") == []
    assert store.list_projects() == []


def test_overwrite_replaces_the_record(store: StateStore) -> None:
    store.save_container(make_container(status="running"))
    store.save_container(make_container(status="exited", exit_code=137, oom_killed=True, pid=None))
    loaded = store.load_container("demo", "demo-web-1")
    assert loaded is not None
    assert (loaded.status, loaded.exit_code, loaded.oom_killed, loaded.pid) == ("exited", 137, True, None)


@pytest.mark.parametrize("bad", ["../evil", ".hidden", "a/b", ""])
def test_names_that_escape_the_directory_are_refused(store: StateStore, bad: str) -> None:
    with pytest.raises(PermanentError):
        store.save_container(make_container(name=bad))


def test_newer_schema_version_is_refused() -> None:
    data = make_container().to_json()
    data["version"] = SCHEMA_VERSION + 1
    with pytest.raises(StateVersionError, match="newer orc"):
        ContainerRecord.from_json(data)


def test_unknown_keys_from_a_newer_minor_writer_are_ignored() -> None:
    data = make_container().to_json()
    data["something_new"] = {"x": 1}
    assert ContainerRecord.from_json(data) == make_container()


def test_unknown_status_is_refused() -> None:
    data = make_container().to_json()
    data["status"] = "sleepy"
    with pytest.raises(StateVersionError, match="unknown status"):
        ContainerRecord.from_json(data)


def test_file_layout_and_no_temporary_files_left(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    store.save_container(make_container())
    store.save_project(ProjectRecord(name="demo"))
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["demo/containers/demo-web-1.json", "demo/project.json"]
    data = json.loads((tmp_path / "demo/containers/demo-web-1.json").read_text())
    assert data["version"] == SCHEMA_VERSION and data["pid_start_time"] == 987654


def test_rewrites_keep_two_inodes_and_delete_takes_both(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    path = tmp_path / "demo/containers/demo-web-1.json"
    store.save_container(make_container(status="created"))
    store.save_container(make_container(status="running"))
    spare = path.with_name(".demo-web-1.json.spare")
    inodes = {path.stat().st_ino, spare.stat().st_ino}
    for status in ("exited", "running", "exited"):
        store.save_container(make_container(status=status))
        assert {path.stat().st_ino, spare.stat().st_ino} == inodes
    assert [r.status for r in store.list_containers("demo")] == ["exited"]  # the spare is no record
    store.delete_container("demo", "demo-web-1")
    assert os.listdir(tmp_path / "demo/containers") == []


def test_a_read_that_catches_a_rewrite_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStateStore(tmp_path)
    store.save_container(make_container())
    real = Path.read_bytes
    reads: list[Path] = []

    def torn_once(self: Path) -> bytes:
        reads.append(self)
        return b'{"version": 1, "na' if len(reads) == 1 else real(self)

    monkeypatch.setattr(Path, "read_bytes", torn_once)
    record = store.load_container("demo", "demo-web-1")
    assert record is not None and record.pid == 4242 and len(reads) == 2


def test_corrupt_file_is_reported_not_crashed(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    (tmp_path / "demo" / "containers").mkdir(parents=True)
    (tmp_path / "demo" / "containers" / "demo-web-1.json").write_text('{"version": 1, "na')
    with pytest.raises(StateVersionError, match="not valid JSON"):
        store.load_container("demo", "demo-web-1")


def test_atomic_write_keeps_old_content_when_serialising_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]


def test_lock_excludes_a_second_holder_and_names_the_first(store: StateStore) -> None:
    with store.lock("demo"):
        with pytest.raises(ProjectBusyError) as info:
            # A second store over the same root stands in for a second orc process.
            other = FileStateStore(store.root) if isinstance(store, FileStateStore) else store
            with other.lock("demo"):
                pass
        assert info.value.retry_after > 0
        if isinstance(store, FileStateStore):
            assert f"pid {os.getpid()}" in str(info.value)
        with store.lock("other-project"):
            pass
    with store.lock("demo"):
        pass


def test_lock_waits_up_to_the_timeout(store: StateStore) -> None:
    released = threading.Event()
    acquired = threading.Event()

    def holder() -> None:
        with store.lock("demo"):
            acquired.set()
            released.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    acquired.wait(5)
    threading.Timer(0.1, released.set).start()
    other = FileStateStore(store.root) if isinstance(store, FileStateStore) else store
    with other.lock("demo", timeout=5):
        pass
    thread.join()


def test_pid_start_time_identifies_this_process() -> None:
    start = pid_start_time(os.getpid())
    assert start is not None and start > 0
    assert same_process(os.getpid(), start)
    assert not same_process(os.getpid(), start + 1)
    assert pid_start_time(2**22 + 1) is None


def test_pid_start_time_survives_parentheses_in_the_command_name(tmp_path: Path) -> None:
    fields = ["S"] + [str(i) for i in range(4, 22)] + ["5555"] + ["0"] * 30
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "stat").write_text("77 (we) ird) name) " + " ".join(fields))
    assert pid_start_time(77, proc=tmp_path) == 5555


def test_container_json_is_asdicts_without_copying_the_config() -> None:
    from dataclasses import asdict

    config = {"environment": {"A": "1"}, "ports": [{"target": 80}]}
    record = make_container(config=config, labels={"k": "v"})
    data = record.to_json()
    assert data == asdict(record)
    assert data["config"] is config  # shared: the stores serialise it, nothing mutates it
    assert data["networks"] == [asdict(n) for n in record.networks]
