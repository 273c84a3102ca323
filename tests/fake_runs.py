"""Hand-built run directories for testing the read paths without a daemon.

A "live" daemon is simulated the way `shared.liveness` sees one: `daemon.lock` held (by the test
process) and `daemon.json` naming a live pid with a heartbeat of the chosen age.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared import codec
from shared.atomic import append_line, write_atomic
from shared.locking import try_lock, unlock
from shared.paths import RepoPaths, RunPaths, branch_name
from shared.schema import DaemonInfo, DiffStat, InFlight, ResultRecord, RunManifest, RunState
from tests.repos import git

PROGRAM_TOML = """metric = "score"
direction = "lower"

[agent]
kind = "command"
command = "./agent.sh"
"""


def git_repo(root: Path) -> Path:
    """A real git repository with one commit (what `find_repo_root` and `init` expect)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("hello\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root.resolve()


def add_program(repo: Path, name: str = "prog") -> None:
    prog = RepoPaths(repo).program(name)
    prog.runs_dir.mkdir(parents=True, exist_ok=True)
    prog.toml.write_text(PROGRAM_TOML)
    prog.md.write_text("# goal\n")
    prog.measure_sh.write_text('echo "METRIC score=1"\n')


def result(n: int, status: str, metric: float | None, description: str = "") -> ResultRecord:
    return ResultRecord(
        experiment=n,
        status=status,
        commit=f"{n:040x}",
        metric=metric,
        samples=[] if metric is None else [metric, metric],
        description=description or f"change {n}",
        diff=DiffStat(files=["f.py"], added=n, removed=1),
        agent_s=1.5,
        measure_s=0.25,
        cost_usd=0.01,
        tokens=100,
        started_at=1_700_000_000.0 + n,
        reason=f"reason {n}",
        evidence={"p": 0.01},
    )


@dataclass
class FakeRun:
    """A run directory and the lock fd that makes its daemon look alive."""

    repo: Path
    program: str
    stamp: str
    paths: RunPaths
    lock_fd: int | None = None
    extra_fds: list[int] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return f"{self.program}/{self.stamp}"

    def write_state(self, **fields: object) -> RunState:
        state = RunState(run_id=self.run_id, program=self.program, **fields)  # type: ignore[arg-type]
        write_atomic(self.paths.state_json, codec.encode(state), durable=False)
        return state

    def add_results(self, *records: ResultRecord) -> None:
        for rec in records:
            append_line(self.paths.results, codec.encode_line(rec), durable=False)

    def go_live(self, heartbeat_age: float = 0.0) -> None:
        """Hold daemon.lock and write a heartbeat `heartbeat_age` seconds old."""
        if self.lock_fd is None:
            self.lock_fd = try_lock(self.paths.daemon_lock)
            assert self.lock_fd is not None
        now = time.time()
        info = DaemonInfo(
            pid=os.getpid(), token="t", started_at=now - 60, heartbeat_at=now - heartbeat_age
        )
        write_atomic(self.paths.daemon_json, codec.encode(info), durable=False)

    def die(self) -> None:
        """Release the lock, as the kernel does when the daemon process ends."""
        if self.lock_fd is not None:
            unlock(self.lock_fd)
            self.lock_fd = None


def make_run(
    repo: Path,
    program: str = "prog",
    stamp: str = "20260101-120000",
    *,
    phase: str = "agent_running",
    live: bool = False,
    heartbeat_age: float = 0.0,
    **state: object,
) -> FakeRun:
    """A run directory with run.json and state.json; `live` holds the daemon lock."""
    if not RepoPaths(repo).program(program).toml.exists():
        add_program(repo, program)
    paths = RepoPaths(repo).program(program).run(stamp)
    paths.dir.mkdir(parents=True)
    run = FakeRun(repo, program, stamp, paths)
    manifest = RunManifest(
        run_id=run.run_id,
        program=program,
        repo=str(repo),
        worktree=str(RepoPaths(repo).worktree(program, stamp)),
        branch=branch_name(program, stamp),
        created_at=1_700_000_000.0,
        max_experiments=20,
        config={"metric": "score", "direction": "lower"},
    )
    write_atomic(paths.run_json, codec.encode(manifest), durable=False)
    fields: dict[str, object] = {
        "metric": "score",
        "direction": "lower",
        "started_at": 1_700_000_000.0,
        "updated_at": time.time(),
        "phase": phase,
    }
    fields.update(state)
    run.write_state(**fields)
    if live:
        run.go_live(heartbeat_age)
    return run


def in_flight(n: int, stage: str = "agent") -> InFlight:
    return InFlight(experiment=n, started_at=time.time(), stage=stage)
