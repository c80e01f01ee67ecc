"""The lifecycle verbs' Docker Compose flags without root: run's service changes (CLI side, the
supervisor's binding, the reconciler's one-off), ps --status on recorded state, coloured log
prefixes, the --progress modes, and up's abort decisions on recorded containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.app import _requested_verb
from orchestrator.cli.lifecycle import event_line
from orchestrator.cli.verb_logs import LinePrinter
from orchestrator.cli.verb_run import service_changes
from orchestrator.cli.verb_up import abort_exit_code, abort_verdict
from orchestrator.daemon.spawn import socket_path
from orchestrator.daemon.supervisor import one_off_overrides
from orchestrator.errors import UsageError
from orchestrator.hostfs import HostFileSource
from orchestrator.model import PortSpec, Service
from orchestrator.reconciler.payload import document_payload
from orchestrator.reconciler.ports import ContainerRequest, CreatedContainer
from orchestrator.reconciler.project import ServiceBehaviour
from orchestrator.stack.loader import LoadOptions, load
from orchestrator.state.logs import LogEntry, LogWriter
from orchestrator.state.records import ContainerRecord
from orchestrator.state.store import FileStateStore

from ..reconciler.harness import World, run_world, three_tier

COMPOSE = """
name: demo
volumes:
  data: {}
services:
  web:
    image: busybox:1
    x-orc: {rootfs: ./rootfs}
    user: "1:1"
    volumes: ["./site:/www"]
    ports: ["127.0.0.1:8080:80"]
  db:
    image: busybox:1
    x-orc: {rootfs: ./rootfs}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def payload_of(project: Path) -> dict[str, Any]:
    loaded = load(
        LoadOptions(cwd=str(project), environ={}, files=(str(project / "compose.yaml"),)),
        HostFileSource(),
    )
    return document_payload(loaded)


# --- run ----------------------------------------------------------------------------------------


def test_run_changes_user_workdir_entrypoint(project: Path) -> None:
    document = payload_of(project)["document"]
    changes = service_changes(
        document, "web", user="0", workdir="/tmp", entrypoint="sh -c 'a b'", cwd="/elsewhere"
    )
    assert changes == {"user": "0", "working_dir": "/tmp", "entrypoint": ["sh", "-c", "a b"]}
    # an empty --entrypoint clears the image's; nothing given changes nothing
    assert service_changes(document, "web", entrypoint="", cwd="/") == {"entrypoint": []}
    assert service_changes(document, "web", cwd="/") == {}


def test_run_volumes_add_to_the_services_and_resolve_against_cwd(project: Path) -> None:
    document = payload_of(project)["document"]
    changes = service_changes(
        document, "web", volumes=["./here:/mnt:ro", "data:/data", "/abs:/abs"], cwd="/work/dir"
    )
    volumes = changes["volumes"]
    assert volumes[0]["source"] == str(project / "site")  # the file's own mount comes first
    assert [(v["type"], v.get("source"), v["target"], v.get("read_only", False)) for v in volumes[1:]] == [
        ("bind", "/work/dir/here", "/mnt", True),
        ("volume", "data", "/data", False),
        ("bind", "/abs", "/abs", False),
    ]


def test_run_ports_are_dropped_replaced_or_kept(project: Path) -> None:
    document = payload_of(project)["document"]
    published = service_changes(document, "web", publish=["9000:90/udp"], cwd="/")["ports"]
    assert [(p["target"], p["published"], p["protocol"]) for p in published] == [(90, "9000", "udp")]
    kept = service_changes(document, "web", service_ports=True, cwd="/")["ports"]
    assert kept == document["services"]["web"]["ports"]
    with pytest.raises(UsageError, match="incompatible"):
        service_changes(document, "web", publish=["1:1"], service_ports=True, cwd="/")
    with pytest.raises(UsageError, match="no such service: nope"):
        service_changes(document, "nope", user="0", cwd="/")
    with pytest.raises(UsageError, match="--entrypoint"):
        service_changes(document, "web", entrypoint="sh -c 'unclosed", cwd="/")


