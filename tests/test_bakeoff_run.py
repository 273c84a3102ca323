"""Bakeoff runs through the real daemon: `start_bakeoff` spawns it on a generated repository with
`command` agents of known skill (solver, half, breaker), and the attempts, refs, timeouts, budget,
stop and abort are checked in the files it leaves."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from daemon.commands.bakeoff import start_bakeoff
from shared import codec
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths, attempt_ref
from shared.errors import UserError
from shared.schema import DaemonInfo
from tests.bakeoff_repos import (
    bk_state,
    events,
    make_bakeoff_repo,
    newest,
    records,
    statuses,
    wait_done,
)
from tests.fakes.chat_server import Call, ChatServer, Reply
from tests.repos import expd, git, group_members, processes_in, wait_for


def start(root: Path, name: str = "bk") -> BakeoffRunPaths:
    return BakeoffRunPaths(start_bakeoff(root, name).run_dir)


def test_the_matrix_ends_with_each_variants_skill(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(tmp_path / "repo", tasks=4)
    head = git(bk.repo, "rev-parse", "HEAD")
    paths = start(bk.repo)
    state = wait_done(paths)
    assert (state.phase, state.termination_reason) == ("complete", "finished"), state.message
    got = statuses(paths)
    expected = {}
    for i in range(4):
        expected[f"t{i}/solver/1"] = "passed"
        expected[f"t{i}/half/1"] = "passed" if i % 2 == 0 else "failed"
        expected[f"t{i}/breaker/1"] = "error"
    assert got == expected
    assert len(records(paths)) == 12 and state.done == 12 == state.total
    run_id = f"bk/{paths.dir.name}"
    for record in newest(paths).values():
        assert record.base == head
        if record.status == "error":
            assert record.error == "agent exited with code 1" and record.score == 0.0
            assert not record.changed and record.ref is None
            continue
        # Every change is pinned under its own ref in the user's repository, reachable there.
        assert record.changed and record.ref == attempt_ref(
            run_id, record.task, record.variant, record.attempt
        )
        assert git(bk.repo, "rev-parse", record.ref) == record.commit
        assert git(bk.repo, "rev-parse", f"{record.commit}^") == head
        shown = git(bk.repo, "show", f"{record.commit}:answers/{record.task}.txt")
        assert shown == ("wrong" if record.status == "failed" else f"solved-{record.task}")
        assert [c.type for c in record.criteria] == ["test_pass", "command"]
        files = paths.attempt(record.task, record.variant, record.attempt)
        assert f"answers/{record.task}.txt" in files.patch.read_text()
        assert "[1] test_pass" in files.criteria_log.read_text()
        assert files.prompt.read_text() == (
            f"Create answers/{record.task}.txt holding the word solved-{record.task}."
        )
    solver = newest(paths)["t0/solver/1"]
    assert solver.answer == "solved t0" and solver.score == 1.0 and solver.diff.files
    kinds = [e.kind for e in events(paths)]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("attempt_start") == kinds.count("attempt_end") == 12
    # The user's checkout, branches and HEAD are untouched; the slots' trees are gone.
    assert git(bk.repo, "status", "--porcelain") == ""
    assert git(bk.repo, "rev-parse", "HEAD") == head
    assert git(bk.repo, "branch", "--list") == "* main"
    worktrees = bk.repo / ".expd" / "worktrees"
    assert not worktrees.exists() or not any(worktrees.iterdir())
    assert "EXPD_RUN_DIR" not in (paths.dir / "daemon.log").read_text()


def test_two_attempts_run_at_once(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=2,
        variants={"solver": "solver"},
        concurrency=2,
        env={"AGENT_EXTRA": "sleep 0.8"},
    )
    paths = start(bk.repo)
    wait_done(paths)
    first, second = sorted(records(paths), key=lambda r: r.started_at)
    assert first.status == second.status == "passed"
    assert second.started_at < first.started_at + first.duration_s, "they did not overlap"
    slots = {e.data["slot"] for e in events(paths) if e.kind == "attempt_start"}
    assert slots == {0, 1}


def test_a_timed_out_attempt_is_pinned_and_its_processes_are_gone(tmp_path: Path) -> None:
    slow = (
        "#!/bin/bash\ncat > /dev/null\nmkdir -p answers\n"
        'echo "solved-$EXPD_TASK" > "answers/$EXPD_TASK.txt"\n'
        "sleep 60 &\nsleep 60\n"
    )
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=1,
        variants={"slow": "slow"},
        agents={"slow": slow},
        task_extra='timeout = "1s"',
    )
    paths = start(bk.repo)
    pgid = wait_for(
        lambda: (running := bk_state(paths).running) and running[0].pgid, 60, "the agent to start"
    )
    state = wait_done(paths)
    assert state.termination_reason == "finished"
    record = newest(paths)["t0/slow/1"]
    assert record.status == "timeout" and "timed out after 1s" in (record.error or "")
    assert record.criteria == [] and record.score == 0.0
    assert record.changed and git(bk.repo, "rev-parse", record.ref or "-") == record.commit
    assert group_members(int(pgid)) == []  # type: ignore[arg-type]
    assert processes_in(bk.repo) == []


def _budget_model(body: dict[str, Any]) -> Reply:
    """Writes the answer the briefing asks for, then says it is done."""
    found = re.search(r"answers/(t\d+)\.txt", json.dumps(body["messages"]))
    assert found is not None
    task = found.group(1)
    if body["messages"][-1]["role"] == "user":
        path = f"answers/{task}.txt"
        return Reply.tool_calls([Call("write_file", {"path": path, "content": f"solved-{task}\n"})])
    return Reply.text(f"wrote the answer of {task}")


def test_the_budget_stops_new_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt costs two requests (1.4e-4 $ each); the budget is spent after the second."""
    monkeypatch.setenv("FAKE_KEY", "sk-budget-test-000000000000")
    server = ChatServer(_budget_model)
    try:
        prices = '[agent.prices."fake-model"]\ninput = 1.0\noutput = 2.0\n'
        bk = make_bakeoff_repo(
            tmp_path / "repo", tasks=4, variants={"model": "solver"}, concurrency=1
        )
        text = bk.toml.read_text().replace(
            'kind = "command"\ncommand = "./agents/solver.sh"',
            f'kind = "openai"\nmodel = "fake-model"\nbase_url = "{server.url}"\n'
            'api_key_env = "FAKE_KEY"',
        )
        bk.toml.write_text("max_cost_usd = 0.0004\n" + text + prices)
        paths = start(bk.repo)
        state = wait_done(paths)
    finally:
        server.close()
    assert state.termination_reason == "budget", state.message
    done = records(paths)
    assert [(r.key, r.status) for r in done] == [("t0/model/1", "passed"), ("t1/model/1", "passed")]
    assert all(r.cost_usd == pytest.approx(2.8e-4) for r in done)
    assert state.cost_usd == pytest.approx(5.6e-4) and "budget reached" in state.message


