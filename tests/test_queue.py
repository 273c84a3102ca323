"""The run queue on real repositories with the real daemon: runs chain in order with no overlap,
a start that fails is retried and then given up on, a removed entry never runs, an abort pauses
the queue (unless the entry says `--continue-on-abort`), and the queue survives `kill -9` of a
daemon mid-run. The agent is a `command` agent (tests/repos.py); a gated one waits in its turn for the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from shared import codec
from shared.paths import RepoPaths, RunPaths
from shared.queue import QueueFile, QueueOptions, QueuePaths, active_runs, add, read_queue
from shared.schema import DaemonInfo, RunManifest
from tests.repos import (
    AGENT_SH,
    expd,
    make_repo,
    results,
    state,
    wait_dead,
    wait_finished,
    wait_for,
)
from tests.test_import_hygiene import run_probe

# An agent that waits, until the test writes `.expd/go` in its tree (or it is killed).
GATED_AGENT_SH = AGENT_SH.replace(
    "cat > /dev/null", "cat > /dev/null\nwhile [ ! -e .expd/go ]; do sleep 0.05; done"
)


def add_program(root: Path, name: str, *, toml_extra: str = "") -> None:
    """Another program beside `p`: the same measurement, agent and limits."""
    repo = RepoPaths(root)
    shutil.copytree(repo.program("p").dir, repo.program(name).dir, ignore=_no_runs)
    if toml_extra:
        toml = repo.program(name).toml
        toml.write_text(toml.read_text() + toml_extra)


def _no_runs(_directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("runs", "start.lock", "active.lock")]


def run_paths(root: Path, run_id: str) -> RunPaths:
    program, _, stamp = run_id.partition("/")
    return RepoPaths(root).program(program).run(stamp)


def settled(root: Path) -> QueueFile | None:
    """The queue once no entry is waiting, starting or running (and no daemon is live)."""
    q = read_queue(root)
    if q.pending() or active_runs(root):
        return None
    return q


def wait_entry(root: Path, entry_id: int, *states: str, timeout: float = 60) -> None:
    wait_for(
        lambda: (e := read_queue(root).find(entry_id)) is not None and e.state in states,
        timeout,
        f"entry {entry_id} to be {'/'.join(states)}",
    )


def wait_phase(paths: RunPaths, phase: str) -> None:
    wait_for(lambda: state(paths).phase == phase, 60, f"{paths.dir.name} to reach {phase}")


class OverlapWatch:
    """Samples the repository's live daemons in a thread: the most ever seen at once."""

    def __init__(self, root: Path) -> None:
        self.root, self.most, self._stop = root, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(active_runs(self.root)))
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


def test_three_programs_chain_in_order_with_no_overlap(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=2)
    add_program(root, "q")
    add_program(root, "r")
    # Queued through the functions the MCP server calls (no argparse), then started by the CLI.
    add(root, "p")
    add(root, "q", QueueOptions(max_experiments=1))
    add(root, "r", QueueOptions(fresh=True))
    old_log = "an older night's line\n" * 60_000  # past the 1 MiB the starters' log may grow to
    QueuePaths(root).log.write_text(old_log)
    watch = OverlapWatch(root)
    proc = expd("queue", "resume", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["action"] == "started"
    q = wait_for(lambda: settled(root), 90, "the queue to run dry")
    assert watch.stop() == 1
    assert isinstance(q, QueueFile)
    assert [(e.program, e.state, e.attempts) for e in q.entries] == [
        ("p", "done", 1),
        ("q", "done", 1),
        ("r", "done", 1),
    ]
    assert all(e.reason == "max_experiments" for e in q.entries)
    ended_before = 0.0
    for entry in q.entries:
        assert entry.run_id is not None and entry.started_at and entry.finished_at
        paths = run_paths(root, entry.run_id)
        manifest = codec.read(paths.run_json, RunManifest)
        final = state(paths)
        daemon = codec.read(paths.daemon_json, DaemonInfo)
        # Each run was created and its daemon started after the previous daemon let go.
        assert manifest.created_at >= ended_before
        assert daemon.started_at >= ended_before
        assert final.phase == "complete" and final.updated_at <= entry.finished_at
        ended_before = entry.finished_at
    assert state(run_paths(root, q.entries[1].run_id or "")).max_experiments == 1
    assert len(results(run_paths(root, q.entries[1].run_id or ""))) == 2  # baseline + 1
    assert len(results(run_paths(root, q.entries[2].run_id or ""))) == 3
    log = QueuePaths(root).log.read_text()
    assert "entry 2 (q): started run" in log and "entry 3 (r): started run" in log
    assert "older night" not in log  # the first chained start rotated it
    assert QueuePaths(root).log.with_name("queue.log.1").read_text() == old_log
    listed = expd("queue", "list", cwd=root)
    assert listed.returncode == 0
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["1", "done", "p"],
        ["2", "done", "q"],
        ["3", "done", "r"],
    ]


