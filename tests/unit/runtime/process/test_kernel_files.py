"""``LinuxKernel``'s file reads, as the init uses them between fork and exec (the container's
/etc/passwd and /etc/group): the text as Python's text mode gives it, None for a missing file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.runtime.process.kernel import LinuxKernel


def test_read_text_reads_as_text_mode_does(tmp_path: Path) -> None:
    kernel = LinuxKernel()
    samples = {
        "plain": b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        "windows": b"root:x:0:0:root:/root:/bin/sh\r\napp:x:1000:1000::/home/app:/bin/sh\r\n",
        "old-mac": b"a\rb\r",
        "not-utf8": b"caf\xe9:x:5:5::/:/bin/sh\n",
        "large": b"user:x:1:1::/:/bin/sh\n" * 10000,  # more than one read
        "empty": b"",
    }
    for name, data in samples.items():
        path = tmp_path / name
        path.write_bytes(data)
        with open(path, encoding="utf-8", errors="replace") as f:
            expected = f.read()
        assert kernel.read_text(str(path)) == expected, name


def test_read_text_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert LinuxKernel().read_text(str(tmp_path / "passwd")) is None