def test_run_cap_add_cap_drop_and_labels_add_to_the_services(project: Path) -> None:
    payload = payload_of(project)
    document = payload["document"]
    document["services"]["web"]["cap_add"] = ["NET_ADMIN"]
    document["services"]["web"]["labels"] = {"tier": "front", "keep": "yes"}
    changes = service_changes(
        document,
        "web",
        cap_add=["SYS_TIME", "NET_ADMIN"],
        cap_drop=["CHOWN"],
        labels=["tier=one-off", "flag"],
        cwd="/",
    )
    assert changes == {
        "cap_add": ["NET_ADMIN", "SYS_TIME"],
        "cap_drop": ["CHOWN"],
        "labels": {"tier": "one-off", "keep": "yes", "flag": ""},
    }
    overrides = one_off_overrides({"project": payload, "service_changes": changes}, "web")
    assert overrides["cap_add"] == ("NET_ADMIN", "SYS_TIME")
    assert overrides["cap_drop"] == ("CHOWN",)
    assert dict(overrides["labels"]) == {"tier": "one-off", "keep": "yes", "flag": ""}  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="--label"):
        service_changes(document, "web", labels=["=x"], cwd="/")


def test_run_env_from_file_reads_env_files_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli.verb_run import environment_files

    monkeypatch.setenv("FROM_SHELL", "shell")
    (tmp_path / "a.env").write_text("A=1\nB=${FROM_SHELL}\n# comment\nC='quoted value'\n")
    (tmp_path / "b.env").write_text("A=2\n")
    assert environment_files([str(tmp_path / "a.env"), str(tmp_path / "b.env")]) == {
        "A": "2",
        "B": "shell",
        "C": "quoted value",
    }
    with pytest.raises(UsageError, match=r"missing\.env"):
        environment_files([str(tmp_path / "missing.env")])


def test_supervisor_binds_run_changes_for_the_one_off_only(project: Path) -> None:
    payload = payload_of(project)
    changes = service_changes(
        payload["document"],
        "web",
        user="2:3",
        volumes=["./x:/x"],
        publish=["127.0.0.1:9000:90"],
        cwd="/c",
    )
    overrides = one_off_overrides({"project": payload, "service_changes": changes}, "web")
    assert overrides["user"] == "2:3"
    assert overrides["ports"] == (PortSpec(target=90, published="9000", host_ip="127.0.0.1"),)
    mounts = overrides["volumes"]
    assert isinstance(mounts, tuple)
    assert [(m.type, m.source, m.target) for m in mounts] == [
        ("bind", str(project / "site"), "/www"),
        ("bind", "/c/x", "/x"),
    ]
    # the payload the supervisor remembers is untouched
    assert payload["document"]["services"]["web"]["user"] == "1:1"
    assert one_off_overrides({"project": payload}, "web") == {}
    with pytest.raises(UsageError, match="cannot change image"):
        one_off_overrides({"project": payload, "service_changes": {"image": "x"}}, "web")


def test_reconciler_one_off_takes_name_and_overrides() -> None:
    spec = three_tier()
    source = Service(name="api", user="1", ports=(PortSpec(target=80, published="8080"),))
    spec = replace(spec, behaviours={**spec.behaviours, "api": ServiceBehaviour(source=source)})
    requests: list[ContainerRequest] = []

    async def body(w: World) -> None:
        create = w.runtime.create

        async def recording_create(request: ContainerRequest) -> CreatedContainer:
            requests.append(request)
            return await create(request)

        w.runtime.create = recording_create  # type: ignore[method-assign]
        plain = await w.reconciler.run_one_off(spec, "api", "s1", with_dependencies=False, detach=True)
        named = await w.reconciler.run_one_off(
            spec,
            "api",
            "s2",
            with_dependencies=False,
            detach=True,
            name="custom",
            overrides={"user": "0:0", "ports": (PortSpec(target=81, published="9081"),)},
        )
        assert (plain.name, named.name) == ("demo-api-run-s1", "custom")

    run_world(body)
    plain_source, named_source = (r.source for r in requests if r.one_off)
    assert isinstance(plain_source, Service) and isinstance(named_source, Service)
    assert (plain_source.user, plain_source.ports) == ("1", ())  # run drops the service's ports
    assert (named_source.user, named_source.ports) == ("0:0", (PortSpec(target=81, published="9081"),))


def test_reconciler_one_off_pull_policy_and_remove_orphans() -> None:
    spec = three_tier()
    smaller = replace(
        spec,
        desired=replace(spec.desired, services=tuple(s for s in spec.desired.services if s.name != "web")),
    )

    async def body(w: World) -> None:
        assert (await w.reconciler.up(spec)).ok
        w.runtime.calls.clear()
        await w.reconciler.run_one_off(smaller, "api", "s1", with_dependencies=False, detach=True)
        assert "pull app:1" not in w.runtime.calls  # present: the default policy pulls nothing
        assert "remove demo-web-1" not in w.runtime.calls  # an orphan stays without the flag
        await w.reconciler.run_one_off(
            smaller, "api", "s2", with_dependencies=False, detach=True, pull="always", remove_orphans=True
        )
        assert "pull app:1" in w.runtime.calls
        assert "remove demo-web-1" in w.runtime.calls

    run_world(body)


