"""Reading a large bakeoff run: `expd status --json` and the TUI dashboard's open time.

Builds a synthetic run of 200 tasks × 3 variants × 2 attempts (1,200 attempt records, written as
the daemon writes them) whose daemon looks alive (this process holds its lock and a fresh
heartbeat), then measures:

1. status: `expd status --json` in a fresh interpreter, as a user or a script calls it; median of
   `--repeats` runs after a warm-up. Goal ≤ 100 ms.
2. open: the real app (`ExpdApp`, headless under `run_test`) with the real `BakeoffSource`, from
   app start until the grid has every task's row with every cell filled. Goal ≤ 1 s.

With `--live`, the real daemon runs the matrix instead, on a generated repository whose agents
are instant shell scripts (tests/bakeoff_repos.py: solver, half, breaker; two criteria commands per
task), and the benchmark adds:

3. scheduling: the wall time of the whole matrix × concurrency / attempts (all-in, per attempt),
   split into the agent's own time (its process, started in the sandbox), the criteria's time
   (checkouts and commands) and the rest — expd's scheduling: a fresh tree per attempt, the capture
   and pinning of the change, the sealed record. Goal for the rest ≤ 50 ms.
4. status while the daemon runs (the same measurement as 1, on the live run).

    python benchmarks/bakeoff_bench.py [--tasks 200] [--variants 3] [--attempts 2] [--repeats 10]
    python benchmarks/bakeoff_bench.py --live [--sandbox auto|none] [--concurrency 2]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXPD_STATE_DIR", tempfile.mkdtemp(prefix="expd-bench-state-"))

from shared import codec  # noqa: E402
from shared.atomic import write_atomic  # noqa: E402
from shared.bakeoffs.paths import BakeoffRunPaths  # noqa: E402
from shared.locking import try_lock, unlock  # noqa: E402
from shared.runs import RunRef, ref_for_dir  # noqa: E402
from shared.schema import DaemonInfo  # noqa: E402
from tests import bakeoff_fakes as bf  # noqa: E402
from tests.fake_runs import git_repo  # noqa: E402

SIZE = (120, 40)
STATUSES = ("passed", "passed", "failed", "error", "timeout")


def build_run(base: Path, tasks: int, variants: int, attempts: int) -> BakeoffRunPaths:
    """A repository with one bakeoff run whose matrix is complete (every attempt recorded)."""
    repo = git_repo(base / "repo")
    names = [f"v{i}" for i in range(variants)]
    paths = bf.make_run(repo, bf.spec(tasks, names, attempts=attempts))
    records = [
        bf.record(f"t{t:03d}", v, STATUSES[(t + i) % len(STATUSES)], attempt=n)
        for t in range(tasks)
        for i, v in enumerate(names)
        for n in range(1, attempts + 1)
    ]
    bf.append(paths, *records)
    return paths


def hold_alive(paths: BakeoffRunPaths) -> int:
    """Make the run look alive: hold daemon.lock and write a fresh heartbeat; the lock's fd."""
    fd = try_lock(paths.daemon_lock)
    if fd is None:
        raise SystemExit(f"{paths.daemon_lock} is held by another process")
    now = time.time()
    info = DaemonInfo(pid=os.getpid(), started_at=now, heartbeat_at=now, heartbeat_interval=3600)
    write_atomic(paths.daemon_json, codec.encode(info), durable=False)
    return fd


def python_env(cache: Path) -> dict[str, str]:
    """Bytecode cached (in a temp dir) as in any normal install, even if this shell disables it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure_status(paths: BakeoffRunPaths, repeats: int, cache: Path) -> dict[str, Any]:
    """`expd status --json RUN` in a fresh interpreter: wall times in ms."""
    ref = ref_for_dir(paths.dir)
    command = [sys.executable, "-m", "shared.cli.main", "status", "--json", ref.run_id]
    env = python_env(cache)
    cwd = paths.dir.parents[4]  # the repository
    times = []
    for i in range(repeats + 1):  # the first warms the page cache and the bytecode cache
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode not in (0, 3):
            raise SystemExit(f"status exited {proc.returncode}: {proc.stderr.decode()}")
        if i:
            times.append(elapsed)
    done = json.loads(proc.stdout)["done"]
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "runs": repeats,
        "attempts_read": done,
        "goal_ms": 100,
    }


async def open_once(ref: RunRef, tasks: int, last: str) -> float:
    """Seconds from app start until the grid shows every task with every cell filled."""
    from tui.app import ExpdApp
    from tui.screens.bakeoff import BakeoffScreen
    from tui.widgets.bakeoff_grid import BakeoffGrid

    def ready(app: ExpdApp) -> bool:
        screen = app.screen
        if not isinstance(screen, BakeoffScreen) or not screen.opened:
            return False
        grid = screen.query_one(BakeoffGrid)
        return grid.row_count == tasks and all(grid.cell(last, v) for v in grid.variants)

    start = time.perf_counter()
    app = ExpdApp(run=ref)
    async with app.run_test(size=SIZE) as pilot:
        while not ready(app):
            if time.perf_counter() - start > 30:
                raise SystemExit("the dashboard did not open within 30 s")
            await pilot.pause(0.005)
        return time.perf_counter() - start


def measure_open(paths: BakeoffRunPaths, tasks: int, repeats: int) -> dict[str, Any]:
    """The dashboard's open time (ms) over `repeats` fresh apps (after one to warm imports)."""
    from shared.bakeoffs.schema import BakeoffManifest

    ref = ref_for_dir(paths.dir)
    last = codec.read(paths.run_json, BakeoffManifest).spec.tasks[-1].id
    times = [asyncio.run(open_once(ref, tasks, last)) * 1000 for _ in range(repeats + 1)][1:]
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "runs": repeats,
        "goal_ms": 1000,
    }