def _slow_bakeoff(root: Path, seconds: str) -> BakeoffPaths:
    return make_bakeoff_repo(
        root,
        tasks=3,
        variants={"solver": "solver", "half": "half"},
        concurrency=2,
        env={"AGENT_EXTRA": f"sleep {seconds}"},
    )


def test_stop_through_the_cli_lets_running_attempts_finish(tmp_path: Path) -> None:
    bk = _slow_bakeoff(tmp_path / "repo", "1.5")
    paths = start(bk.repo)
    wait_for(lambda: len(bk_state(paths).running) == 2, 60, "two attempts running")
    run_id = f"bk/{paths.dir.name}"
    proc = expd("stop", run_id, cwd=bk.repo)
    assert proc.returncode == 0, proc.stderr
    assert "the running attempts finish first" in proc.stdout
    state = wait_done(paths)
    assert state.termination_reason == "stopped"
    assert statuses(paths) == {"t0/solver/1": "passed", "t0/half/1": "passed"}
    proc = expd("stop", run_id, cwd=bk.repo)
    assert proc.returncode == 1 and "is not running" in proc.stderr


def test_abort_through_the_cli_cancels_running_attempts(tmp_path: Path) -> None:
    bk = _slow_bakeoff(tmp_path / "repo", "60")
    paths = start(bk.repo)

    def two_agents() -> bool:
        running = bk_state(paths).running
        return len(running) == 2 and all(r.pgid for r in running)

    wait_for(two_agents, 60, "two agents running")
    groups = [r.pgid for r in bk_state(paths).running]
    proc = expd("abort", f"bk/{paths.dir.name}", "--wait", cwd=bk.repo)
    assert proc.returncode == 0, proc.stderr
    state = wait_done(paths)
    assert state.termination_reason == "aborted" and state.running == []
    assert statuses(paths) == {"t0/solver/1": "cancelled", "t0/half/1": "cancelled"}
    assert all(group_members(g) == [] for g in groups if g)  # type: ignore[arg-type]
    assert processes_in(bk.repo) == []