def test_pull_option_values() -> None:
    from orchestrator.cli.lifecycle import pull_option

    assert [pull_option(v) for v in (None, "policy", "always", "missing", "never")] == [
        None,
        None,
        "always",
        "missing",
        "never",
    ]
    with pytest.raises(UsageError, match="invalid --pull 'sometimes'"):
        pull_option("sometimes")


# --- ps --status ----------------------------------------------------------------------------------


def orc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(project / "root"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("ORC_ROOT", "NO_COLOR")},
        timeout=60,
    )


def record(project: Path, service: str, status: str, **changes: object) -> ContainerRecord:
    rec = ContainerRecord(
        project="demo",
        name=f"demo-{service}-1",
        service=service,
        number=1,
        container_id=service * 8,
        config_hash="h",
        image="busybox:1",
        status=status,
        exit_code=0 if status == "exited" else None,
        created_at=time.time(),
        finished_at=time.time(),
        log_path=str(project / "root" / "lib" / "logs" / f"{service}.log"),
    )
    for key, value in changes.items():
        setattr(rec, key, value)
    FileStateStore(project / "root" / "run").save_container(rec)
    return rec


def names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["Name"] for line in result.stdout.splitlines()]


def test_ps_status_filters_and_includes_stopped(project: Path) -> None:
    record(project, "web", "exited")
    record(project, "db", "created")
    record(project, "cache", "dead")
    assert names(orc(project, "ps", "--format", "json")) == []  # nothing running
    assert names(orc(project, "ps", "--status", "exited", "--format", "json")) == ["demo-web-1"]
    both = orc(project, "ps", "--status", "exited", "--status", "created", "--format", "json")
    assert sorted(names(both)) == ["demo-db-1", "demo-web-1"]
    assert names(orc(project, "ps", "--filter", "status=dead", "--format", "json")) == ["demo-cache-1"]
    assert names(orc(project, "ps", "--status", "exited", "db", "--format", "json")) == []
    assert names(orc(project, "ps", "-a", "db", "web", "--format", "json")) == ["demo-db-1", "demo-web-1"]
    assert names(orc(project, "ps", "--status", "bogus", "--format", "json")) == []  # as Compose
    refused = orc(project, "ps", "--filter", "name=web")
    assert refused.returncode != 0 and "only status=STATUS" in refused.stderr


# --- logs colours -----------------------------------------------------------------------------------


def entry(container: str, text: str) -> LogEntry:
    return LogEntry(time_ns=0, stream="stdout", text=text, container=container)


def test_coloured_prefixes_cycle_per_container() -> None:
    printer = LinePrinter(6, colour=True)
    lines = [printer.format(entry(name, "hi\n")) for name in ("web-1", "db-1", "web-1")]
    assert lines == [
        "\033[36mweb-1  | \033[0mhi\n",
        "\033[33mdb-1   | \033[0mhi\n",
        "\033[36mweb-1  | \033[0mhi\n",
    ]
    many = LinePrinter(0, colour=True)
    codes = [many.format(entry(f"c{i}", "x")).split("m", 1)[0] for i in range(11)]
    assert codes[5] == "\033[36;1" and codes[10] == codes[0]
    assert LinePrinter(6, colour=False).format(entry("web-1", "hi")) == "web-1  | hi\n"
    assert LinePrinter(6, colour=True, prefix=False).format(entry("web-1", "hi")) == "hi\n"


def test_logs_not_on_a_terminal_or_no_color_is_monochrome(project: Path) -> None:
    rec = record(project, "web", "exited")
    assert rec.log_path is not None
    writer = LogWriter(Path(rec.log_path), clock_ns=lambda: 1_764_000_000_000_000_000)
    writer.write("stdout", b"hello\n")
    writer.close()
    assert orc(project, "logs").stdout == "web-1 | hello\n"
    assert orc(project, "logs", "--no-color").stdout == "web-1 | hello\n"


