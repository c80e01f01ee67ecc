"""The command line orc starts its supervisor and fork server with (``runtime.launch``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.runtime import launch


def probe_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str], cwd: Path | None = None
) -> None:
    """Write the probe modules (name → source) and put them on this process's path, second: a
    child drops the first entry, the caller's working directory (``cwd``, else ``tmp_path``)."""
    modules = tmp_path / "modules"
    modules.mkdir()
    for name, source in sources.items():
        (modules / f"{name}.py").write_text(source)
    monkeypatch.setattr(sys, "path", [str(cwd or tmp_path), str(modules), *sys.path])


def test_runs_the_module_as_main_with_its_arguments_and_without_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller's working directory (a user's project, for the CLI) holds a module that would
    # shadow the standard library's if the child put it on its path.
    project = tmp_path / "project"
    project.mkdir()
    (project / "json.py").write_text("raise SystemExit('the project directory was on the path')\n")
    probe_modules(
        tmp_path,
        monkeypatch,
        {
            "orc_launch_probe": (
                "import json, sys\n"
                "import orchestrator\n"
                "print(json.dumps({'name': __name__, 'argv': sys.argv[1:], 'no_site': sys.flags.no_site,\n"
                "    'site': 'site' in sys.modules, 'json': json.__file__, 'orc': orchestrator.__file__,\n"
                "    'optimize': sys.flags.optimize, 'doc': json.dumps.__doc__}))\n"
            )
        },
        cwd=project,
    )

    argv = launch.module_argv("orc_launch_probe", "--flag", "two words")
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)

    assert seen["name"] == "__main__"
    assert seen["argv"] == ["--flag", "two words"]
    assert seen["no_site"] == 1 and seen["site"] is False
    # -OO: no docstrings (~1 MiB of a supervisor) and no asserts
    assert seen["optimize"] == 2 and seen["doc"] is None
    assert not seen["json"].startswith(str(project))
    assert Path(seen["orc"]).parent == Path(launch.__file__).parent.parent
    # ps and pgrep -f still show which module runs
    assert "orc_launch_probe" in argv


def test_the_childs_path_starts_with_this_package_and_drops_the_callers_first_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "path", ["/somewhere/cwd", "", "/lib/a", "/lib/a", "/lib/b"])
    assert launch.child_path() == [launch.PACKAGE_ROOT, "/lib/a", "/lib/b"]


def test_lean_imports_run_the_event_loop_without_openssl_and_load_it_and_the_compressors_on_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_modules(
        tmp_path,
        monkeypatch,
        {
            "orc_launch_ssl_probe": (
                "import json, sys\n"
                "import anyio\n"
                "import orchestrator.daemon.supervisor, orchestrator.reconciler.adapter\n"
                "from orchestrator.runtime import fdio\n"
                "async def main():\n"
                "    left, right = __import__('socket').socketpair()\n"
                "    right.send(b'x')\n"
                "    await fdio.wait_readable(left)\n"
                "    await anyio.to_thread.run_sync(lambda: None)\n"
                "anyio.run(main)\n"
                "loaded_before_use = sorted(m for m in ('ssl', '_ssl', '_bz2', '_lzma') if m in sys.modules)\n"
                "import shutil\n"
                "formats = sorted(name for name, _ in shutil.get_archive_formats())\n"
                "import bz2\n"
                "compressed = bz2.decompress(bz2.compress(b'x' * 10)) == b'x' * 10\n"
                "import anyio._core._sockets as sockets, anyio.streams.tls as tls\n"
                "context = sockets.ssl.create_default_context()\n"  # anyio's own name for ssl: real on use
                "import ssl\n"
                "print(json.dumps({'before': loaded_before_use, 'asyncio_tls': __import__('asyncio.sslproto').sslproto.ssl is None,\n"
                "    'real': sys.modules['ssl'] is ssl and ssl.SSLContext.__module__ == 'ssl',\n"
                "    'same': sockets.ssl.MemoryBIO is ssl.MemoryBIO and type(context) is ssl.SSLContext,\n"
                "    'isinstance': isinstance(context, tls.SSLContext), 'made': type(tls.SSLContext()) is ssl.SSLContext,\n"
                "    'formats': formats, 'compressed': compressed}))\n"
            )
        },
    )
    argv = launch.module_argv("orc_launch_ssl_probe", lean_imports=True)
    seen = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert seen == {
        "before": [],
        "asyncio_tls": True,
        "real": True,
        "same": True,
        "isinstance": True,
        "made": True,
        # shutil still offers the compressed formats, and bz2 works once someone uses it
        "formats": ["bztar", "gztar", "tar", "xztar", "zip"],
        "compressed": True,
    }
    # Without the option the same program loads OpenSSL with the event loop (and the
    # compressors with shutil, which the supervisor's modules import).
    plain = launch.module_argv("orc_launch_ssl_probe")
    assert json.loads(subprocess.run(plain, capture_output=True, text=True, check=True).stdout)["before"] == [
        "_bz2",
        "_lzma",
        "_ssl",
        "ssl",
    ]


def test_the_early_module_begins_with_the_arguments_before_anything_else_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_modules(
        tmp_path,
        monkeypatch,
        {
            "orc_early_probe": (
                "import sys\n"
                "seen = {}\n"
                "def begin(args):\n"
                "    seen['args'] = list(args)\n"
                "    seen['asyncio'] = 'asyncio' in sys.modules\n"
                "    seen['main'] = 'orc_main_probe' in sys.modules\n"
            ),
            "orc_main_probe": (
                "import json, sys\nfrom orc_early_probe import seen\nprint(json.dumps({**seen, 'argv': sys.argv[1:]}))\n"
            ),
        },
    )

    argv = launch.module_argv("orc_main_probe", "--project", "p", lean_imports=True, early="orc_early_probe")
    seen = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)

    assert seen == {"args": ["--project", "p"], "asyncio": False, "main": False, "argv": ["--project", "p"]}
