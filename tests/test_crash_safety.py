"""Crash safety: `kill -9` of the real daemon at every point of the loop, then `expd resume`.

Each case starts a run whose daemon SIGKILLs itself at a named point (`EXPD_FAULT`), or kills the
daemon from outside at a moment observed in its files, checks that `expd status` reports it dead,
resumes it with `expd resume`, and checks the invariants the product promises: numbering 0..max
with no gap and no duplicate, the interrupted experiment recorded once as an interrupted crash,
counters equal to the results, and the worktree clean at the last kept commit on the run's branch.

The agent bumps `x` in f.py by one; the measurement scores |x - TARGET| + 1 (lower is better), so
TARGET decides which experiments are keeps: TARGET=3 keeps 1..3, TARGET=1 keeps 1 and discards the
rest, TARGET=0 discards everything.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from daemon.ops import sandbox
from shared import codec
from shared.locking import is_locked
from shared.paths import RepoPaths, RunPaths
from shared.schema import DaemonInfo, RunManifest, RunState
from tests.repos import (
    MEASURE_SH,
    expd,
    git,
    group_members,
    make_repo,
    measure_toml,
    processes_in,
    results,
    start,
    state,
    wait_dead,
    wait_finished,
    wait_for,
)

MAX = 3

# The measurement with MEASURE_EXTRA applied to candidates only (x != 0), never to the baseline.
MEASURE_CANDIDATES_SLOW = MEASURE_SH.replace(
    "${MEASURE_EXTRA:-true}", 'if [ "$x" != 0 ]; then ${MEASURE_EXTRA:-true}; fi'
)

# What a sleeping child runs (`slow.sh N`: only in experiment N; `slow.sh any`: always): say it
# started, sleep long, then leave a marker it never should (its group is killed first).
SLOW_SH = """#!/bin/bash
if [ "$1" != any ] && [ "$1" != "$EXPD_EXPERIMENT" ]; then exit 0; fi
mkdir -p "$SLOW_DIR"
touch "$SLOW_DIR/started"
sleep 30
touch "$SLOW_DIR/finished"
"""
AGENT_SLOW = ".expd/slow"
"""The agent's markers, relative to its tree: ignored there, and inside the only folder a confined
agent may write."""


@pytest.fixture(autouse=True)
def _no_inherited_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the `expd start` that should crash gets EXPD_FAULT (tests/conftest.py isolates
    EXPD_STATE_DIR)."""
    monkeypatch.delenv("EXPD_FAULT", raising=False)


# --------------------------------------------------------------------------- the expected run


def model(target: int, interrupted: set[int], max_experiments: int = MAX) -> tuple[list, int]:
    """Statuses and metrics the loop must record, and the final x of the incumbent."""
    x = 0
    score = abs(x - target) + 1
    out: list[tuple[str, float | None]] = [("baseline", float(score))]
    for n in range(1, max_experiments + 1):
        if n in interrupted:
            out.append(("crash", None))
            continue
        candidate = abs(x + 1 - target) + 1
        if (score - candidate) / score > 0.01:
            x, score = x + 1, candidate
            out.append(("keep", float(candidate)))
        else:
            out.append(("discard", float(candidate)))
    return out, x


