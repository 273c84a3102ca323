"""`status --json`, `status --all --json` and `list --json` of checked-in run directories, byte for
byte against checked-in output: old run directories keep loading, and the contract keeps its keys,
their order and their values.

The fixture (`fixtures/status_v1/`) holds the programs of a repository's `.expd/programs/`: a run
whose daemon died in flight (its state.json from a newer expd, with unknown fields), a complete run
with drift and noise notes, a run with only run.json, a run with an unreadable state.json, and an
invalid program. Only the repository path and heartbeat ages vary between machines.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from shared import runs
from shared.cli.main import main
from shared.paths import RepoPaths
from tests.fake_runs import git_repo

FIXTURE = Path(__file__).parent / "fixtures" / "status_v1"
EXPECTED = Path(__file__).parent / "fixtures" / "status_v1_expected"
RUNS = ["speed/20260101-120000", "speed/20260102-090000", "speed/20260103-080000"]
AGE = re.compile(r'"heartbeat_age": [0-9.e+-]+')


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    programs = RepoPaths(root).programs_dir
    shutil.copytree(FIXTURE, programs)
    for ref in runs.repo_runs(root):
        runs.register(ref.paths, root, ref.run_id)
    monkeypatch.chdir(root)
    return root


def output(capsys: pytest.CaptureFixture[str], repo: Path, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    for path in {str(repo), str(repo.resolve())}:
        out = out.replace(path, "<repo>")
    return code, AGE.sub('"heartbeat_age": "<age>"', out)


@pytest.mark.parametrize(("run_id", "code"), [(RUNS[0], 3), (RUNS[1], 3), (RUNS[2], 3)])
def test_status_json_matches_the_golden_output(
    repo: Path, capsys: pytest.CaptureFixture[str], run_id: str, code: int
) -> None:
    got = output(capsys, repo, "status", "--json", run_id)
    name = run_id.replace("/", "_")
    assert got == (code, (EXPECTED / f"status_{name}.json").read_text())


def test_status_all_json_matches_the_golden_output(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = output(capsys, repo, "status", "--all", "--json")
    assert got == (0, (EXPECTED / "status_all.json").read_text())


def test_list_json_matches_the_golden_output(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = output(capsys, repo, "list", "--json")
    assert got == (0, (EXPECTED / "list.json").read_text())