def test_an_agent_gets_its_prompt_file_and_environment(tmp_path: Path) -> None:
    """Confined as configured (bwrap when it works here): the prompt file is readable, the run
    directory is not named."""
    probe = (
        "#!/bin/bash\ncat > /dev/null\n"
        'echo "prompt: $(cat "$EXPD_PROMPT_FILE")"\n'
        'echo "vars: $EXPD_TASK $EXPD_VARIANT $EXPD_ATTEMPT $EXPD_RUN_ID"\n'
        'echo "worktree: $EXPD_WORKTREE pwd: $(pwd)"\n'
        'env | grep -q "^EXPD_RUN_DIR=" && echo "run dir named"\n'
        'env | grep -q "^EXPD_DAEMON_LOG=" && echo "daemon log named"\n'
        "exit 0\n"
    )
    bk = make_bakeoff_repo(
        tmp_path / "repo", tasks=1, variants={"probe": "probe"}, agents={"probe": probe}
    )
    bk.toml.write_text(
        bk.toml.read_text().replace('id = "probe"', 'id = "probe"\nprompt_prefix = "Be brief. "')
    )
    paths = start(bk.repo)
    wait_done(paths)
    log = paths.attempt("t0", "probe", 1).agent_log.read_text()
    assert "prompt: Be brief. Create answers/t0.txt holding the word solved-t0." in log
    assert f"vars: t0 probe 1 bk/{paths.dir.name}" in log
    tree = bk.slot_tree(paths.dir.name, 0)
    assert f"worktree: {tree} pwd: {tree}" in log
    assert "run dir named" not in log and "daemon log named" not in log
    record = newest(paths)["t0/probe/1"]
    assert record.status == "failed" and not record.changed and record.commit == record.base


def test_start_refuses_what_cannot_run(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(tmp_path / "repo", tasks=2, variants={"solver": "solver"})
    text = bk.toml.read_text()
    bk.toml.write_text(text.replace('id = "t1"', 'id = "t1"\nbase = "no-such-branch"'))
    with pytest.raises(UserError, match=r"task 't1'.*no-such-branch"):
        start_bakeoff(bk.repo, "bk")
    bk.toml.write_text(text.replace("./agents/solver.sh", "./agents/missing.sh"))
    with pytest.raises(UserError, match=r"variant 'solver'.*not found"):
        start_bakeoff(bk.repo, "bk")
    with pytest.raises(UserError, match="no bakeoff 'other'"):
        start_bakeoff(bk.repo, "other")
    assert not bk.runs_dir.exists() or not any(bk.runs_dir.iterdir())


def test_sigterm_stops_and_a_second_one_aborts(tmp_path: Path) -> None:
    bk = _slow_bakeoff(tmp_path / "repo", "60")
    paths = start(bk.repo)
    wait_for(lambda: len(bk_state(paths).running) == 2, 60, "two attempts running")
    pid = codec.read(paths.daemon_json, DaemonInfo).pid
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: bk_state(paths).phase == "stopping", 60, "the daemon to stop starting")
    assert len(bk_state(paths).running) == 2  # the running attempts go on
    os.kill(pid, signal.SIGTERM)
    state = wait_done(paths)
    assert state.termination_reason == "aborted"
    assert set(statuses(paths).values()) == {"cancelled"}
    assert processes_in(bk.repo) == []


def test_secrets_reach_no_file_and_a_change_adding_one_is_refused(tmp_path: Path) -> None:
    secret = "sk-canary-0123456789abcdef"
    leaky = (
        "#!/bin/bash\ncat > /dev/null\n"
        'echo "my token is $API_TOKEN"\n'
        'mkdir -p answers && echo "$API_TOKEN" > "answers/$EXPD_TASK.txt"\n'
        'echo "EXPD-DESCRIPTION: used $API_TOKEN"\n'
    )
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=1,
        variants={"leaky": "leaky"},
        agents={"leaky": leaky},
        env={"API_TOKEN": secret},
    )
    paths = start(bk.repo)
    wait_done(paths)
    record = newest(paths)["t0/leaky/1"]
    assert record.status == "error" and "$API_TOKEN" in (record.error or "")
    assert record.ref is None and not record.changed
    assert record.answer == "used [redacted:API_TOKEN]"
    log = paths.attempt("t0", "leaky", 1).agent_log.read_text()
    assert "my token is [redacted:API_TOKEN]" in log
    # bakeoff.toml holds the value (the user wrote it there) and run.json, the resolved spec,
    # a copy of it (as a program run's run.json holds its `[agent] env`); nothing else does.
    for path in (bk.repo / ".expd").rglob("*"):
        if path.is_file() and path.name not in ("bakeoff.toml", "run.json"):
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in git(bk.repo, "log", "--all", "-p")
