"""``orc config`` through the real CLI (typer's runner): formats, listings, errors, -o, -q."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.app import app
from orchestrator.errors import StackError
from orchestrator.hostfs import HostFileSource

COMPOSE = """\
services:
  web:
    image: nginx:${TAG:-1.27}
    command: echo $$HOME
    depends_on: [db]
    ports: ["8080:80"]
    volumes: ["data:/data"]
  db:
    image: postgres
  tools:
    build: ./tools
    profiles: [debug]
volumes:
  data:
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    monkeypatch.chdir(tmp_path)
    for key in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "TAG"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_json_document(project: Path) -> None:
    code, out = run("-p", "demo", "config", "--format", "json")
    assert code == 0, out
    document = json.loads(out)
    assert list(document) == ["name", "networks", "services", "volumes"]
    assert document["services"]["web"]["image"] == "nginx:1.27"
    assert document["services"]["web"]["command"] == ["echo", "$$HOME"]  # printed escaped
    assert "tools" not in document["services"]


def test_yaml_is_the_default(project: Path) -> None:
    code, out = run("-p", "demo", "config")
    assert code == 0, out
    assert out.startswith("name: demo\nservices:\n  db:\n")


def test_listings(project: Path) -> None:
    assert run("config", "--services") == (0, "db\nweb\n")
    assert run("config", "--volumes") == (0, "data\n")
    assert run("-p", "demo", "--profile", "debug", "config", "--images") == (
        0,
        "postgres\ndemo-tools\nnginx:1.27\n",
    )
    assert run("config", "--profiles") == (0, "debug\n")
    code, out = run("config", "--hash", "*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["db", "web"]
    assert all(len(line.split()[1]) == 64 for line in out.splitlines())


def test_quiet_and_output_file(project: Path) -> None:
    assert run("config", "-q") == (0, "")
    code, out = run("config", "--format", "json", "-o", "out.json")
    assert code == 0 and out == ""
    assert json.loads((project / "out.json").read_text())["services"]["web"]["image"] == "nginx:1.27"


def test_service_selection(project: Path) -> None:
    code, out = run("config", "--format", "json", "db")
    assert code == 0, out
    assert list(json.loads(out)["services"]) == ["db"]


def test_no_interpolate(project: Path) -> None:
    code, out = run("config", "--no-interpolate", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["services"]["web"]["image"] == "nginx:${TAG:-1.27}"


def test_errors_are_one_located_line(project: Path) -> None:
    (project / "compose.yaml").write_text("services:\n  web:\n    image: x\n    ports: ['1.2.3:80:80']\n")
    result = CliRunner().invoke(app, ["config"])
    # the app raises; orchestrator.cli.app.main turns it into one stderr line and exit code 15
    assert isinstance(result.exception, StackError)
    assert str(result.exception) == (
        f"{project}/compose.yaml:4:13 services.web.ports[0]: invalid IP address: 1.2.3"
    )
    assert result.exception.exit_code == 15


def test_x_orc_blocks_are_checked_as_up_checks_them(project: Path) -> None:
    (project / "compose.yaml").write_text(
        "services:\n  web:\n    image: x\n    x-orc:\n      probe: {http: {port: nope}}\n      bogus: 1\n"
        "  ok:\n    image: x\n    x-orc: {ready_log: ready}\n"
    )
    result = CliRunner().invoke(app, ["config", "-q"])
    assert isinstance(result.exception, StackError)
    assert str(result.exception).splitlines() == [
        f"{project}/compose.yaml:6:14 services.web.x-orc.bogus: unknown x-orc key"
        " (known: rootfs, probe, ready_log, restart_on_unhealthy)",
        f"{project}/compose.yaml:5:28 services.web.x-orc.probe.http.port: must be a port number, got 'nope'",
    ]
    (project / "compose.yaml").write_text("services:\n  ok:\n    image: x\n    x-orc: {ready_log: ready}\n")
    assert CliRunner().invoke(app, ["config", "-q"]).exit_code == 0


def test_bad_format_is_a_usage_error(project: Path) -> None:
    result = CliRunner().invoke(app, ["config", "--format", "toml"])
    assert result.exit_code != 0


def test_host_file_source(tmp_path: Path) -> None:
    source = HostFileSource()
    (tmp_path / "d").mkdir()
    (tmp_path / "f.txt").write_text("héllo")
    assert source.read_text(str(tmp_path / "f.txt")) == "héllo"
    assert source.exists(str(tmp_path / "d")) and source.is_dir(str(tmp_path / "d"))
    assert not source.is_dir(str(tmp_path / "f.txt"))
    assert source.list_dir(str(tmp_path)) == ["d", "f.txt"]
    with pytest.raises(FileNotFoundError):
        source.read_text(str(tmp_path / "missing"))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        source.read_text(str(tmp_path / "bin"))
