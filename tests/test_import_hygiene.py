"""The read commands must stay cheap: each runs in a fresh interpreter against a real run
directory, and afterwards none of the heavy or daemon-side packages may have been imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_runs import FakeRun, git_repo, in_flight, make_run, result

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = (
    "textual",
    "rich",
    "git",
    "pygit2",
    "watchfiles",
    "anyio",
    "optuna",
    "daemon",
    "tui",
    "sqlalchemy",
)

PROBE = """
import contextlib, io, json, sys
from shared.cli.main import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
forbidden = set(json.loads(os.environ["EXPD_FORBIDDEN"]))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"code": code, "loaded": loaded, "stdout": out.getvalue(), "stderr": err.getvalue()}))
"""


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeRun]:
    """A run with results and logs whose daemon looks alive (so control commands are accepted)."""
    repo = git_repo(tmp_path_factory.mktemp("hygiene") / "repo")
    run = make_run(repo, live=True, experiment=2, baseline=5.0, best=4.0, in_flight=in_flight(2))
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(2).write_text("agent output\n")
    yield run
    run.die()


def run_probe(repo: Path, *argv: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EXPD_FORBIDDEN": json.dumps(FORBIDDEN),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import os\n" + PROBE, *argv],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ([], 0),
        (["--version"], 0),
        (["status"], 0),
        (["status", "--json"], 0),
        (["status", "--all", "--json"], 0),
        (["results"], 0),
        (["results", "--json"], 0),
        (["results", "--tsv", "--limit", "1"], 0),
        (["logs"], 0),
        (["logs", "--experiment", "2"], 0),
        (["list"], 0),
        (["list", "--json"], 0),
        (["report"], 0),
        (["report", "--format", "html"], 0),
        (["set", "max-experiments", "9"], 0),
        (["set", "guidance", "be bold"], 0),
        (["stop"], 0),
        (["abort"], 0),
        (["status", "no-such-run"], 1),
        (["attach"], 1),  # not on a terminal: a one-line error, and no Textual import
    ],
)
def test_read_commands_import_nothing_heavy(live_run: FakeRun, argv: list[str], code: int) -> None:
    got = run_probe(live_run.repo, *argv)
    assert got["loaded"] == [], f"expd {' '.join(argv)} imported {got['loaded']}"
    assert got["code"] == code, got["stderr"]


def test_importing_the_cli_alone_is_light(live_run: FakeRun) -> None:
    got = run_probe(live_run.repo, "--help")
    assert got["loaded"] == [] and got["code"] == 0


def tui_imports() -> list[str]:
    """Every module loaded by importing all of `tui`, in a fresh interpreter."""
    code = (
        "import json, pkgutil, importlib, sys, tui\n"
        "for m in pkgutil.walk_packages(tui.__path__, 'tui.'): importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def test_the_tui_never_imports_the_daemon_or_the_cli() -> None:
    """`tui` shows run files; it never drives the loop (no `daemon`, no git library), and it reads
    through `shared`'s contract (status, listing), not the CLI's presentation: the home screen
    starts runs through `python -m shared.cli.main`, never by import."""
    loaded = tui_imports()
    assert [m for m in loaded if m.split(".")[0] in ("daemon", "git", "pygit2")] == []
    assert [m for m in loaded if m.startswith("shared.cli")] == []


@pytest.fixture(scope="module")
def bakeoff_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose only run is a finished bakeoff run, with attempts and their files."""
    from tests import bakeoff_fakes as bf

    repo = git_repo(tmp_path_factory.mktemp("hygiene-bakeoff") / "repo")
    paths = bf.make_run(repo, bf.spec(tasks=2), phase="complete")
    bf.append(
        paths,
        bf.record("t000", "a", "passed", patch_files=["m.py"]),
        bf.record("t000", "b", "failed", patch_files=["m.py"]),
        bf.record("t001", "a", "error", error="agent exited with code 1"),
    )
    bf.write_attempt_files(paths, "t000", "a", patch="+x\n", log="worked\n")
    bf.write_attempt_files(paths, "t000", "b", patch="-x\n", log="tried\n")
    return repo


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "bk", "--json"],
        ["status", "bk"],
        ["list", "--json"],
        ["bakeoff", "results", "bk", "--json"],
        ["bakeoff", "report", "bk", "--format", "json"],
        ["bakeoff", "report", "bk", "--format", "html"],
        ["bakeoff", "report", "bk"],
        ["bakeoff", "errors", "bk"],
        ["bakeoff", "diff", "bk", "--task", "t000", "a", "b"],
    ],
)
def test_bakeoff_read_commands_import_nothing_heavy(bakeoff_repo: Path, argv: list[str]) -> None:
    got = run_probe(bakeoff_repo, *argv)
    assert got["loaded"] == [], f"expd {' '.join(argv)} imported {got['loaded']}"
    assert got["code"] in (0, 3), got["stderr"]
