"""``ps --orphans=false``: the containers of services the files no longer declare are left out,
and the files must load for it (by default ``ps`` needs only a project name)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from orchestrator.cli import ps
from orchestrator.cli.options import CommandContext

_CONTEXT = cast(CommandContext, SimpleNamespace())  # project_handle is replaced: never read


def _record(service: str) -> SimpleNamespace:
    return SimpleNamespace(
        service=service,
        status="running",
        name=f"demo-{service}-1",
        container_id=f"id-{service}",
        image="busybox",
        started_at=None,
        health=None,
        ports=[],
        networks=[],
        exit_code=None,
        project="demo",
    )


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    needs: list[bool] = []
    handle = SimpleNamespace(containers=lambda include_stopped: [_record("web"), _record("gone")])
    loaded = SimpleNamespace(document={"services": {"web": {}}})

    def project_handle(ctx: Any, need_files: bool = True) -> tuple[Any, Any]:
        needs.append(need_files)
        return handle, loaded

    monkeypatch.setattr(ps, "project_handle", project_handle)
    return needs


def test_orphans_are_listed_by_default(asked: list[bool], capsys: pytest.CaptureFixture[str]) -> None:
    ps.run_ps(_CONTEXT, list_services=True)
    assert capsys.readouterr().out.split() == ["gone", "web"]
    assert asked == [False]


def test_without_orphans_only_declared_services_are_listed(
    asked: list[bool], capsys: pytest.CaptureFixture[str]
) -> None:
    ps.run_ps(_CONTEXT, orphans=False)
    out = capsys.readouterr().out
    assert "demo-web-1" in out and "demo-gone-1" not in out
    assert asked == [True]
