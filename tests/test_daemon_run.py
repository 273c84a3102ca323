"""The real daemon end to end: `expd start` in a fresh interpreter, a detached daemon, real git.

The agent bumps `x` in f.py by one; the measurement scores |x - TARGET| + 1 (lower is better;
TARGET defaults to 3). Tests that need the agent to be busy at a known moment give it a *gate*
(AGENT_EXTRA runs `gate.sh N`): in experiment N it reports that it started, then waits for the test
to open the gate, so nothing depends on timing. The gate is in the agent's own tree, so the agent
runs confined, as by default.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import codec
from shared.paths import RepoPaths, RunPaths
from shared.schema import DaemonInfo, RunManifest
from tests.repos import (
    AGENT_SH,
    GIT_ENV,
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
    wait_finished,
    wait_for,
)

GATE_SH = """#!/bin/bash
# gate.sh N (or `any`): in experiment N, say so, then wait (30 s at most) for $GATE_DIR/open.
if [ "$1" != any ] && [ "$1" != "$EXPD_EXPERIMENT" ]; then exit 0; fi
mkdir -p "$GATE_DIR"
touch "$GATE_DIR/started-${EXPD_EXPERIMENT:-measure}"
for _ in $(seq 600); do
  [ -e "$GATE_DIR/open" ] && exit 0
  sleep 0.05
done
"""
AGENT_GATE = ".expd/gate"
"""The agent's gate, relative to its tree: ignored there (never part of a change), and inside the
only folder a confined agent may write, so these runs keep the default sandbox."""


class Gate:
    """A gate for the repository `root/repo`: the agent's side is `gate.sh`, committed into it,
    and the tree's `.expd/gate/`; a measurement's side is `root/gate/` (with its own `gate.sh`),
    which the program lists in `[measure] writable` (the measurement is confined too)."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.dir = root / "gate"
        self.dir.mkdir()
        self.script = self.dir / "gate.sh"
        self.script.write_text(GATE_SH)
        self.script.chmod(0o755)

    def env(self, experiment: int | str) -> dict[str, str]:
        """The agent's environment for a gate at `experiment` (commits `gate.sh` the first time)."""
        script = self.repo / "gate.sh"
        if not script.exists():
            script.write_text(GATE_SH)
            script.chmod(0o755)
            git(self.repo, "add", "gate.sh")
            git(self.repo, "commit", "-qm", "the test's gate")
        return {"AGENT_EXTRA": f"./gate.sh {experiment}", "GATE_DIR": AGENT_GATE}

    def _dirs(self) -> list[Path]:
        trees = RepoPaths(self.repo).worktrees_dir
        agents = [t / AGENT_GATE for t in trees.iterdir()] if trees.is_dir() else []
        return [self.dir, *agents]

    def wait_started(self, experiment: int | str) -> None:
        def started() -> bool:
            return any((d / f"started-{experiment}").exists() for d in self._dirs())

        wait_for(started, 15, f"the agent of experiment {experiment} to start")

    def open(self) -> None:
        for gate in self._dirs():
            gate.mkdir(parents=True, exist_ok=True)
            (gate / "open").touch()


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path)


def run_id(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def manifest(paths: RunPaths) -> RunManifest:
    return codec.read(paths.run_json, RunManifest)


def daemon_pid(paths: RunPaths) -> int:
    return codec.read(paths.daemon_json, DaemonInfo).pid


def edit_toml(repo: Path, old: str, new: str) -> None:
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))


def child_pgid(paths: RunPaths, experiment: int, stage: str = "agent") -> int:
    """The process group of the child the daemon runs now (call once the child has started)."""

    def ready() -> int | None:
        flight = state(paths).in_flight
        if flight and flight.experiment == experiment and flight.stage == stage:
            return flight.pgid
        return None

    return int(wait_for(ready, 15, f"the {stage} pgid of experiment {experiment}"))  # type: ignore[arg-type]


