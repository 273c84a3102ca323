"""Bad input through the real CLI: one clear line, exit 1, no traceback, nothing half-created.

A program that cannot run is refused by `expd start` before anything exists. A measurement that
cannot be read is only discovered by running it: then the daemon starts, its baseline fails, and the
run ends `crashed` (reason `error`) with a message that `expd status` shows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared import codec
from shared.errors import ContractError
from shared.paths import RepoPaths, RunPaths
from shared.schema import RunState
from tests.repos import (
    AGENT_SH,
    expd,
    git,
    make_repo,
    processes_in,
    results,
    start,
    wait_dead,
    wait_finished,
    wait_for,
)


def toml_path(repo: Path) -> Path:
    return RepoPaths(repo).program("p").toml


def edit_toml(repo: Path, old: str, new: str) -> None:
    text = toml_path(repo).read_text()
    assert old in text
    toml_path(repo).write_text(text.replace(old, new))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_nothing_created(repo: Path) -> None:
    """No run directory, no worktree, no branch: the failed start left no trace."""
    runs_dir = RepoPaths(repo).program("p").runs_dir
    assert not (runs_dir.is_dir() and any(runs_dir.iterdir()))
    worktrees = RepoPaths(repo).worktrees_dir
    assert not (worktrees.is_dir() and any(worktrees.iterdir()))
    assert git(repo, "branch", "--list", "expd/*") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def run_id(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


# --------------------------------------------------------------------------- program.toml


@pytest.mark.parametrize(
    ("extra", "old", "new", "needles"),
    [
        ("[measure]\ntimout = 3\n", None, None, ["'timout'", "[measure]"]),
        ("", "max_experiments = 3", 'max_experiments = "ten"', ["max_experiments", "int"]),
        ("", 'direction = "lower"', 'direction = "down"', ["direction"]),
        ("", 'timeout = "20s"', 'timeout = "soon"', ["[agent] timeout", "'soon'"]),
        ("", "repeats = 1", "repeats = 0", ["repeats"]),
        ("", 'metric = "score"', "metric = ", ["invalid TOML"]),
        ("[gates]\nscore = {}\n", None, None, ["[gates] score", "min or max"]),
    ],
    ids=[
        "unknown-key",
        "mistyped",
        "bad-direction",
        "bad-duration",
        "zero-repeats",
        "syntax",
        "empty-gate",
    ],
)
def test_invalid_program_toml(
    tmp_path: Path, extra: str, old: str | None, new: str | None, needles: list[str]
) -> None:
    repo = make_repo(tmp_path / "repo", toml_extra=extra)
    if old is not None:
        assert new is not None
        edit_toml(repo, old, new)
    proc = expd("start", "p", cwd=repo)
    assert_one_line_error(proc, str(toml_path(repo)), *needles)
    assert_nothing_created(repo)


def test_unknown_program(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert_one_line_error(expd("start", "nope", cwd=repo), "'nope'", "expd init")
    assert_one_line_error(expd("start", "../p", cwd=repo), "invalid program name")
    assert_nothing_created(repo)


# --------------------------------------------------------------------------- the agent


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("./nope.sh", "./nope.sh"),
        ("no-such-binary-xyz --flag", "no-such-binary-xyz"),
        ("/nonexistent/agent", "/nonexistent/agent"),
    ],
    ids=["relative", "on-path", "absolute"],
)
def test_missing_agent_command_is_refused(tmp_path: Path, command: str, needle: str) -> None:
    repo = make_repo(tmp_path / "repo", agent_command=command)
    assert_one_line_error(expd("start", "p", cwd=repo), "not found", needle)
    assert_nothing_created(repo)


def test_uncommitted_agent_script_is_refused(tmp_path: Path) -> None:
    """The run's worktree is made from HEAD: an agent script that is not committed is not there."""
    repo = make_repo(tmp_path / "repo", agent_command="./new-agent.sh")
    (repo / "new-agent.sh").write_text("#!/bin/bash\ntrue\n")
    (repo / "new-agent.sh").chmod(0o755)
    assert_one_line_error(expd("start", "p", cwd=repo), "./new-agent.sh", "not committed")
    assert_nothing_created(repo)


# --------------------------------------------------------------------------- the repository


def test_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in (("start", "p"), ("status",), ("results", "--json")):
        assert_one_line_error(expd(*args, cwd=plain), "not inside a git repository")
    assert list(plain.iterdir()) == []


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    program = RepoPaths(repo).program("p").dir
    target = RepoPaths(empty).program("p").dir
    target.mkdir(parents=True)
    for name in ("program.toml", "program.md", "measure.sh"):
        (target / name).write_bytes((program / name).read_bytes())
    edit_toml(empty, 'command = "./agent.sh"', 'command = "true"')
    assert_one_line_error(expd("start", "p", cwd=empty), "no commits")
    assert_nothing_created(empty)


