"""Resuming bakeoff runs through the real daemon: after `kill -9` no finished attempt runs again
and each attempt is recorded once; an attempt interrupted twice is recorded as an error; a complete
run is refused unless errors are retried or a replay waits; replays run another variant on an
attempt's prompt. The agents run unconfined so they can count their runs in a file outside the
repository (`$MARKS`)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from daemon.commands.bakeoff import request_replay, resume_bakeoff, start_bakeoff
from shared import codec
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.status import build_bakeoff_status
from shared.errors import UserError
from shared.liveness import held
from shared.schema import DaemonInfo
from tests.bakeoff_repos import (
    PREAMBLE,
    SOLVE,
    bk_state,
    events,
    make_bakeoff_repo,
    marks,
    newest,
    records,
    statuses,
    wait_done,
)
from tests.repos import expd, group_members, wait_for


def start(root: Path) -> BakeoffRunPaths:
    return BakeoffRunPaths(start_bakeoff(root, "bk").run_dir)


def kill_daemon(paths: BakeoffRunPaths) -> None:
    """SIGKILL the daemon, as a crash would, and wait until it let go of the run."""
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_for(lambda: not held(paths), 60, "the killed daemon to let go")


def test_kill_9_mid_matrix_then_resume_runs_no_finished_attempt_twice(tmp_path: Path) -> None:
    ran = tmp_path / "marks.txt"
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=4,
        variants={"solver": "solver", "half": "half"},
        sandbox="none",
        env={"MARKS": str(ran), "AGENT_EXTRA": "sleep 0.4"},
    )
    paths = start(bk.repo)

    def mid_matrix() -> bool:
        return len(records(paths)) >= 2 and any(r.pgid for r in bk_state(paths).running)

    wait_for(mid_matrix, 60, "some attempts recorded and others running")
    kill_daemon(paths)
    before = {r.key for r in records(paths)}
    # Killed between an attempt's record and the state's save, it is running and recorded.
    interrupted = {r.key for r in bk_state(paths).running} - before
    started = Counter(marks(ran))  # an interrupted attempt's agent may not have started yet
    assert before
    # `expd resume` hands a bakeoff run to `expd bakeoff resume`.
    resumed = expd("resume", f"bk/{paths.dir.name}", cwd=bk.repo)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    state = wait_done(paths)
    assert state.termination_reason == "finished" and state.resumes == 1
    keys = [r.key for r in records(paths)]
    assert len(keys) == len(set(keys)) == 8  # each attempt recorded once
    counts = Counter(marks(ran))
    for key in before:
        assert counts[key] == 1, f"{key} ran again after it was recorded"
    for key in interrupted:
        # Run again once. Its first agent, orphaned by the kill, may still have written its mark
        # after `started` was read: two marks then, though none had been seen.
        assert counts[key] == 2 or (started[key] == 0 and counts[key] == 1), (key, counts, started)
        assert newest(paths)[key].reruns == 1 and state.interrupted[key] == 1
    assert all(n == 1 for key, n in counts.items() if key not in interrupted)
    expected = {f"t{i}/solver/1": "passed" for i in range(4)}
    expected |= {f"t{i}/half/1": "passed" if i % 2 == 0 else "failed" for i in range(4)}
    assert statuses(paths) == expected
    kinds = [e.kind for e in events(paths)]
    assert kinds.count("start") == 2 and kinds.count("interrupted") == len(interrupted)


def test_an_attempt_interrupted_twice_is_recorded_as_an_error(tmp_path: Path) -> None:
    ran = tmp_path / "marks.txt"
    stuck = PREAMBLE + 'if [ "$EXPD_TASK" = t1 ]; then sleep 60; fi\n' + SOLVE
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=3,
        variants={"stuck": "stuck"},
        agents={"stuck": stuck},
        concurrency=1,
        sandbox="none",
        env={"MARKS": str(ran)},
    )
    paths = start(bk.repo)
    groups = []
    for round_ in (1, 2):

        def t1_running(times: int = round_) -> int | None:
            running = bk_state(paths).running
            if Counter(marks(ran))["t1/stuck/1"] == times and running and running[0].pgid:
                return running[0].pgid
            return None

        groups.append(wait_for(t1_running, 60, f"t1 running (time {round_})"))
        kill_daemon(paths)
        resume_bakeoff(paths.dir)
    state = wait_done(paths)
    assert state.termination_reason == "finished"
    record = newest(paths)["t1/stuck/1"]
    assert record.status == "error" and record.reruns == 1
    assert record.error is not None and "interrupted twice" in record.error
    assert Counter(marks(ran)) == {"t0/stuck/1": 1, "t1/stuck/1": 2, "t2/stuck/1": 1}
    assert statuses(paths) == {
        "t0/stuck/1": "passed",
        "t1/stuck/1": "error",
        "t2/stuck/1": "passed",
    }
    assert state.interrupted == {"t1/stuck/1": 2} and state.resumes == 2
    assert all(group_members(g) == [] for g in groups)  # type: ignore[arg-type]


def test_resume_refuses_a_running_or_complete_run_and_retries_errors(tmp_path: Path) -> None:
    ran = tmp_path / "marks.txt"
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=2,
        variants={"solver": "solver", "breaker": "breaker"},
        sandbox="none",
        env={"MARKS": str(ran), "AGENT_EXTRA": "sleep 0.5"},
    )
    paths = start(bk.repo)
    with pytest.raises(UserError, match="already running"):
        resume_bakeoff(paths.dir)
    wait_done(paths)
    with pytest.raises(UserError, match=r"complete \(finished\).*--retry-errors"):
        resume_bakeoff(paths.dir)
    resume_bakeoff(paths.dir, retry_errors=True)
    state = wait_done(paths)
    assert state.termination_reason == "finished" and state.resumes == 1
    counts = Counter(marks(ran))
    assert counts == {"t0/solver/1": 1, "t1/solver/1": 1, "t0/breaker/1": 2, "t1/breaker/1": 2}
    assert len(records(paths)) == 6 and statuses(paths)["t0/breaker/1"] == "error"
    retry = [e for e in events(paths) if e.kind == "control"]
    assert [e.data["action"] for e in retry] == ["retry"]
    assert retry[0].data["outcome"] == "retrying 2 attempt(s) that errored or timed out"


def test_replays_run_an_attempts_prompt_with_another_variant(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=3,
        variants={"solver": "solver", "half": "half"},
        concurrency=1,
        env={"AGENT_EXTRA": "sleep 0.3"},
    )
    paths = start(bk.repo)
    wait_for(lambda: "t1/half/1" in newest(paths), 60, "t1/half/1 recorded")
    # While the daemon runs, it takes the request itself.
    request_id, relaunched = request_replay(
        paths.dir, task="t1", variant="half", attempt=1, as_variant="solver"
    )
    assert relaunched is None and request_id in bk_state(paths).acked
    state = wait_done(paths)
    assert state.termination_reason == "finished" and state.replays == []
    replay = newest(paths)["t1/solver/2"]
    assert (replay.status, replay.replay_of) == ("passed", "t1/half/1")
    status = build_bakeoff_status(paths)
    assert (status.total, status.done) == (6, 6)
    # A variant added to bakeoff.toml since the start, on a finished run: the daemon is relaunched.
    bk.toml.write_text(
        bk.toml.read_text()
        + '[[variant]]\nid = "fixer"\nkind = "command"\ncommand = "./agents/solver.sh"\n'
        + 'prompt_prefix = "Fix it. "\n'
    )
    with pytest.raises(UserError, match="not recorded"):
        request_replay(paths.dir, task="t1", variant="half", attempt=2, as_variant="fixer")
    with pytest.raises(UserError, match="no variant 'nobody'"):
        request_replay(paths.dir, task="t1", variant="half", attempt=1, as_variant="nobody")
    _, relaunched = request_replay(
        paths.dir, task="t1", variant="half", attempt=1, as_variant="fixer"
    )
    assert relaunched is not None
    state = wait_done(paths)
    fixer = newest(paths)["t1/fixer/1"]
    assert (fixer.status, fixer.replay_of) == ("passed", "t1/half/1")
    prompt = paths.attempt("t1", "fixer", 1).prompt.read_text()
    assert prompt == "Fix it. Create answers/t1.txt holding the word solved-t1."
    assert state.replays == [] and state.total == 6