def assert_clean_at_incumbent(paths: RunPaths) -> None:
    mf = manifest(paths)
    st = state(paths)
    recs = results(paths)
    keeps = [r for r in recs if r.status == "keep"]
    incumbent = keeps[-1].commit if keeps else mf.base_commit
    wt = Path(mf.worktree)
    assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(wt, "rev-parse", "HEAD") == st.incumbent_commit == incumbent
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD") == mf.branch
    if st.phase in ("complete", "crashed"):
        assert not processes_in(wt), "a process of the run outlived it"


def assert_counts_match(paths: RunPaths) -> None:
    st = state(paths)
    recs = results(paths)
    assert [r.experiment for r in recs] == list(range(len(recs)))
    assert st.keeps == sum(r.status == "keep" for r in recs)
    assert st.discards == sum(r.status == "discard" for r in recs)
    assert st.crashes == sum(r.status == "crash" for r in recs)
    assert st.measurement_failures == sum(r.status == "measurement_failure" for r in recs)
    assert st.results_count == len(recs)


# --------------------------------------------------------------------------- a whole run


def test_run_completes_and_leaves_the_checkout_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=3)
    head_before = git(repo, "rev-parse", "HEAD")
    branch_before = git(repo, "rev-parse", "--abbrev-ref", "HEAD")

    began = time.monotonic()
    proc = expd("start", "p", cwd=repo, env={"TARGET": "1"})
    elapsed = time.monotonic() - began
    print(f"expd start returned in {elapsed:.2f}s")
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 5, elapsed
    match = re.search(r"\b(p/\d{8}-\d{6}(?:-\d+)?)\b", proc.stdout)
    assert match, proc.stdout
    rid = match.group(1)
    paths = RepoPaths(repo).program("p").run(rid.split("/", 1)[1])

    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "discard", "discard"]
    assert [r.metric for r in recs] == [2.0, 1.0, 2.0, 2.0]
    assert (final.keeps, final.discards, final.crashes) == (1, 2, 0)
    assert final.baseline == 2.0 and final.best == 1.0 and final.best_experiment == 1
    assert_counts_match(paths)
    assert recs[1].description == "x from 0 to 1"
    assert recs[1].diff.files == ["f.py"] and recs[1].diff.added == 1
    assert recs[2].description == "x from 1 to 2"
    assert "better" in recs[1].reason and "worse" in recs[2].reason

    # Every experiment has its patch and its agent log; every recorded commit stays reachable.
    for r, x in zip(recs[1:], (1, 2, 2), strict=True):
        patch = paths.patch(r.experiment).read_text()
        assert f"-x = {x - 1}\n+x = {x}\n" in patch, patch
        log = paths.agent_log(r.experiment).read_text()
        assert "EXPD-DESCRIPTION" in log, log
        ref = f"refs/expd/{rid}/{r.experiment:04d}"
        assert git(repo, "rev-parse", ref) == r.commit
    assert_clean_at_incumbent(paths)
    assert (Path(manifest(paths).worktree) / "f.py").read_text() == "x = 1\n"

    # The user's checkout: same HEAD, same branch, same files, nothing to commit.
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == branch_before
    assert (repo / "f.py").read_text() == "x = 0\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""

    status = expd("status", rid, "--json", cwd=repo)
    assert status.returncode == 3, status.stderr
    shown = json.loads(status.stdout)
    assert shown["daemon"] == "finished" and shown["phase"] == "complete"
    assert (shown["experiment"], shown["keeps"], shown["discards"]) == (3, 1, 2)

    out = expd("results", rid, "--json", cwd=repo)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [row["status"] for row in rows] == ["baseline", "keep", "discard", "discard"]
    for key in ("experiment", "commit", "metric", "samples", "description", "diff", "reason"):
        assert key in rows[1], key
    assert rows[1]["diff"]["files"] == ["f.py"]

    logs = expd("logs", rid, "--experiment", "1", cwd=repo)
    assert logs.returncode == 0, logs.stderr
    assert "x from 0 to 1" in logs.stdout