def test_a_failing_start_is_retried_then_failed_and_the_queue_moves_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=1)
    add_program(root, "gone")
    add_program(root, "bad")
    add_program(root, "r")
    bad = RepoPaths(root).program("bad").toml
    bad.write_text(bad.read_text().replace("./agent.sh", "./missing-agent.sh"))
    for name in ("p", "gone", "bad", "r"):
        add(root, name)
    removed = expd("queue", "remove", "2", "--json", cwd=root)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"][0]["program"] == "gone"
    proc = expd("queue", "resume", cwd=root)
    assert proc.returncode == 0, proc.stderr
    q = wait_for(lambda: settled(root), 90, "the queue to run dry")
    assert isinstance(q, QueueFile)
    by_program = {e.program: e for e in q.entries}
    assert sorted(by_program) == ["bad", "p", "r"]
    failed = by_program["bad"]
    assert (failed.state, failed.attempts, failed.run_id) == ("failed", 3, None)
    assert failed.reason.startswith("start failed 3 times: agent command not found")
    assert by_program["p"].state == by_program["r"].state == "done"
    assert not list(RepoPaths(root).program("gone").runs_dir.glob("*"))
    assert not list(RepoPaths(root).program("bad").runs_dir.glob("*"))
    log = QueuePaths(root).log.read_text()
    assert "entry 3 (bad): start failed (attempt 1 of 3)" in log
    assert "entry 3 (bad): start failed (attempt 2 of 3)" in log
    assert "entry 3 (bad): failed: start failed 3 times" in log


def test_add_starts_an_idle_queue_and_waits_behind_a_live_run(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=1, agent_sh=GATED_AGENT_SH)
    add_program(root, "q")
    first = expd("queue", "add", "p", "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["action"] == "started" and out["added"]["state"] == "running"
    assert out["entry"]["id"] == 1 and out["given_up"] == []
    p_run = run_paths(root, out["run_id"])
    wait_phase(p_run, "agent_running")
    second = expd("queue", "add", "q", "--max-experiments", "0", cwd=root)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "queued entry 2: q --max-experiments 0",
        f"entry 1 is running (run {out['run_id']})",
    ]
    again = expd("queue", "add", "q", cwd=root)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "expd: error: program 'q' is already in the queue (entry 2, queued): "
        "remove it first (expd queue remove 2)"
    )
    live = expd("queue", "remove", "1", cwd=root)
    assert live.returncode == 1 and "expd stop" in live.stderr
    status = expd("status", "--all", "--json", cwd=root)
    items = json.loads(status.stdout)
    assert [i.get("kind", "program") for i in items] == ["program", "queued"]
    assert items[0]["run_id"] == out["run_id"]
    queued = items[1]
    assert (queued["program"], queued["phase"], queued["daemon"], queued["run_id"]) == (
        "q",
        "queued",
        None,
        None,
    )
    assert (queued["queue_id"], queued["position"], queued["options"]) == (
        2,
        1,
        {"max_experiments": 0},
    )
    text = expd("status", "--all", cwd=root).stdout
    assert "QUEUED" in text and "#1 (entry 2)" in text
    # Stopping is not aborting: the queue goes on by itself.
    stopped = expd("stop", out["run_id"], "--json", cwd=root)
    assert stopped.returncode == 0, stopped.stderr
    request = json.loads(stopped.stdout)["request_id"]
    # The daemon must have seen the stop before the experiment ends, or it ends max_experiments.
    wait_for(lambda: request in state(p_run).acked, 60, "the stop to be acknowledged")
    worktree = Path(codec.read(p_run.run_json, RunManifest).worktree)
    (worktree / ".expd").mkdir(exist_ok=True)
    (worktree / ".expd" / "go").touch()
    wait_entry(root, 2, "done")
    q = read_queue(root)
    assert [(e.state, e.reason) for e in q.entries] == [
        ("done", "stopped"),
        ("done", "max_experiments"),
    ]


