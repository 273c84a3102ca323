"""The `tune` agent against real git repositories and a real Optuna study in SQLite."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import msgspec
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentTask,
    AgentUnavailable,
    Final,
    Text,
)
from daemon.agents.registry import make_agent
from daemon.agents.tune import STUDY_NAME, TuneAgent, format_value
from shared.paths import RunPaths
from shared.programs import parse_program
from shared.schema import ProgramConfig, ResultRecord, RunManifest, TuneParam

SETTINGS = 'ALPHA = 3\nBETA = 0.5\nMODE = "fast"\n'

PARAMS = """
[tune.params.ALPHA]
file = "settings.py"
pattern = '^ALPHA = (\\d+)'
type = "int"
low = 0
high = 12

[tune.params.BETA]
file = "settings.py"
pattern = '^BETA = ([0-9.e-]+)'
type = "float"
low = 0.0
high = 1.0

[tune.params.MODE]
file = "settings.py"
pattern = '^MODE = "(\\w+)"'
type = "choice"
choices = ["fast", "slow", "auto"]
"""


def program(params: str = PARAMS, *, seed: int = 3) -> ProgramConfig:
    text = (
        'metric = "loss"\ndirection = "lower"\n[measure]\ncommand = "true"\n'
        f'[agent]\nkind = "tune"\n[tune]\nseed = {seed}\n{params}'
    )
    return parse_program(text, source=Path("program.toml"))


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "settings.py").write_text(SETTINGS)
    git(root, "init", "-q")
    git(root, "add", "settings.py")
    git(root, "commit", "-q", "-m", "start")
    return root


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def task(experiment: int, repo: Path, run_dir: Path) -> AgentTask:
    return AgentTask(
        experiment=experiment,
        worktree=repo,
        run_dir=run_dir,
        prompt="",
        prompt_file=run_dir / "prompt.md",
        timeout=60.0,
        env={},
    )


def study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY_NAME, storage=f"sqlite:///{RunPaths(run_dir).tune_db}"
    )


def trials_of(run_dir: Path, experiment: int) -> list[FrozenTrial]:
    return [t for t in study(run_dir).trials if t.user_attrs.get("experiment") == experiment]


def values(repo: Path) -> tuple[int, float, str]:
    text = (repo / "settings.py").read_text()
    alpha = re.search(r"^ALPHA = (\d+)", text, re.M)
    beta = re.search(r"^BETA = ([0-9.e-]+)", text, re.M)
    mode = re.search(r'^MODE = "(\w+)"', text, re.M)
    assert alpha and beta and mode, text
    return int(alpha.group(1)), float(beta.group(1)), mode.group(1)


def objective(repo: Path) -> float:
    """A deterministic 'measurement' of the current files; best at ALPHA=9, BETA=0.2, slow."""
    alpha, beta, mode = values(repo)
    return (alpha - 9) ** 2 + 20 * (beta - 0.2) ** 2 + (0 if mode == "slow" else 4)


async def test_run_writes_values_into_the_files_and_commits(repo: Path, run_dir: Path) -> None:
    agent = TuneAgent(program(), run_dir=run_dir)
    events: list[AgentEvent] = []
    outcome = await agent.run(task(1, repo, run_dir), events.append)

    assert outcome.error is None
    alpha, beta, mode = values(repo)
    params = outcome.extra["params"]
    assert (alpha, mode) == (params["ALPHA"], params["MODE"])
    assert beta == pytest.approx(params["BETA"], rel=1e-9)
    assert outcome.description == f"tune: ALPHA={alpha}, BETA={beta!r}, MODE={mode}"
    assert git(repo, "log", "-1", "--format=%s") == outcome.description
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "expd <expd@localhost>"
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "status", "--porcelain") == ""
    assert any(isinstance(e, Text) and "ALPHA=" in e.text for e in events)
    assert isinstance(events[-1], Final) and events[-1].description == outcome.description
    [trial] = trials_of(run_dir, 1)
    assert trial.state == TrialState.RUNNING
    assert trial.number == outcome.extra["trial"]
    await agent.close()


async def test_make_agent_builds_the_tune_agent(run_dir: Path) -> None:
    agent = make_agent(program(), kind="tune", model=None, run_dir=run_dir)
    assert isinstance(agent, TuneAgent) and agent.kind == "tune"


async def test_feedback_seeds_the_baseline_and_tells_every_outcome(
    repo: Path, run_dir: Path
) -> None:
    run_dir.mkdir()
    # The daemon gives no worktree with the baseline record: the agent finds it in run.json.
    manifest = RunManifest(run_id="p/1", worktree=str(repo))
    RunPaths(run_dir).run_json.write_bytes(msgspec.json.encode(manifest))
    agent = TuneAgent(program(), run_dir=run_dir)
    await agent.feedback(ResultRecord(experiment=0, status="baseline", metric=40.0))

    [seeded] = trials_of(run_dir, 0)
    assert seeded.state == TrialState.COMPLETE and seeded.value == 40.0
    assert seeded.params == {"ALPHA": 3, "BETA": 0.5, "MODE": "fast"}

    outcomes = {"discard": 55.5, "keep": 12.0, "crash": None, "measurement_failure": None}
    for experiment, (status, metric) in enumerate(outcomes.items(), start=1):
        await agent.run(task(experiment, repo, run_dir), lambda e: None)
        if status != "keep":
            git(repo, "reset", "-q", "--hard", "HEAD~1")
        await agent.feedback(ResultRecord(experiment=experiment, status=status, metric=metric))

    discard, keep, crash, failure = (trials_of(run_dir, n)[0] for n in range(1, 5))
    assert (discard.state, discard.value) == (TrialState.COMPLETE, 55.5)
    assert (keep.state, keep.value) == (TrialState.COMPLETE, 12.0)
    assert crash.state == failure.state == TrialState.FAIL
    assert study(run_dir).user_attrs["incumbent"] == 12.0
    # Telling twice (e.g. a resumed daemon replays a record) is harmless.
    await agent.feedback(ResultRecord(experiment=1, status="discard", metric=1.0))
    assert trials_of(run_dir, 1)[0].value == 55.5


async def test_baseline_outside_the_search_space_is_not_seeded(repo: Path, run_dir: Path) -> None:
    (repo / "settings.py").write_text(SETTINGS.replace("ALPHA = 3", "ALPHA = 99"))
    agent = TuneAgent(program(), run_dir=run_dir, worktree=repo)
    await agent.feedback(ResultRecord(experiment=0, status="baseline", metric=7.0))
    assert study(run_dir).trials == []
    assert study(run_dir).user_attrs["incumbent"] == 7.0


async def test_proposals_learn_from_feedback(repo: Path, run_dir: Path) -> None:
    agent = TuneAgent(program(seed=11), run_dir=run_dir, worktree=repo)
    best = baseline = objective(repo)
    await agent.feedback(ResultRecord(experiment=0, status="baseline", metric=baseline))
    kept = git(repo, "rev-parse", "HEAD")
    measured: list[float] = []
    for experiment in range(1, 16):
        outcome = await agent.run(task(experiment, repo, run_dir), lambda e: None)
        assert outcome.error is None, outcome.error
        metric = objective(repo)
        measured.append(metric)
        status = "keep" if metric < best else "discard"
        if status == "keep":
            best, kept = metric, git(repo, "rev-parse", "HEAD")
        else:
            git(repo, "reset", "-q", "--hard", kept)
        await agent.feedback(ResultRecord(experiment=experiment, status=status, metric=metric))

    assert min(measured) < measured[0]
    assert min(measured[8:]) < sorted(measured[:8])[len(measured[:8]) // 2]
    assert best < baseline / 2
    done = [t for t in study(run_dir).trials if t.user_attrs.get("experiment", 0) > 0]
    assert all(t.state == TrialState.COMPLETE for t in done)


async def test_recover_fails_trials_that_were_never_told(repo: Path, run_dir: Path) -> None:
    first = TuneAgent(program(), run_dir=run_dir)
    await first.run(task(1, repo, run_dir), lambda e: None)
    await first.close()
    # The daemon was killed here; a new daemon builds a new agent and recovers.
    second = TuneAgent(program(), run_dir=run_dir)
    await second.recover(1)
    [trial] = trials_of(run_dir, 1)
    assert trial.state == TrialState.FAIL
    assert not study(run_dir).get_trials(states=(TrialState.RUNNING,))


async def test_a_new_agent_on_the_same_run_dir_continues_the_study(
    repo: Path, run_dir: Path
) -> None:
    first = TuneAgent(program(), run_dir=run_dir)
    one = await first.run(task(1, repo, run_dir), lambda e: None)
    await first.close()

    second = TuneAgent(program(), run_dir=run_dir)
    await second.feedback(ResultRecord(experiment=1, status="keep", metric=5.0))
    [trial] = trials_of(run_dir, 1)
    assert (trial.state, trial.value) == (TrialState.COMPLETE, 5.0)
    two = await second.run(task(2, repo, run_dir), lambda e: None)
    assert two.error is None
    assert two.extra["trial"] > one.extra["trial"]
    assert two.extra["params"] != one.extra["params"]
    assert git(repo, "rev-list", "--count", "HEAD") == "3"


async def test_outcomes_recorded_but_never_told_are_caught_up_on_restart(
    repo: Path, run_dir: Path
) -> None:
    first = TuneAgent(program(), run_dir=run_dir)
    await first.run(task(1, repo, run_dir), lambda e: None)
    await first.close()
    # Killed after results.jsonl got experiment 1's keep, before feedback reached the study.
    record = ResultRecord(experiment=1, status="keep", metric=5.0)
    RunPaths(run_dir).results.write_bytes(msgspec.json.encode(record) + b"\n")

    second = TuneAgent(program(), run_dir=run_dir)
    await second.run(task(2, repo, run_dir), lambda e: None)
    [one] = trials_of(run_dir, 1)
    assert (one.state, one.value) == (TrialState.COMPLETE, 5.0)
    assert study(run_dir).user_attrs["incumbent"] == 5.0
    # Experiment 2 is never told (no record either); once experiment 3 begins it is failed.
    await second.run(task(3, repo, run_dir), lambda e: None)
    [two], [three] = trials_of(run_dir, 2), trials_of(run_dir, 3)
    assert two.state == TrialState.FAIL
    assert three.state == TrialState.RUNNING


async def test_a_pattern_that_matches_nothing_names_the_file(repo: Path, run_dir: Path) -> None:
    params = PARAMS + "\n[tune.params.GAMMA]\nfile = 'settings.py'\npattern = '^GAMMA = (\\d+)'\n"
    params += "type = 'int'\nlow = 1\nhigh = 5\n"
    agent = TuneAgent(program(params), run_dir=run_dir)
    events: list[AgentEvent] = []
    outcome = await agent.run(task(1, repo, run_dir), events.append)

    assert outcome.error is not None
    assert "settings.py" in outcome.error and "GAMMA" in outcome.error
    assert any(isinstance(e, AgentErrorEvent) and "GAMMA" in e.message for e in events)
    assert (repo / "settings.py").read_text() == SETTINGS
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    # Checked before asking: no trial is left dangling (the study is not even opened).
    assert not RunPaths(run_dir).tune_db.exists()


async def test_a_missing_file_is_an_outcome_error(repo: Path, run_dir: Path) -> None:
    params = PARAMS.replace(
        'file = "settings.py"\npattern = \'^BETA', 'file = "gone.py"\npattern = \'^BETA'
    )
    agent = TuneAgent(program(params), run_dir=run_dir)
    outcome = await agent.run(task(1, repo, run_dir), lambda e: None)
    assert outcome.error is not None and "gone.py" in outcome.error and "BETA" in outcome.error


async def test_nothing_new_to_try_is_an_error_after_telling_the_repeats(
    repo: Path, run_dir: Path
) -> None:
    params = """
