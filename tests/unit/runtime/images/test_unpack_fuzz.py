"""Property: whatever a layer holds, unpacking writes nothing outside the layer directory.

Hypothesis builds layers from names with ``..``, ``.``, absolute prefixes and a few shared
components, and entries of every kind: files, directories, symlinks pointing anywhere (outside
included), hard links, whiteouts and opaque markers. Each example either unpacks or is refused
with a layer error; the sibling directory standing for "the rest of the host" never changes.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.runtime.images.unpack import (
    HostileLayerError,
    LayerFormatError,
    UnpackOptions,
    unpack_layer,
)
from tests.integration.images.support import Entry, tar_of_entries

COMPONENTS = st.sampled_from(["a", "b", "c", "..", ".", "", ".wh.a", ".wh..wh..opq", "OUT"])
NAMES = st.lists(COMPONENTS, min_size=1, max_size=4).map("/".join)
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
LINKS = st.one_of(NAMES, st.sampled_from(["OUTSIDE", "OUTSIDE/secret", "/", "../../..", "/etc"]))


@st.composite
def layers(draw: st.DrawFn) -> list[tuple[str, bytes, str]]:
    return draw(st.lists(st.tuples(NAMES, KINDS, LINKS), min_size=1, max_size=8))  # type: ignore[return-value]


def snapshot(d: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        out[str(p.relative_to(d))] = p.read_bytes() if p.is_file() and not p.is_symlink() else "other"
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers())
def test_nothing_is_written_outside_the_layer(spec: list[tuple[str, bytes, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside = base / "outside"
        outside.mkdir()
        (outside / "secret").write_text("keep")
        dest = base / "layer"
        dest.mkdir()
        entries = []
        for name, kind, link in spec:
            link = link.replace("OUTSIDE", str(outside))
            name = name.replace("OUT", str(outside).lstrip("/"))
            entries.append(
                Entry(name or ".", kind, data=b"x" if kind == tarfile.REGTYPE else b"", linkname=link)
            )
        before = sorted(os.listdir(base))
        try:
            unpack_layer(
                io.BytesIO(tar_of_entries(entries)), dest, UnpackOptions(False, "user.overlay.opaque")
            )
        except (HostileLayerError, LayerFormatError):
            pass
        assert snapshot(outside) == {"secret": b"keep"}
        assert sorted(os.listdir(base)) == before