def test_an_abort_pauses_the_queue_unless_the_entry_continues_on_abort(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=1, agent_sh=GATED_AGENT_SH)
    add_program(root, "q")
    add_program(root, "r")
    add(root, "p", QueueOptions(continue_on_abort=True))
    add(root, "q")
    add(root, "r", QueueOptions(max_experiments=0))
    assert expd("queue", "resume", cwd=root).returncode == 0
    for entry_id in (1, 2):
        wait_entry(root, entry_id, "running")
        run_id = read_queue(root).find(entry_id).run_id  # type: ignore[union-attr]
        assert run_id is not None
        wait_phase(run_paths(root, run_id), "agent_running")
        aborted = expd("abort", run_id, "--wait", cwd=root)
        assert aborted.returncode == 0, aborted.stderr
    wait_for(lambda: read_queue(root).paused, 60, "the queue to pause")
    wait_dead(run_paths(root, read_queue(root).entries[1].run_id or ""))
    q = read_queue(root)
    assert [(e.state, e.reason) for e in q.entries] == [
        ("done", "aborted: abort requested"),
        ("done", "aborted: abort requested"),
        ("queued", ""),
    ]
    assert "was aborted" in q.paused
    assert "paused: run q/" in expd("queue", "list", cwd=root).stdout
    resumed = expd("queue", "resume", cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("entry 3: started run r/")
    q2 = wait_for(lambda: settled(root), 60, "the queue to run dry")
    assert isinstance(q2, QueueFile)
    assert q2.paused == "" and q2.entries[2].state == "done"


def test_the_queue_survives_kill_9_of_a_daemon_mid_run(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=1, agent_sh=GATED_AGENT_SH)
    add_program(root, "q")
    add(root, "p")
    add(root, "q", QueueOptions(max_experiments=0))
    assert expd("queue", "resume", cwd=root).returncode == 0
    wait_entry(root, 1, "running")
    run_id = read_queue(root).entries[0].run_id or ""
    paths = run_paths(root, run_id)
    wait_phase(paths, "agent_running")
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_dead(paths)
    # Nothing chained: the entry is still the queue's, and the next one waits.
    assert [e.state for e in read_queue(root).entries] == ["running", "queued"]
    listed = expd("queue", "list", cwd=root).stdout
    assert "its daemon is not running: `expd resume" in listed
    status = json.loads(expd("status", "--all", "--json", cwd=root).stdout)
    assert [(s["run_id"], s["daemon"]) for s in status] == [(run_id, "dead"), (None, None)]
    resumed = expd("resume", run_id, cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    wait_finished(paths)
    wait_entry(root, 2, "done")
    q = read_queue(root)
    assert [(e.state, e.reason) for e in q.entries] == [
        ("done", "max_experiments"),
        ("done", "max_experiments"),
    ]
    assert [r.status for r in results(paths)] == ["baseline", "crash"]
    next_run = codec.read(run_paths(root, q.entries[1].run_id or "").run_json, RunManifest)
    assert next_run.created_at >= state(paths).updated_at


def test_queue_resume_gives_up_on_an_entry_whose_daemon_died(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", max_experiments=1, agent_sh=GATED_AGENT_SH)
    add_program(root, "q")
    add(root, "p")
    add(root, "q", QueueOptions(max_experiments=0))
    assert expd("queue", "resume", cwd=root).returncode == 0
    wait_entry(root, 1, "running")
    run_id = read_queue(root).entries[0].run_id or ""
    paths = run_paths(root, run_id)
    wait_phase(paths, "agent_running")
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_dead(paths)
    proc = expd("queue", "resume", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"entry 1 (p) failed: interrupted: its daemon died (`expd resume {run_id}`" in proc.stderr
    )
    assert proc.stdout.startswith("entry 2: started run q/")
    wait_entry(root, 2, "done")
    # The interrupted run is still there to resume by hand.
    assert expd("status", run_id, "--json", cwd=root).returncode == 3
    resumed = expd("resume", run_id, cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    wait_finished(paths)


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    cases = {
        ("queue",): "expd queue needs a subcommand: add, list, remove, clear, resume",
        ("queue", "add"): "the following arguments are required: PROGRAM",
        ("queue", "add", "nope"): "no program 'nope'",
        ("queue", "add", "../p"): "invalid program name '../p'",
        ("queue", "add", "p", "--agent", "gpt"): "unknown agent kind 'gpt'",
        ("queue", "add", "p", "--max-experiments", "-2"): "must be a whole number ≥ 0",
        ("queue", "remove", "x"): "an entry id is a whole number ≥ 1, not 'x'",
        ("queue", "remove", "7"): "no queue entry 7 (entries: none)",
        ("queue", "pop"): "invalid choice: 'pop'",
    }
    for argv, message in cases.items():
        proc = expd(*argv, cwd=root)
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("expd: error: "), (argv, proc.stderr)
        assert message in lines[0], (argv, lines[0])
    assert not QueuePaths(root).file.exists() or not read_queue(root).entries
    outside = expd("queue", "list", cwd=tmp_path)
    assert outside.returncode == 1 and "not inside a git repository" in outside.stderr


def test_list_clear_and_json_shapes_without_runs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    add_program(root, "q")
    assert expd("queue", "list", cwd=root).stdout.startswith("the queue is empty")
    add(root, "p", QueueOptions(agent="tune", model="m", continue_on_abort=True))
    add(root, "q")
    listed = json.loads(expd("queue", "list", "--json", cwd=root).stdout)
    assert listed["paused"] == "" and listed["next_id"] == 3
    assert listed["entries"][0]["options"] == {
        "agent": "tune",
        "model": "m",
        "continue_on_abort": True,
    }
    assert {k for k in listed["entries"][1]} >= {
        "id",
        "program",
        "options",
        "state",
        "run_id",
        "attempts",
        "reason",
        "added_at",
    }
    text = expd("queue", "list", cwd=root).stdout
    assert "--agent tune --model m --continue-on-abort" in text
    cleared = expd("queue", "clear", cwd=root)
    assert cleared.stdout.strip() == "removed 2 entries"
    assert read_queue(root).entries == [] and read_queue(root).next_id == 3


def test_reading_the_queue_imports_nothing_heavy(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    add(root, "p")
    for argv in (["queue", "list"], ["queue", "list", "--json"], ["status", "--all", "--json"]):
        got = run_probe(root, *argv)
        assert got["code"] == 0 and got["loaded"] == [], (argv, got)
        assert "p" in str(got["stdout"])


def test_a_start_by_hand_waits_for_a_starter_at_work(tmp_path: Path) -> None:
    # A starter holds the start lock from its "nothing is live" check to its run's start: a run
    # started by hand meanwhile must not slip in between (then both would run).
    import subprocess
    import sys

    from shared.locking import lock_blocking, unlock

    root = make_repo(tmp_path / "repo", max_experiments=0)
    add_program(root, "q")
    add(root, "q")  # a queue that has not started: the starter below is at work on it
    fd = lock_blocking(QueuePaths(root).start_lock)
    try:
        manual = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.main", "start", "p", "--json"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # It waits on the lock (the kernel lists it as a blocked waiter), before any run exists.
        inode = os.stat(QueuePaths(root).start_lock).st_ino
        wait_for(lambda: _lock_waiters(inode) > 0, 60, "the start by hand to wait on the lock")
        assert manual.poll() is None and not list(RepoPaths(root).program("p").runs_dir.glob("*"))
    finally:
        unlock(fd)
    out, err = manual.communicate(timeout=60)
    assert manual.returncode == 0, err
    assert wait_finished(run_paths(root, json.loads(out)["run_id"])).phase == "complete"


def _lock_waiters(inode: int) -> int:
    """Processes blocked on a lock of the file with this inode (`->` lines of /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and line.split()[-3].endswith(f":{inode}"))