[tune.params.MODE]
file = "settings.py"
pattern = '^MODE = "(\\w+)"'
type = "choice"
choices = ["fast"]
"""
    agent = TuneAgent(program(params), run_dir=run_dir, worktree=repo)
    await agent.feedback(ResultRecord(experiment=0, status="baseline", metric=9.0))
    outcome = await agent.run(task(1, repo, run_dir), lambda e: None)

    assert outcome.error == "no new parameter values to try"
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    repeats = trials_of(run_dir, 1)
    assert len(repeats) == 20
    assert all(t.state == TrialState.COMPLETE and t.value == 9.0 for t in repeats)
    await agent.feedback(ResultRecord(experiment=1, status="crash"))
    assert all(t.state == TrialState.COMPLETE for t in trials_of(run_dir, 1))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("log = true\nstep = 2", "log and step"),
        ("step = 0.5", "whole number"),
    ],
)
def test_declarations_optuna_cannot_represent_are_refused(
    run_dir: Path, extra: str, message: str
) -> None:
    params = f"[tune.params.N]\nfile = 'f'\npattern = '(\\d+)'\ntype = 'int'\nlow = 1\nhigh = 8\n{extra}\n"
    with pytest.raises(AgentUnavailable, match=message):
        TuneAgent(program(params), run_dir=run_dir)


def test_values_are_written_compactly() -> None:
    as_float = TuneParam(file="f", pattern="(x)", type="float", low=0, high=1)
    assert format_value(as_float, 0.1 + 0.2) == "0.3"
    assert format_value(as_float, 1e-5) == "1e-05"
    assert format_value(as_float, 0.123456789) == "0.123456789"
    assert format_value(TuneParam(file="f", pattern="(x)", type="int"), 4.0) == "4"
    assert format_value(TuneParam(file="f", pattern="(x)", type="choice"), True) == "True"