def run_id(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def manifest(paths: RunPaths) -> RunManifest:
    return codec.read(paths.run_json, RunManifest)


def interrupted_by(before: RunState, paths: RunPaths) -> set[int]:
    """The experiment the dead daemon was working on and had not recorded (never the baseline)."""
    recorded = {r.experiment for r in results(paths)}
    flight = before.in_flight
    if flight is None or flight.experiment == 0 or flight.experiment in recorded:
        return set()
    return {flight.experiment}


def assert_dead(repo: Path, paths: RunPaths) -> RunState:
    """`expd status` says the daemon is dead and the run unfinished; returns the state it left."""
    wait_dead(paths)
    proc = expd("status", run_id(paths), "--json", cwd=repo)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    status = json.loads(proc.stdout)
    assert status["daemon"] == "dead", status
    assert status["phase"] not in ("complete", "crashed"), status
    assert status["termination_reason"] is None, status
    return state(paths)


def resume(repo: Path, paths: RunPaths, target: int) -> RunState:
    """`expd resume` (with the measurement's TARGET, but never the fault) until the run ends."""
    proc = expd("resume", run_id(paths), cwd=repo, env={"TARGET": str(target)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return wait_finished(paths)


def check_invariants(repo: Path, paths: RunPaths, *, target: int, interrupted: set[int]) -> None:
    final = state(paths)
    assert final.phase == "complete", (final.phase, final.message)
    assert final.termination_reason == "max_experiments", final.message
    assert final.in_flight is None
    recs = results(paths)
    numbers = [r.experiment for r in recs]
    assert numbers == list(range(MAX + 1)), numbers  # in order, no gap, no duplicate

    expected, final_x = model(target, interrupted)
    assert [r.status for r in recs] == [s for s, _ in expected]
    assert [r.metric for r in recs] == [m for _, m in expected]
    for r in recs:
        if r.experiment in interrupted:
            assert r.status == "crash" and "interrupted" in r.reason, r
        else:
            assert "interrupted" not in r.reason, r

    counts = {s: sum(r.status == s for r in recs) for s in ("keep", "discard", "crash")}
    assert (final.keeps, final.discards, final.crashes) == (
        counts["keep"],
        counts["discard"],
        counts["crash"],
    )
    assert final.measurement_failures == sum(r.status == "measurement_failure" for r in recs)
    assert final.results_count == len(recs)
    assert final.experiment == MAX

    mf = manifest(paths)
    keeps = [r for r in recs if r.status == "keep"]
    incumbent = keeps[-1].commit if keeps else mf.base_commit
    wt = Path(mf.worktree)
    assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(wt, "rev-parse", "HEAD") == final.incumbent_commit == incumbent
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD") == mf.branch
    assert (wt / "f.py").read_text() == f"x = {final_x}\n"
    assert not processes_in(wt), "a process of the run outlived it"
    # The user's checkout is never touched.
    assert (repo / "f.py").read_text() == "x = 0\n"
    assert git(repo, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- injected faults

# (fault, TARGET, the experiment left unrecorded by the kill, or None)
FAULTS = [
    ("baseline_start", 3, None),
    ("baseline_measured", 3, None),
    ("baseline_recorded", 3, None),
    ("agent_start", 3, 1),
    ("agent_start@2", 1, 2),
    ("agent_end@1", 3, 1),
    ("agent_end@2", 1, 2),
    ("auto_commit@1", 3, 1),
    ("auto_commit@2", 3, 2),
    ("measuring@1", 1, 1),
    ("measuring@2", 1, 2),
    ("measured", 3, 1),
    ("measured@2", 3, 2),
    ("decided@1", 0, 1),  # a discard
    ("decided@2", 3, 2),  # a keep
    ("decided@2", 1, 2),  # a discard
    ("recorded@1", 3, None),  # a keep
    ("recorded@2", 1, None),  # a discard
    ("recorded@3", 3, None),  # the last experiment, a keep
    ("reverting", 0, None),
    ("reverting@2", 1, None),
    ("reverted@1", 0, None),
    ("reverted@2", 1, None),
    ("reverted@3", 1, None),  # the last experiment, a discard
]


@pytest.mark.parametrize(
    ("fault", "target", "lost"),
    FAULTS,
    ids=[f"{f}-T{t}" for f, t, _ in FAULTS],
)
def test_fault_then_resume(tmp_path: Path, fault: str, target: int, lost: int | None) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=MAX)
    paths = start(repo, env={"EXPD_FAULT": fault, "TARGET": str(target)})
    before = assert_dead(repo, paths)
    name, _, at = fault.partition("@")
    assert before.in_flight is not None, "the daemon died outside an experiment"
    if at:
        assert before.in_flight.experiment == int(at)
    interrupted = interrupted_by(before, paths)
    assert interrupted == (set() if lost is None else {lost})
    if name.startswith("baseline"):
        recorded = [r.status for r in results(paths)]
        assert recorded == (["baseline"] if name == "baseline_recorded" else [])

    # The resumed daemon must not inherit the fault: the test environment never had it.
    assert "EXPD_FAULT" not in os.environ
    resume(repo, paths, target)
    check_invariants(repo, paths, target=target, interrupted=interrupted)
    assert sum(r.status == "baseline" for r in results(paths)) == 1
    assert state(paths).resumes == 1


def test_two_crashes_in_one_run(tmp_path: Path) -> None:
    """A resumed run that dies again resumes again; numbering still never repeats."""
    repo = make_repo(tmp_path / "repo", max_experiments=MAX)
    paths = start(repo, env={"EXPD_FAULT": "measuring@1", "TARGET": "3"})
    before = assert_dead(repo, paths)
    lost = interrupted_by(before, paths)
    proc = expd("resume", run_id(paths), cwd=repo, env={"EXPD_FAULT": "agent_end@2", "TARGET": "3"})
    assert proc.returncode == 0, proc.stderr
    before = assert_dead(repo, paths)
    lost |= interrupted_by(before, paths)
    assert lost == {1, 2}
    resume(repo, paths, 3)
    check_invariants(repo, paths, target=3, interrupted=lost)
    assert state(paths).resumes == 2


# --------------------------------------------------------------------------- kill -9 from outside


def kill_daemon(paths: RunPaths) -> None:
    info = codec.read(paths.daemon_json, DaemonInfo)
    os.kill(info.pid, signal.SIGKILL)


class Slow:
    """A sleeping child for the repository `root/repo`. The agent's copy is committed into it and
    marks the tree's `.expd/slow/`, so a confined agent can run it; a measurement's copy lives in
    and marks `root/slow/`, which the program lists in `[measure] writable`."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.dir = root / "slow"
        self.dir.mkdir()
        self.script = self.dir / "slow.sh"
        self.script.write_text(SLOW_SH)
        self.script.chmod(0o755)

    def agent(self, experiment: int) -> dict[str, str]:
        """The environment that slows the agent of `experiment` (commits `slow.sh` at first)."""
        script = self.repo / "slow.sh"
        if not script.exists():
            script.write_text(SLOW_SH)
            script.chmod(0o755)
            git(self.repo, "add", "slow.sh")
            git(self.repo, "commit", "-qm", "the test's slow child")
        return {"AGENT_EXTRA": f"./slow.sh {experiment}", "SLOW_DIR": AGENT_SLOW}

    def measuring(self) -> dict[str, str]:
        return {"MEASURE_EXTRA": f"{self.script} any", "SLOW_DIR": str(self.dir)}

    def marked(self, name: str) -> bool:
        trees = RepoPaths(self.repo).worktrees_dir
        agents = [t / AGENT_SLOW for t in trees.iterdir()] if trees.is_dir() else []
        return any((d / name).exists() for d in (self.dir, *agents))


def in_flight_pgid(paths: RunPaths, experiment: int, stage: str) -> int:
    def ready() -> int | None:
        flight = state(paths).in_flight
        if flight and flight.experiment == experiment and flight.stage == stage and flight.pgid:
            return flight.pgid
        return None

    return int(wait_for(ready, 15, f"experiment {experiment} {stage} with a tracked pgid"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stage", "experiment"),
    [
        ("agent", 1),
        ("agent", 2),
        # measure.sh applies MEASURE_EXTRA to candidates only, so the baseline is quick.
        ("measuring", 1),
    ],
    ids=["agent-1", "agent-2", "measuring-1"],
)
def test_external_kill_while_child_runs(tmp_path: Path, stage: str, experiment: int) -> None:
    """The daemon dies while its agent (or measurement) sleeps; resume kills the orphaned group.

    The agent (or the measurement) is landlocked where the kernel can (else unconfined): under
    bwrap it would die with the daemon instead of waiting for the resume (tests/test_sandbox.py
    tests that)."""
    slow = Slow(tmp_path)
    confined = "landlock" if sandbox.probe("landlock").ok else "none"
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=MAX,
        measure_sh=MEASURE_CANDIDATES_SLOW,
        sandbox=confined if stage == "agent" else None,
        toml_extra="" if stage == "agent" else measure_toml(slow.dir, sandbox=confined),
    )
    env = slow.agent(experiment) if stage == "agent" else slow.measuring()
    # Only `expd start` has the slow child; the resumed daemon runs without it.
    paths = start(repo, env={**env, "TARGET": "1"})
    wait_for(lambda: slow.marked("started"), 15, "the slow child to start")
    pgid = in_flight_pgid(paths, experiment, stage)
    kill_daemon(paths)
    before = assert_dead(repo, paths)
    assert group_members(pgid), "the orphaned child group should outlive the daemon"
    assert before.in_flight is not None and before.in_flight.pgid == pgid
    interrupted = interrupted_by(before, paths)
    assert interrupted == {experiment}

    proc = expd("resume", run_id(paths), cwd=repo, env={"TARGET": "1"})
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: not group_members(pgid), 10, "the orphaned process group to be killed")
    wait_finished(paths)
    check_invariants(repo, paths, target=1, interrupted=interrupted)
    assert not slow.marked("finished")
    log = paths.daemon_log.read_text()
    assert "leftover process" in log, log


def test_max_experiments_set_before_the_kill_survives_it(tmp_path: Path) -> None:
    """`expd set max-experiments` is in state.json: the resumed run ends where it was told to."""
    slow = Slow(tmp_path)
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo, env=slow.agent(1))
    wait_for(lambda: slow.marked("started"), 15, "the agent to start")
    proc = expd("set", run_id(paths), "max-experiments", str(MAX), "--wait", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    kill_daemon(paths)
    before = assert_dead(repo, paths)
    assert before.max_experiments == MAX
    resume(repo, paths, 3)
    check_invariants(repo, paths, target=3, interrupted={1})


def test_external_kill_between_experiments(tmp_path: Path) -> None:
    """Killed right after experiment 1 is recorded: whatever was in flight is handled once."""
    slow = Slow(tmp_path)
    repo = make_repo(tmp_path / "repo", max_experiments=MAX)
    paths = start(repo, env={**slow.agent(2), "TARGET": "0"})
    wait_for(
        lambda: any(r.experiment == 1 for r in results(paths)), 15, "experiment 1 to be recorded"
    )
    kill_daemon(paths)
    before = assert_dead(repo, paths)
    interrupted = interrupted_by(before, paths)
    assert interrupted <= {2}
    resume(repo, paths, 0)
    check_invariants(repo, paths, target=0, interrupted=interrupted)


def test_resume_restores_a_deleted_worktree(tmp_path: Path) -> None:
    """The worktree is disposable: resume re-creates it from the run's branch."""
    repo = make_repo(tmp_path / "repo", max_experiments=MAX)
    paths = start(repo, env={"EXPD_FAULT": "agent_end@2", "TARGET": "1"})
    before = assert_dead(repo, paths)
    interrupted = interrupted_by(before, paths)
    shutil.rmtree(manifest(paths).worktree)
    resume(repo, paths, 1)
    check_invariants(repo, paths, target=1, interrupted=interrupted)


def test_torn_results_line_is_dropped_on_resume(tmp_path: Path) -> None:
    """A crash mid-append leaves a partial last line; the resumed daemon cuts it and goes on."""
    repo = make_repo(tmp_path / "repo", max_experiments=MAX)
    paths = start(repo, env={"EXPD_FAULT": "decided@2", "TARGET": "3"})
    before = assert_dead(repo, paths)
    interrupted = interrupted_by(before, paths)
    assert interrupted == {2}
    with open(paths.results, "ab") as handle:
        handle.write(b'{"experiment": 2, "status": "ke')
    resume(repo, paths, 3)
    check_invariants(repo, paths, target=3, interrupted=interrupted)
    assert "torn last line" in paths.daemon_log.read_text()


def test_resume_refuses_a_running_and_a_complete_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo, env={"AGENT_EXTRA": "sleep 2"})
    proc = expd("resume", run_id(paths), cwd=repo)
    assert proc.returncode == 1 and "already running" in proc.stderr, proc.stderr
    wait_finished(paths)
    assert not is_locked(paths.daemon_lock)
    proc = expd("resume", run_id(paths), cwd=repo)
    assert proc.returncode == 1 and "complete" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
