"""Many lanes with instant agents, in this process: does the scheduler keep the slot busy, and
what does the daemon itself cost per experiment?

The real daemon code runs here (`daemon.service.main.main` on a run `expd start` made): lanes,
the measurement queue, every git step (lane resets, captures, replays onto the moved incumbent,
checkouts), the recorder and the store on a temporary directory. Only the outer edge is
synthetic: each agent is an `InstantAgent` (writes one new file at once, no process) and each
measurement sleeps `measure_s` and scores the tree by its `d*.py` files. By default every
candidate is a keep, so every candidate is replayed onto a moved incumbent and every lane's reset
brings in one new file per other lane: the heaviest case. With `keep_every = k` only every k-th
agent improves the score (the others add a file that does not count, and are discarded).

CPU time is this process's (all threads) from the first agent turn to the last decision; the
share spent in worker threads is git work on trees. Start-up (making every lane's tree) and the
end (every tree reset) are left out and reported as seconds.

    python benchmarks/lanes_bench.py --lanes '' --wide 100       # via the benchmark's CLI
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from shared import codec
from shared.paths import RunPaths
from shared.schema import Event
from tests.repos import make_repo, results

DECIDE = 'policy = "fixed"\nrepeats = 1\nmin_effect = 0.000001'


@dataclass
class _Window:
    """What the simulation saw between the first agent turn and the last decision."""

    measure_s: float = 0.2
    keep_every: int = 1
    """Every k-th experiment improves the score (1: every one is a keep, the heaviest case)."""
    first_turn: float | None = None
    last_record: float = 0.0
    thread_cpu: float = 0.0
    """Worker threads' CPU seconds since the first turn (git work on trees)."""
    thread_cpu_at_last_record: float = 0.0


SIM = _Window()


class InstantAgent:
    """A synthetic agent inside the daemon's process: it writes one new file, at once."""

    kind = "command"

    def __init__(self, config: Any) -> None:
        self.config = config

    async def run(self, task: Any, emit: Any) -> Any:
        from daemon.agents.base import AgentOutcome

        if SIM.first_turn is None:
            SIM.first_turn, SIM.thread_cpu = time.process_time(), 0.0
        n = task.experiment
        name = f"d{n}.py" if n % SIM.keep_every == 0 else f"e{n}.py"  # e*.py: no better
        (task.worktree / name).write_text(f"x = -{n}\n")
        return AgentOutcome(description=f"file {n}")

    def __getattr__(self, name: str) -> Any:  # feedback, recover, close, switch_model
        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return nothing


async def _instant_measure(self: Any, on_start: Any = None) -> Any:
    """A measurement of `SIM.measure_s` (a sleep) scoring the tree by its `d*.py` files."""
    from daemon.ops.measure import Sample

    await anyio.sleep(SIM.measure_s)
    n = sum(1 for name in os.listdir(self.worktree) if name[0] == "d")
    return Sample(ok=True, metrics={"score": 100000.0 - n}, duration=SIM.measure_s)


def _counting(run_sync: Callable[..., Any]) -> Callable[..., Any]:
    """`anyio.to_thread.run_sync` that adds its worker thread's CPU time to `SIM.thread_cpu`."""

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def timed(*inner: Any) -> Any:
            start = time.thread_time()
            try:
                return func(*inner)
            finally:
                SIM.thread_cpu += time.thread_time() - start

        return await run_sync(timed, *args, **kwargs)

    return counted


def simulate(
    root: Path, lanes: int, experiments: int, measure_s: float, keep_every: int = 1
) -> dict[str, Any]:
    """One run of `lanes` instant lanes and `experiments` experiments in this process."""
    from daemon.commands import spawn
    from daemon.ops.measure import Measurer
    from daemon.service import arms
    from daemon.service.main import main as daemon_main
    from daemon.service.recorder import Recorder

    recorded = Recorder.record

    def record(self: Recorder, *args: Any, **kwargs: Any) -> None:
        recorded(self, *args, **kwargs)
        SIM.last_record = time.process_time()
        SIM.thread_cpu_at_last_record = SIM.thread_cpu

    repo = make_repo(
        root,
        max_experiments=experiments,
        decide=DECIDE,
        sandbox="none",
        toml_extra=f'[lanes]\ncount = {lanes}\n[measure]\nsandbox = "none"\n',
    )
    SIM.measure_s, SIM.keep_every, SIM.first_turn = measure_s, keep_every, None
    saved = spawn._spawn, arms.make_agent, Measurer.once, Recorder.record, anyio.to_thread.run_sync
    spawn._spawn = lambda paths: os.getpid()  # the daemon runs here, below
    arms.make_agent = lambda config, **_: InstantAgent(config)
    Measurer.once = _instant_measure  # type: ignore[method-assign]
    Recorder.record = record  # type: ignore[method-assign]
    anyio.to_thread.run_sync = _counting(anyio.to_thread.run_sync)
    try:
        started = spawn.start_run(repo, "p")
        wall = time.monotonic()
        with contextlib.redirect_stderr(open(os.devnull, "w")):  # the daemon's log
            assert daemon_main([str(started.run_dir)]) == 0
        wall = time.monotonic() - wall
    finally:
        (
            spawn._spawn,
            arms.make_agent,
            Measurer.once,
            Recorder.record,
            anyio.to_thread.run_sync,
        ) = saved
    paths = RunPaths(started.run_dir)
    got = [r for r in results(paths) if r.experiment > 0]
    events = [
        codec.decode(x, Event, source="events") for x in paths.events.read_bytes().splitlines()
    ]
    first = min(e.t for e in events if e.kind == "agent_start")
    span = max(r.finished_at for r in got) - first
    cpu = SIM.last_record - (SIM.first_turn or 0.0)
    git = SIM.thread_cpu_at_last_record
    return {
        "lanes": lanes,
        "experiments": len(got),
        "keeps": sum(r.status == "keep" for r in got),
        "wall_s": round(span, 2),
        "per_hour": round(len(got) / span * 3600),
        "slot_busy": round(sum(r.measure_s for r in got) / span, 3),
        "daemon_cpu_ms_per_experiment": round(cpu / len(got) * 1000, 1),
        "git_threads_ms_per_experiment": round(git / len(got) * 1000, 1),
        "start_and_end_s": round(wall - span, 2),
    }
