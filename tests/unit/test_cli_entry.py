"""The entry point's command-line pre-scan and project-name guess (no typer, no supervisor)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.entry import (
    claim_early_boot,
    guess_project_name,
    requested_verb,
    scan_global_options,
    spell_flag_values,
)


def test_scan_reads_the_global_options_before_the_verb_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORC_ROOT", raising=False)
    scanned = scan_global_options(
        [
            "-f",
            "a.yaml",
            "--file=b.yaml",
            "-p",
            "Demo",
            "--root=/r",
            "--project-directory",
            "d",
            "up",
            "-p",
            "x",
        ]
    )
    assert scanned.files == ["a.yaml", "b.yaml"]
    assert (scanned.project_name, scanned.project_directory, scanned.root) == ("Demo", "d", "/r")
    assert requested_verb(["--progress", "json", "-f", "up", "ps"]) == "ps"  # `up` is -f's value


def test_scan_takes_orc_root_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORC_ROOT", "/from/env")
    assert scan_global_options(["up"]).root == "/from/env"
    assert scan_global_options(["--root", "/given", "up"]).root == "/given"


def test_guess_follows_compose_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    project = tmp_path / "My Dir"
    project.mkdir()
    monkeypatch.chdir(project)
    assert guess_project_name(None, [], None) is None  # no file: no guess
    (project / "compose.yaml").write_text("services: {}\n")
    assert guess_project_name(None, [], None) == "mydir"
    assert guess_project_name(None, [], str(tmp_path / "Other_One")) == "other_one"
    (project / "named.yaml").write_text("name: Named\nservices: {}\n")
    assert guess_project_name(None, ["compose.yaml", "named.yaml"], None) == "named"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "fromenv")
    assert guess_project_name(None, ["named.yaml"], None) == "fromenv"
    assert guess_project_name("-Given", ["named.yaml"], None) == "given"
    monkeypatch.delenv("COMPOSE_PROJECT_NAME")
    (project / "interpolated.yaml").write_text("name: ${NAME}\nservices: {}\n")
    assert guess_project_name(None, ["interpolated.yaml"], None) is None
    (project / "broken.yaml").write_text("name: [\n")
    assert guess_project_name(None, ["broken.yaml"], None) is None


def test_nothing_to_claim_without_an_early_boot() -> None:
    assert claim_early_boot("demo", Path("/run/orc")) is None


def test_only_up_boots_early_and_its_boot_is_claimed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.cli import entry
    from orchestrator.daemon import spawn

    started: list[tuple[str, Path]] = []

    def begin(run_root: Path, lib_root: Path, project: str, prefix: str = "orc") -> object:
        started.append((project, run_root))
        return lambda: tmp_path / "socket"

    monkeypatch.setattr(spawn, "begin_early", begin)
    monkeypatch.setattr(entry, "_early", None)
    monkeypatch.setattr(entry.atexit, "register", lambda fn: None)
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text("name: demo\nservices: {}\n")
    for argv in (["ps"], ["up", "--dry-run"], ["up", "--locked"], ["up", "--help"], ["--root", "/r", "down"]):
        entry._boot_early(argv)
    assert started == []
    entry._boot_early(["--root", str(tmp_path / "r"), "up", "-d"])
    assert started == [("demo", tmp_path / "r" / "run")]
    assert claim_early_boot("other", tmp_path / "r" / "run") is None
    claimed = claim_early_boot("demo", tmp_path / "r" / "run")
    assert claimed is not None and claimed() == tmp_path / "socket"
    assert claim_early_boot("demo", tmp_path / "r" / "run") is None


def test_exit_codes_as_the_interpreter_would_give_them(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli.entry import _exit_code

    assert (_exit_code(None), _exit_code(0), _exit_code(15)) == (0, 0, 15)
    assert _exit_code("went wrong") == 1
    assert capsys.readouterr().err == "went wrong\n"


def test_the_fast_exit_flushes_output_and_runs_atexit_handlers(tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "atexit-ran"
    script = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "from orchestrator.cli.entry import main\n"
        "sys.stdout.write('x' * 100000)\n"  # still buffered when main ends
        "main(['version', '--short'])\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.startswith("x" * 100000)
        and done.stdout.endswith("\n")
        and "not reached" not in done.stdout
    )
    assert marker.exists()
    failed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "no-such-verb"], capture_output=True, timeout=60
    )
    assert failed.returncode == 2


def test_top_level_name_reads_plain_and_quoted_values_and_refuses_the_rest() -> None:
    from orchestrator.cli.entry import _UNSURE, top_level_name

    assert top_level_name("services:\n  a:\n    name: inner\n") is None  # indented: not the project's
    assert top_level_name("name: demo\nservices: {}\n") == "demo"
    assert top_level_name("name: 'My App'  # comment\n") == "My App"
    assert top_level_name('name: "x-y"\n---\nname: later\n') == "later"  # the last one wins
    for unsure in ("name: &n demo\n", "name:\n  demo\n", "name: [a]\n", 'name: "a\\tb"\n', "name: |\n  x\n"):
        assert top_level_name(unsure) is _UNSURE, unsure


CORPUS = Path("/work/shared/compose-corpus")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="compose corpus not present")
def test_top_level_name_agrees_with_yaml_on_the_corpus() -> None:
    """Wherever the scan is sure, it reads what a YAML parser reads (every document's ``name``,
    the last one winning, as successive documents merge)."""
    import yaml

    from orchestrator.cli.entry import _UNSURE, top_level_name

    checked = 0
    for path in sorted(CORPUS.rglob("*.y*ml")):
        text = path.read_text(errors="replace")
        try:
            documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        names = [str(d["name"]) for d in documents if d.get("name") is not None]
        scanned = top_level_name(text)
        if scanned is _UNSURE:
            continue
        assert scanned == (names[-1] if names else None), path
        checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("argv", "spelled"),
    [
        (["ps", "--orphans=false"], ["ps", "--no-orphans"]),
        (["ps", "-a", "--orphans=0", "web"], ["ps", "-a", "--no-orphans", "web"]),
        (["ps", "--orphans=TRUE"], ["ps", "--orphans"]),
        (["-p", "ps", "--root=/r", "ps", "--orphans=F"], ["-p", "ps", "--root=/r", "ps", "--no-orphans"]),
        (["ps", "--orphans=maybe"], ["ps", "--orphans=maybe"]),  # click refuses it, as Go would
        (["ps", "--orphans"], ["ps", "--orphans"]),
        (["exec", "web", "sh", "--orphans=false"], ["exec", "web", "sh", "--orphans=false"]),
        (["-p", "x"], ["-p", "x"]),
    ],
)
def test_composes_valued_boolean_flags_are_spelled_as_clicks(argv: list[str], spelled: list[str]) -> None:
    assert spell_flag_values(argv) == spelled


def test_orphans_false_reaches_ps_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli import entry, ps

    seen: list[dict[str, object]] = []
    monkeypatch.setattr(ps, "run_ps", lambda ctx, services=None, **arguments: seen.append(arguments))
    monkeypatch.setattr(entry, "exit_now", lambda code: seen.append({"exit": code}))
    entry.main(["-p", "demo", "ps", "--orphans=false"])
    assert seen[0]["orphans"] is False
    assert seen[-1] == {"exit": 0}
