"""The CLI's half of the image options the supervisor reads from an `up` request."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_the_clis_image_options_are_what_the_supervisor_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from orchestrator.cli.lifecycle import image_options
    from orchestrator.reconciler.ports import ImageOptions

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("ORC_INSECURE_REGISTRIES", "127.0.0.1:5000")
    monkeypatch.delenv("ORC_CERTS_DIR", raising=False)
    sent = image_options(SimpleNamespace(working_dir=tmp_path))
    expected = ImageOptions(
        environment={"DOCKER_CONFIG": str(tmp_path / "docker"), "ORC_INSECURE_REGISTRIES": "127.0.0.1:5000"},
        home=str(Path.home()),
        base_dir=str(tmp_path),
    )
    assert ImageOptions.from_json(sent) == expected
    assert sent == expected.to_json()
