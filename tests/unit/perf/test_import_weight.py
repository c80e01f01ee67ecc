"""What the hot paths import: the CLI's project payload and the supervisor's netlink client.

Each check runs in a fresh interpreter (the test process has imported everything already).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile


def _new_modules(code: str) -> list[str]:
    script = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_cli_payload_does_not_import_the_reconciler_planner_or_model() -> None:
    new = _new_modules(
        "from orchestrator.cli.lifecycle import project_payload\n"
        "class P:\n"
        "    name = 'x'; working_dir = '/'; files = (); config_hashes = {}; records = {}\n"
        "    environment = {'TOKEN': 't', 'CONF': 'c', 'OTHER': 'o'}\n"
        "    document = {'secrets': {'s': {'environment': 'TOKEN'}, 'f': {'file': './f'}},\n"
        "                'configs': {'c': {'environment': 'CONF'}, 'm': {'environment': 'MISSING'}}}\n"
        "    @property\n"
        "    def stack(self): raise AssertionError('the payload must not bind the model')\n"
        "assert project_payload(P())['file_environment'] == {'TOKEN': 't', 'CONF': 'c'}\n"
        "from orchestrator.cli.lifecycle import image_options\n"
        "assert image_options(P())['base_dir'] == '/'"
    )
    heavy = [
        m
        for m in new
        if m.startswith(
            ("orchestrator.planner", "orchestrator.runtime", "orchestrator.model", "orchestrator.stack.bind")
        )
        or m.startswith(("asyncio", "anyio"))
    ]
    heavy += [
        m for m in new if m.startswith("orchestrator.reconciler.") and m != "orchestrator.reconciler.payload"
    ]
    assert heavy == []
    assert "orchestrator.reconciler.payload" in new


def test_netlink_client_loads_only_pyroute2s_rtnetlink_messages() -> None:
    new = _new_modules(
        "from orchestrator.runtime.network.netlink import _codecs\n"
        "ifinfmsg, ifaddrmsg, rtmsg = _codecs()\n"
        "assert (ifinfmsg.__name__, rtmsg.__name__) == ('ifinfmsg', 'rtmsg')"
    )
    assert "pyroute2.netlink.rtnl.ifinfmsg" in new
    assert not [m for m in new if m.startswith(("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nftables"))]
    assert "pyroute2.iproute.linux" not in new  # IPRoute: its import and its event loop per socket


def test_pyroute2s_config_gets_multiprocessing_on_first_use() -> None:
    """pyroute2's config takes multiprocessing's Pipe, Queue and Process by name, for helper
    processes orc never starts: the supervisor loads multiprocessing (and pickle's Python
    module with it) only if one is used."""
    new = _new_modules(
        "from orchestrator.runtime.network.netlink import _codecs\n"
        "_codecs()\n"
        "import sys, pyroute2.config as config\n"
        "assert 'multiprocessing' not in sys.modules\n"
        "queue = config.MpQueue()\n"
        "import multiprocessing, multiprocessing.queues\n"
        "assert isinstance(queue, multiprocessing.queues.Queue)\n"
        "assert isinstance(multiprocessing.Process(), config.MpProcess)\n"
        "left, right = config.MpPipe()\n"
        "left.send(1)\n"
        "assert right.recv() == 1"
    )
    assert "pyroute2.config" in new and "multiprocessing" in new


def test_asking_the_deferred_pyroute2_package_for_a_name_runs_it_whole() -> None:
    new = _new_modules(
        "from orchestrator.runtime.network.netlink import _codecs\n"
        "ifinfmsg, _, _ = _codecs()\n"
        "import pyroute2\n"
        "from pyroute2 import IPRoute, NDB\n"
        "from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg as again\n"
        "assert again is ifinfmsg and IPRoute.__name__ == 'IPRoute' and NDB.__name__ == 'NDB'\n"
        "assert pyroute2.__version__ != 'unknown'\n"
        "try:\n"
        "    pyroute2.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('missing names must still raise AttributeError')"
    )
    assert "pyroute2.ndb.main" in new


def test_loading_the_cli_and_its_verbs_imports_no_planner_model_or_reconciler() -> None:
    """Every verb module loads at each CLI start (``orc version`` included): what they need of
    the planner, model, reconciler or supervisor client is imported inside the verb."""
    new = _new_modules("import orchestrator.cli.app")
    heavy = [
        m
        for m in new
        if m.startswith(
            ("orchestrator.planner", "orchestrator.model", "orchestrator.reconciler", "orchestrator.runtime")
        )
        or m.startswith(("asyncio", "anyio", "yaml"))
    ]
    assert heavy == []


def test_fork_server_leaves_out_openssl_subprocess_and_the_runtime_client() -> None:
    """Every container is forked from the fork server: what it imports is resident there for
    good (hashlib's libcrypto alone was ~3.7 MiB) and copied into page tables on each fork."""
    new = _new_modules("import orchestrator.runtime.process.forkserver")
    assert [m for m in new if m in ("hashlib", "_hashlib", "ssl", "subprocess", "tempfile", "platform")] == []
    # Nor typing (~0.5 MiB: annotations only, ``kernel.Kernel`` is a Protocol to mypy alone) or
    # json (child reports are marshalled; a seccomp profile's key is its repr).
    assert [m for m in new if m in ("typing", "json", "_json")] == []
    # Nor socket's or pickle's Python halves (~0.3 and ~0.2 MiB): _socket and _pickle do.
    assert [m for m in new if m in ("socket", "selectors", "pickle")] == []
    assert "orchestrator.runtime.process.runtime" not in new


def test_the_clis_early_supervisor_start_imports_only_basics() -> None:
    """``cli.entry`` starts the supervisor of ``up`` before it imports anything else: the less
    this path imports, the sooner the supervisor's own start-up runs beside the CLI's."""
    root = tempfile.mkdtemp(prefix="orc-early-")
    new = _new_modules(
        "import orchestrator.daemon.spawn as spawn\n"
        "spawn.start_supervisor = lambda *args: (lambda: None)  # no real supervisor\n"
        "import orchestrator.cli.entry as entry\n"
        f"entry._boot_early(['--root', {root!r}, '-p', 'demo', 'up'])\n"
        "assert entry._early is not None and entry._early.project == 'demo'"
    )
    shutil.rmtree(root)
    heavy = (
        "dataclasses",
        "typing",
        "socket",
        "threading",
        "orchestrator.state.store",
        "orchestrator.errors",
    )
    assert [m for m in new if m in heavy] == []


def test_the_supervisor_leaves_out_argparse_hashlib_and_uuid() -> None:
    """Every ``up`` waits for the supervisor's imports: argparse cost ~13 ms of them, the two
    name hashes need no hashlib (CPython's built-in SHA-256 does), and uuid (~3 ms with the
    ``platform`` it loads) only named the process runtime's trash."""
    new = _new_modules("import orchestrator.daemon.supervisor, orchestrator.reconciler.adapter")
    assert [m for m in new if m in ("argparse", "hashlib", "_hashlib", "uuid", "platform")] == []
    with_netlink = _new_modules(
        "import orchestrator.daemon.supervisor, orchestrator.reconciler.adapter\n"
        "from orchestrator.runtime.network.netlink import _codecs\n"
        "_codecs()"
    )
    # Nor multiprocessing or pickle's Python module (_pickle does the runtime's pickling).
    assert [m for m in with_netlink if m in ("multiprocessing", "pickle")] == []


def test_the_supervisor_writes_its_timestamps_without_datetime() -> None:
    """Log lines and events carry RFC 3339 times (``orchestrator.timestamps``); ``datetime`` was
    ~0.45 MiB of every supervisor for those strings alone."""
    new = _new_modules(
        "import orchestrator.daemon.supervisor, orchestrator.reconciler.adapter\n"
        "from orchestrator.reconciler.events import Event\n"
        "from orchestrator.state.logs import format_time, parse_time\n"
        "assert Event(1.5, 'container', 'start', 'x').to_json()['time'] == '1970-01-01T00:00:01.500000Z'\n"
        "assert parse_time(format_time(1)) == 1"
    )
    assert [m for m in new if m in ("datetime", "_datetime", "calendar", "_strptime")] == []


def test_dataclasses_gets_inspect_only_when_it_first_needs_it() -> None:
    """``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``: ~5 ms and ~1 MiB)
    only to describe a class without a docstring (orchestrator.firstuse, via codecache). The
    fork server and the CLI's ``down``/``ps``/``stop`` path define no such class, so neither loads
    it; neither does the CLI load ``shutil`` (with bz2 and lzma) before it removes a project."""
    fork_server = _new_modules("import orchestrator.runtime.process.forkserver")
    assert "dataclasses" in fork_server
    # Nor pathlib (~0.8 MiB with urllib.parse and ipaddress) or traceback (only for an
    # unexpected error's report).
    assert [m for m in fork_server if m in ("inspect", "ast", "dis", "pathlib", "traceback")] == []
    cli = _new_modules(
        "import orchestrator.cli.entry, orchestrator.cli.fast, orchestrator.cli.lifecycle, orchestrator.cli.down\n"
        "import orchestrator.cli.stop, orchestrator.daemon.handle, orchestrator.daemon.client\n"
        "import orchestrator.state.store, orchestrator.cli.loadcache"
    )
    assert "dataclasses" in cli
    assert [m for m in cli if m in ("inspect", "ast", "dis", "shutil")] == []
    # A class without a docstring still gets the one dataclasses writes, from the real inspect.
    described = _new_modules(
        "import orchestrator.codecache, dataclasses\n"
        "@dataclasses.dataclass\n"
        "class Plain:\n"
        "    size: int = 1\n"
        "assert Plain.__doc__ == 'Plain(size: int = 1)', Plain.__doc__"
    )
    assert "inspect" in described


def test_loading_a_project_the_first_time_leaves_out_inspect_and_openssl(tmp_path: object) -> None:
    """A project loaded without the load cache (a new one, as every benchmark run's) imports the
    loader, YAML and the schema on the CLI's path, beside the supervisor's start: not ``inspect``
    (a loader dataclass without a docstring made ``dataclasses`` describe it with
    ``inspect.signature``, ~5 ms) nor ``hashlib`` with OpenSSL (the config hash, ~2.5 ms)."""
    new = _new_modules(
        "import os, tempfile\n"
        "d = tempfile.mkdtemp()\n"
        "open(os.path.join(d, 'compose.yaml'), 'w').write('services:\\n  web:\\n    image: busybox\\n')\n"
        "from orchestrator.stack.loader import LoadOptions, load\n"
        "from orchestrator.hostfs import HostFileSource\n"
        "project = load(LoadOptions(cwd=d, environ={}), HostFileSource())\n"
        "assert len(project.config_hashes['web']) == 64, project.config_hashes\n"
        "from orchestrator.reconciler.payload import document_payload"
    )
    assert "orchestrator.stack.loader" in new
    assert [m for m in new if m in ("inspect", "ast", "dis", "hashlib", "_hashlib")] == []