def test_start_excludes_expd_from_git(tmp_path: Path) -> None:
    """Even a hand-made program: `.expd/` (runs, worktrees) never shows up in `git status`."""
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text("# git ls-files --others --exclude-from=.git/info/exclude\n")
    paths = start(repo)
    assert any(line.strip().strip("/") == ".expd" for line in exclude.read_text().splitlines())
    wait_finished(paths)
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


# --------------------------------------------------------------------------- steering a live run


def test_stop_finishes_the_current_experiment(tmp_path: Path, gate: Gate) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=5)
    paths = start(repo, env=gate.env(1))
    gate.wait_started(1)
    proc = expd("stop", run_id(paths), "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)["request_id"]
    wait_for(lambda: request in state(paths).acked, 10, "the stop to be acknowledged")
    status = expd("status", run_id(paths), "--json", cwd=repo)
    assert status.returncode == 0, status.stderr  # still running: the agent is not interrupted
    shown = json.loads(status.stdout)
    assert shown["daemon"] == "running" and shown["phase"] == "agent_running"
    assert shown["in_flight"]["experiment"] == 1
    gate.open()
    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == "stopped"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep"]
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)


@pytest.mark.parametrize("stage", ["agent", "measuring"])
def test_abort_kills_the_child_and_reverts(tmp_path: Path, gate: Gate, stage: str) -> None:
    """The gate is never opened: only the abort ends the agent (or the measurement)."""
    if stage == "agent":
        repo = make_repo(tmp_path / "repo", max_experiments=5)
        paths = start(repo, env=gate.env(1))
        gate.wait_started(1)
    else:
        slow_candidates = MEASURE_SH.replace(
            "${MEASURE_EXTRA:-true}", 'if [ "$x" != 0 ]; then ${MEASURE_EXTRA:-true}; fi'
        )
        repo = make_repo(
            tmp_path / "repo",
            max_experiments=5,
            measure_sh=slow_candidates,
            toml_extra=measure_toml(gate.dir),
        )
        paths = start(repo, env={"GATE_DIR": str(gate.dir), "MEASURE_EXTRA": f"{gate.script} any"})
        gate.wait_started("measure")
    pgid = child_pgid(paths, 1, stage)
    assert group_members(pgid)
    began = time.monotonic()
    proc = expd("abort", run_id(paths), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: not group_members(pgid), 5, "the agent's process group to be killed")
    final = wait_finished(paths, timeout=10)
    elapsed = time.monotonic() - began
    print(f"abort took {elapsed:.2f}s")
    assert elapsed < 4, elapsed
    assert final.phase == "complete" and final.termination_reason == "aborted"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "crash"]
    assert "aborted" in recs[1].reason
    if stage == "measuring":
        assert recs[1].commit and recs[1].commit != manifest(paths).base_commit
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)
    assert (Path(manifest(paths).worktree) / "f.py").read_text() == "x = 0\n"


@pytest.mark.parametrize(("initial", "new"), [(1, 3), (6, 1)], ids=["raise", "lower"])
def test_set_max_experiments_mid_run(tmp_path: Path, gate: Gate, initial: int, new: int) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=initial)
    paths = start(repo, env={**gate.env(1), "TARGET": "0"})
    gate.wait_started(1)
    proc = expd("set", run_id(paths), "max-experiments", str(new), "--wait", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)["request_id"]
    assert request in state(paths).acked
    assert state(paths).max_experiments == new
    gate.open()
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments"
    assert final.max_experiments == new
    assert [r.experiment for r in results(paths)] == list(range(new + 1))
    assert_counts_match(paths)