def test_unknown_run_id(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for args in (("status", "nope"), ("results", "nope"), ("resume", "nope"), ("stop", "nope")):
        assert_one_line_error(expd(*args, cwd=repo), "'nope'")
    assert_one_line_error(expd("status", cwd=repo), "no runs")


# --------------------------------------------------------------------------- a measurement that cannot be read


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ("echo 'all good, no numbers here'", "missing from the output"),
        ("echo '{\"score\": NaN}'", "is nan"),
        ("echo 'METRIC score=inf'", "is inf"),
        ("true", "(empty output)"),
        ("echo '{\"other\": 1}'", "found other"),
        ("echo oops >&2; exit 7", "exited with code 7: oops"),
        ("sleep 30", "timed out after 1s"),
    ],
    ids=["garbage", "nan", "inf", "nothing", "wrong-field", "exit-code", "hangs"],
)
def test_unreadable_baseline_ends_the_run_crashed(tmp_path: Path, output: str, needle: str) -> None:
    repo = make_repo(
        tmp_path / "repo",
        measure_sh=f"#!/bin/bash\n{output}\n",
        toml_extra='[measure]\ntimeout = "1s"\n',
    )
    proc = expd("start", "p", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr  # the daemon starts; the baseline fails in it
    info = json.loads(proc.stdout)
    paths = RepoPaths(repo).program("p").run(info["run_id"].split("/", 1)[1])
    final = wait_finished(paths, timeout=20)
    assert final.phase == "crashed" and final.termination_reason == "error"
    assert "baseline measurement failed" in final.message and needle in final.message, final.message
    assert results(paths) == []  # a failed baseline is not recorded as experiment 0
    assert not processes_in(Path(info["worktree"]))  # a hung measurement is killed

    status = expd("status", info["run_id"], "--json", cwd=repo)
    assert status.returncode == 3, status.stderr
    shown = json.loads(status.stdout)
    assert shown["daemon"] == "finished" and shown["phase"] == "crashed"
    assert shown["termination_reason"] == "error" and needle in shown["message"]
    human = expd("status", info["run_id"], cwd=repo)
    assert human.returncode == 3 and needle in human.stdout, human.stdout


# --------------------------------------------------------------------------- corrupt run files


def test_corrupt_state_json(tmp_path: Path) -> None:
    """`expd status` names the unreadable file; `expd resume` rebuilds the state from results."""
    repo = make_repo(tmp_path / "repo", max_experiments=3)
    paths = start(repo, env={"EXPD_FAULT": "measuring@2"})
    wait_dead(paths)
    paths.state_json.write_text('{"phase": "agent_running", "keeps": ')
    rid = run_id(paths)
    assert_one_line_error(expd("status", rid, cwd=repo), str(paths.state_json))
    assert_one_line_error(expd("status", rid, "--json", cwd=repo), "state.json")

    proc = expd("resume", rid, cwd=repo)
    assert proc.returncode == 0, proc.stderr

    def readable() -> bool:
        try:
            return codec.read(paths.state_json, RunState) is not None
        except ContractError:
            return False

    wait_for(readable, 15, "the resumed daemon to rewrite state.json")
    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.experiment for r in recs] == [0, 1, 2, 3]
    # state.json said experiment 2 was in flight; without it, its prompt still shows it began:
    # it is recorded once as interrupted and its number is not reused.
    assert [r.status for r in recs] == ["baseline", "keep", "crash", "keep"]
    assert "interrupted" in recs[2].reason
    assert paths.agent_log(2).read_text().count("EXPD-DESCRIPTION") == 1
    assert (final.keeps, final.discards, final.crashes) == (2, 0, 1)
    assert "rebuilt from results" in paths.daemon_log.read_text()
    wt = Path(json.loads(paths.run_json.read_text())["worktree"])
    assert git(wt, "status", "--porcelain") == ""
    assert git(wt, "rev-parse", "HEAD") == final.incumbent_commit


def test_corrupt_run_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo)
    wait_finished(paths)
    paths.run_json.write_text("{not json")
    rid = run_id(paths)
    assert_one_line_error(expd("resume", rid, cwd=repo), "run.json")


def test_program_changed_mid_run_ends_the_run(tmp_path: Path) -> None:
    """An evaluator edited during the run makes metrics incomparable: the run ends `error`,
    the experiment is recorded, and the worktree goes back to the last kept commit."""
    measure = tmp_path / "repo" / ".expd" / "programs" / "p" / "measure.sh"
    tamper = f'if [ "$EXPD_EXPERIMENT" = 2 ]; then echo "# x" >> "{measure}"; fi\n'
    # Unconfined: a sandboxed agent cannot even see the evaluator (tests/test_sandbox.py).
    repo = make_repo(
        tmp_path / "repo", max_experiments=3, agent_sh=AGENT_SH + tamper, sandbox="none"
    )
    paths = start(repo)
    final = wait_finished(paths)
    assert final.phase == "crashed" and final.termination_reason == "error"
    assert "program files changed" in final.message and "measure.sh" in final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "crash"]
    assert "program files changed" in recs[2].reason
    wt = Path(json.loads(paths.run_json.read_text())["worktree"])
    assert git(wt, "status", "--porcelain") == ""
    assert git(wt, "rev-parse", "HEAD") == final.incumbent_commit == recs[1].commit
    assert final.in_flight is None
