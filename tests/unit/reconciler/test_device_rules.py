"""`devices:` become cgroup rules from the host node's own type and numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import PermanentError
from orchestrator.reconciler.adapter import _device_rule


def test_a_character_device_gives_its_major_minor_and_permissions() -> None:
    rule = _device_rule("/dev/null", "rw")
    assert (rule.kind, rule.major, rule.minor, rule.access) == ("c", 1, 3, "rw")
    assert _device_rule("/dev/zero", "").access == "rwm"


def test_a_missing_path_or_a_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no-such-device"):
        _device_rule(str(tmp_path / "no-such-device"), "rwm")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(PermanentError, match="not a device node"):
        _device_rule(str(plain), "rwm")