@pytest.mark.parametrize(("signals", "reason"), [(1, "stopped"), (2, "aborted")])
def test_sigterm_stops_after_the_current_experiment(
    tmp_path: Path, gate: Gate, signals: int, reason: str
) -> None:
    """SIGTERM = stop (the experiment finishes and is recorded); a second one aborts."""
    repo = make_repo(tmp_path / "repo", max_experiments=5)
    paths = start(repo, env=gate.env(1))
    gate.wait_started(1)
    pid = daemon_pid(paths)
    for i in range(signals):
        os.kill(pid, signal.SIGTERM)
        word = "stopping" if i == 0 else "aborting"
        wait_for(lambda w=word: w in state(paths).message, 10, f"the daemon to say {word}")
    gate.open()
    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == reason
    recs = results(paths)
    assert [r.experiment for r in recs] == [0, 1]
    assert recs[1].status == ("keep" if reason == "stopped" else "crash")
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)


def test_racing_starts_one_wins(tmp_path: Path, gate: Gate) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    env = {**os.environ, **GIT_ENV, **gate.env(1)}
    command = [sys.executable, "-m", "shared.cli.main", "start", "p"]
    procs = [
        subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=30) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = outs[[p.returncode for p in procs].index(1)]
    err = loser[1].decode()
    assert "already has an active run" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err

    program = RepoPaths(repo).program("p")
    run_dirs = [d for d in program.runs_dir.iterdir() if d.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    assert len(list(RepoPaths(repo).worktrees_dir.iterdir())) == 1
    assert len(git(repo, "branch", "--list", "expd/*").splitlines()) == 1
    # The agent's tree is a standalone repository: no worktree is added to the user's.
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    gate.open()
    assert wait_finished(RunPaths(run_dirs[0])).termination_reason == "max_experiments"


# --------------------------------------------------------------------------- what an experiment can be


def test_agent_timeout_kills_its_group_and_records_a_crash(tmp_path: Path, gate: Gate) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    edit_toml(repo, 'timeout = "20s"', 'timeout = "1s"')
    paths = start(repo, env=gate.env(1))  # never opened: only the timeout ends the agent
    gate.wait_started(1)
    pgid = child_pgid(paths, 1)
    final = wait_finished(paths, timeout=15)
    wait_for(lambda: not group_members(pgid), 5, "the agent's process group to die")
    assert final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "crash"]
    assert "timed out" in recs[1].reason, recs[1].reason
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)


def test_build_runs_once_per_measurement_series(tmp_path: Path) -> None:
    counting = MEASURE_SH.replace("${MEASURE_EXTRA:-true}", 'echo measure >> "$COUNT_DIR/log"')
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=2,
        measure_sh=counting,
        toml_extra=measure_toml(
            tmp_path / "count", extra='build = "echo build >> \\"$COUNT_DIR/log\\""'
        ),
    )
    edit_toml(repo, "repeats = 1", "repeats = 3")
    count_dir = tmp_path / "count"
    paths = start(repo, env={"COUNT_DIR": str(count_dir)})
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    series = ["build", "measure", "measure", "measure"]
    # Experiment 1 is a keep: experiment 2 measures the new incumbent 3 times too, interleaved.
    expected = series * 2 + ["build"] + ["measure"] * 6
    assert (count_dir / "log").read_text().split() == expected
    recs = results(paths)
    assert [len(r.samples) for r in recs] == [3, 3, 3]


def test_gate_breach_discards_an_improvement(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo", max_experiments=1, toml_extra="[gates]\nscore = {max = 2}\n"
    )
    paths = start(repo)  # TARGET 3: baseline 4, experiment 1 scores 3 (better, but above 2)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "discard"]
    assert recs[1].metric == 3.0
    assert "gate score" in recs[1].reason and "max 2" in recs[1].reason, recs[1].reason
    assert recs[1].evidence["gates"]
    assert final.best == 4.0
    assert_clean_at_incumbent(paths)