def test_logs_index_picks_one_replica(project: Path) -> None:
    for number in (1, 2):
        rec = record(
            project,
            "web",
            "exited",
            name=f"demo-web-{number}",
            number=number,
            log_path=str(project / "root" / "lib" / "logs" / f"web-{number}.log"),
        )
        writer = LogWriter(Path(str(rec.log_path)), clock_ns=lambda n=number: 1_764_000_000_000_000_000 + n)
        writer.write("stdout", f"replica {number}\n".encode())
        writer.close()
    assert orc(project, "logs", "--no-log-prefix").stdout == "replica 1\nreplica 2\n"
    assert orc(project, "logs", "--index", "2").stdout == "web-2 | replica 2\n"
    assert orc(project, "ps", "-a", "--no-trunc", "--format", "json").returncode == 0
    refused = orc(project, "logs", "--index", "0")
    assert refused.returncode != 0 and "--index" in refused.stderr


def test_global_dry_run_prints_plans_and_refuses_what_it_cannot_simulate(project: Path) -> None:
    planned = orc(project, "up", "--dry-run")
    assert planned.returncode == 0 and "create demo-web-1" in planned.stdout, planned.stderr
    assert orc(project, "--dry-run", "up", "-d").stdout == planned.stdout
    created = orc(project, "--dry-run", "create")
    assert created.returncode == 0 and "create demo-web-1" in created.stdout, created.stderr
    assert "start demo-web-1" not in created.stdout  # create never starts
    record(project, "web", "exited")
    down = orc(project, "--dry-run", "down")
    assert down.returncode == 0 and "remove demo-web-1: down" in down.stdout, down.stderr
    assert (
        FileStateStore(project / "root" / "run").load_container("demo", "demo-web-1") is not None
    )  # untouched
    stop = orc(project, "--dry-run", "stop")  # web is not running: nothing to stop
    assert stop.returncode == 0 and stop.stdout == "project demo: nothing to do\n", stop.stderr
    for verb, line in (
        ("start", "start demo-web-1: exited (0)"),
        ("restart", "start demo-web-1: exited (0)"),
    ):
        shown = orc(project, "--dry-run", verb)
        assert shown.returncode == 0 and line in shown.stdout, (verb, shown.stdout, shown.stderr)
    removed = orc(project, "--dry-run", "rm", "-f")
    assert removed.returncode == 0 and "remove demo-web-1: rm" in removed.stdout, removed.stderr
    kept = FileStateStore(project / "root" / "run").load_container("demo", "demo-web-1")
    assert kept is not None and kept.status == "exited"  # none of them changed anything
    assert not socket_path(project / "root" / "run", "demo").exists()  # no supervisor was started
    refused = orc(project, "--dry-run", "kill")
    assert refused.returncode != 0 and "--dry-run is not supported by kill" in refused.stderr


# --- progress -------------------------------------------------------------------------------------

STARTED = {"type": "container", "action": "start", "id": "demo-web-1"}
RETRY = {"type": "image", "action": "retry", "id": "busybox:1", "attributes": {"error": "timeout"}}


def test_progress_modes_print_events_as_compose() -> None:
    assert event_line(STARTED, "tty") == " ✔ Container demo-web-1  Started"
    assert event_line(STARTED, "plain") == " Container demo-web-1  Started"
    assert json.loads(event_line(STARTED, "json") or "") == {
        "id": "Container demo-web-1",
        "status": "Started",
    }
    assert event_line(STARTED, "quiet") is None
    assert json.loads(event_line(RETRY, "json") or "") == {
        "id": "Image busybox:1",
        "status": "Retrying",
        "text": "timeout",
    }
    assert event_line({"type": "container", "action": "exec_start", "id": "x"}, "plain") is None


def test_progress_is_a_global_option_with_a_value() -> None:
    assert _requested_verb(["--progress", "json", "up", "-d"]) == "up"


def test_ansi_decides_colours_and_the_auto_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli import lifecycle
    from orchestrator.cli.verb_logs import use_colour

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(lifecycle, "_ansi", {"mode": "auto"})
    monkeypatch.setattr(lifecycle, "_progress", {"mode": "auto"})
    for terminal in (True, False):
        monkeypatch.setattr(sys.stdout, "isatty", lambda t=terminal: t)
        monkeypatch.setattr(sys.stderr, "isatty", lambda t=terminal: t)
        lifecycle.set_ansi("auto")
        assert use_colour(False) is terminal
        assert lifecycle.progress_mode() == ("tty" if terminal else "plain")
        lifecycle.set_ansi("never")
        assert use_colour(False) is False and lifecycle.progress_mode() == "plain"
        lifecycle.set_ansi("always")
        assert use_colour(False) is True and lifecycle.progress_mode() == "tty"
        assert use_colour(True) is False  # --no-color still wins
    with pytest.raises(UsageError, match="--ansi"):
        lifecycle.set_ansi("sometimes")