def measure_live(
    base: Path, tasks: int, attempts: int, concurrency: int, sandbox: str, repeats: int
) -> tuple[BakeoffRunPaths, dict[str, Any]]:
    """Run the matrix with the real daemon; the split of each attempt's time, and status while it
    runs."""
    from daemon.commands.bakeoff import start_bakeoff
    from shared.bakeoffs.grading import read_records
    from tests.bakeoff_repos import make_bakeoff_repo, wait_done

    bk = make_bakeoff_repo(
        base / "live",
        tasks=tasks,
        attempts=attempts,
        concurrency=concurrency,
        timeout="60s",
        sandbox=None if sandbox == "auto" else sandbox,
    )
    start = time.perf_counter()
    started = start_bakeoff(bk.repo, bk.name)
    paths = BakeoffRunPaths(started.run_dir)
    time.sleep(1.0)  # let the matrix get going before status is timed against it
    live_status = measure_status(paths, repeats, base / "pycache")
    state = wait_done(paths, timeout=3600)
    wall = time.perf_counter() - start
    records = read_records(paths)
    n = len(records)
    all_in = wall * concurrency / n * 1000
    agent = statistics.mean(r.duration_s for r in records) * 1000
    criteria = statistics.mean(r.criteria_s for r in records) * 1000
    return paths, {
        "phase": f"{state.phase} ({state.termination_reason})",
        "sandbox": started.sandbox,
        "concurrency": concurrency,
        "attempts": n,
        "wall_s": round(wall, 1),
        "per_attempt_all_in_ms": round(all_in, 1),
        "agent_ms": round(agent, 1),
        "criteria_ms": round(criteria, 1),
        "scheduling_ms": round(all_in - agent - criteria, 1),
        "goal_scheduling_ms": 50,
        "status_json_while_running": live_status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--attempts", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--open-repeats", type=int, default=5)
    parser.add_argument("--live", action="store_true", help="run the matrix with the real daemon")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "landlock", "none"), default="auto")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    if args.live:
        with tempfile.TemporaryDirectory(prefix="expd-bakeoff-bench-") as tmp:
            paths, live = measure_live(
                Path(tmp), args.tasks, args.attempts, args.concurrency, args.sandbox, args.repeats
            )
            report = {
                "machine": f"{platform.machine()} · {os.cpu_count()} cpus · "
                f"Python {platform.python_version()}",
                "matrix": f"{args.tasks} tasks × 3 variants × {args.attempts} attempts (live)",
                "scheduling": live,
                "status_json_after": measure_status(paths, args.repeats, Path(tmp) / "pycache"),
                "dashboard_open": measure_open(paths, args.tasks, args.open_repeats),
            }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    with tempfile.TemporaryDirectory(prefix="expd-bakeoff-bench-") as tmp:
        base = Path(tmp)
        paths = build_run(base, args.tasks, args.variants, args.attempts)
        fd = hold_alive(paths)
        try:
            report = {
                "machine": f"{platform.machine()} · {os.cpu_count()} cpus · "
                f"Python {platform.python_version()}",
                "matrix": f"{args.tasks} tasks × {args.variants} variants × {args.attempts} "
                "attempts",
                "records": args.tasks * args.variants * args.attempts,
                "status_json": measure_status(paths, args.repeats, base / "pycache"),
                "dashboard_open": measure_open(paths, args.tasks, args.open_repeats),
            }
        finally:
            unlock(fd)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