def test_failing_measurement_is_a_measurement_failure(tmp_path: Path) -> None:
    failing = MEASURE_SH.replace(
        "${MEASURE_EXTRA:-true}", 'if [ "$x" != 0 ]; then echo "boom at $x" >&2; exit 3; fi'
    )
    repo = make_repo(tmp_path / "repo", max_experiments=2, measure_sh=failing)
    paths = start(repo)
    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "measurement_failure", "measurement_failure"]
    assert "code 3" in recs[1].reason and "boom at 1" in recs[1].reason, recs[1].reason
    assert final.measurement_failures == 2
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)


def test_agent_that_changes_nothing_is_a_crash(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=2, agent_sh="#!/bin/bash\ncat >/dev/null\n")
    paths = start(repo)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "crash", "crash"]
    assert all(r.reason == "no change produced" for r in recs[1:])
    assert_counts_match(paths)
    assert_clean_at_incumbent(paths)


def test_failing_agent_is_a_crash_and_its_change_reverted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo, env={"AGENT_EXTRA": "false"})  # edits f.py, then exits 1
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments"
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "crash"]
    assert "exited with code 1" in recs[1].reason
    assert_clean_at_incumbent(paths)


@pytest.mark.parametrize(
    "switch", ["git checkout -q -b side-$EXPD_EXPERIMENT", "git checkout -q --detach"]
)
def test_agent_that_commits_elsewhere_still_lands_on_the_run_branch(
    tmp_path: Path, switch: str
) -> None:
    """An agent may commit itself, even on another branch or a detached HEAD: what is kept must
    end up on the run's branch (that is what finalize and resume work from)."""
    agent = AGENT_SH.replace("cat > /dev/null\n", f"cat > /dev/null\n{switch}\n")
    agent = agent.replace('echo "EXPD-DESCRIPTION', "# echo")
    agent += 'git commit -qam "bump x by the agent"\n'
    repo = make_repo(tmp_path / "repo", max_experiments=2, agent_sh=agent)
    paths = start(repo)  # TARGET 3: both are keeps, so no revert puts the branch right
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "keep"]
    assert recs[1].description == "bump x by the agent"
    assert recs[2].parent == recs[1].commit
    assert_clean_at_incumbent(paths)
    mf = manifest(paths)
    assert git(repo, "rev-parse", mf.branch) == recs[2].commit


def test_stagnation_ends_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=10)
    edit_toml(repo, "max_experiments = 10", "max_experiments = 10\nmax_consecutive_discards = 2")
    paths = start(repo, env={"TARGET": "0"})  # every change is worse
    final = wait_finished(paths)
    assert final.phase == "complete" and final.termination_reason == "stagnation"
    assert [r.status for r in results(paths)] == ["baseline", "discard", "discard"]
    assert final.consecutive_non_keeps == 2
    assert_clean_at_incumbent(paths)


@pytest.mark.parametrize("clear", [False, True])
def test_guidance_round_trip_reaches_the_next_agent(
    tmp_path: Path, gate: Gate, clear: bool
) -> None:
    """`expd set guidance` during experiment 1: experiment 2's briefing carries it (or, once
    cleared, does not), and guidance.md says what the daemon holds."""
    repo = make_repo(tmp_path / "repo", max_experiments=2)
    paths = start(repo, env=gate.env(1))
    gate.wait_started(1)
    rid = run_id(paths)
    proc = expd("set", rid, "guidance", "try caching the parse step", "--wait", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert state(paths).guidance == "try caching the parse step"
    if clear:
        proc = expd("set", rid, "guidance", "", "--wait", cwd=repo)
        assert proc.returncode == 0, proc.stderr
        assert state(paths).guidance == ""
    gate.open()
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments"
    assert "try caching" not in paths.prompt(1).read_text()
    second = paths.prompt(2).read_text()
    if clear:
        assert "try caching" not in second
        assert paths.guidance.read_text() == ""
    else:
        assert "try caching the parse step" in second
        assert second.index("try caching") < second.index("Recent experiments")
        assert paths.guidance.read_text().strip() == "try caching the parse step"