def test_parallel_is_checked_and_sent_with_every_request(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.daemon import handle as handle_module
    from orchestrator.daemon.handle import ProjectHandle, Roots

    assert _requested_verb(["--parallel", "2", "--ansi", "never", "up"]) == "up"
    refused = orc(project, "--parallel", "0", "ps")
    assert refused.returncode != 0 and "--parallel" in refused.stderr
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(handle_module, "call", lambda path, op, **fields: sent.append(fields) or {})
    handle = ProjectHandle(Roots.from_option(str(project / "root")), "demo", parallel=2)
    monkeypatch.setattr(handle, "supervisor", lambda: project / "socket")
    handle.request("ps")
    assert sent[-1]["parallel"] == 2
    handle.parallel = None
    handle.request("ps")
    assert "parallel" not in sent[-1]


def test_up_refuses_build_accepts_no_build_and_yes_and_quiet_pull_hides_pulls(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli import lifecycle
    from orchestrator.cli.lifecycle import without_pulls

    refused = orc(project, "up", "--build")
    assert refused.returncode != 0 and "orc does not build images" in refused.stderr
    accepted = orc(project, "up", "--dry-run", "--no-build", "-y")
    assert accepted.returncode == 0, accepted.stderr
    lifecycle.set_progress("plain")
    try:
        without_pulls({"type": "image", "action": "pull", "id": "busybox:1"})
        without_pulls({"type": "container", "action": "start", "id": "demo-web-1"})
    finally:
        lifecycle.set_progress("auto")
    printed = capsys.readouterr().err
    assert "Started" in printed and "Pulled" not in printed


def test_attach_dependencies_adds_what_the_services_depend_on(tmp_path: Path) -> None:
    from orchestrator.cli.verb_up import with_dependencies

    (tmp_path / "compose.yaml").write_text(
        "name: demo\nservices:\n"
        "  web: {image: x, depends_on: [api]}\n"
        "  api: {image: x, depends_on: {db: {condition: service_started}, cache: {condition: service_started}}}\n"
        "  db: {image: x}\n  cache: {image: x}\n  other: {image: x}\n"
    )
    loaded = load(
        LoadOptions(cwd=str(tmp_path), environ={}, files=(str(tmp_path / "compose.yaml"),)), HostFileSource()
    )
    assert with_dependencies(loaded, ["web"]) == ["web", "api", "cache", "db"]
    assert with_dependencies(loaded, ["db", "other"]) == ["db", "other"]


def test_progress_refuses_an_unknown_mode(project: Path) -> None:
    result = orc(project, "--progress", "fancy", "ps")
    assert result.returncode != 0 and "unsupported --progress 'fancy'" in result.stderr


# --- up --abort-on-container-exit ----------------------------------------------------------------


def rec(service: str, status: str, finished: float | None = None, code: int | None = None) -> Any:
    return ContainerRecord(
        project="demo",
        name=f"demo-{service}-1",
        service=service,
        number=1,
        container_id=service,
        config_hash="h",
        image="i",
        status=status,
        exit_code=code,
        finished_at=finished,
    )


def test_abort_waits_for_the_first_attached_container_to_exit() -> None:
    running = [rec("web", "running"), rec("db", "restarting")]
    assert abort_verdict(running, []) is None
    records = [rec("web", "exited", 5.0, 2), rec("db", "exited", 3.0, 4), rec("api", "running")]
    first = abort_verdict(records, [])
    assert first is not None and first.service == "db"
    assert abort_verdict(records, ["api"]) is None  # only the attached services count
    one_off = replace(rec("web", "exited", 1.0, 9), one_off=True, name="demo-web-run-1")
    assert abort_verdict([one_off, *running], []) is None


def test_abort_on_failure_ignores_clean_exits() -> None:
    records = [rec("init", "exited", 1.0, 0), rec("web", "running")]
    assert abort_verdict(records, [], failures_only=True) is None
    assert abort_verdict(records, []) is not None  # --abort-on-container-exit: any exit
    failed = [*records, rec("db", "exited", 2.0, 1)]
    first = abort_verdict(failed, [], failures_only=True)
    assert first is not None and first.service == "db"


def test_abort_exit_code_is_the_first_or_the_chosen_services() -> None:
    records = [rec("web", "exited", 5.0, 143), rec("db", "exited", 3.0, 4)]
    first = abort_verdict(records, [])
    assert abort_exit_code(records, first, None) == 4
    assert abort_exit_code(records, first, "web") == 143
    assert abort_exit_code(records, first, "gone") == 1
