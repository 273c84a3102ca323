"""How many experiments an hour do lanes give? The real daemon, local executor, command agents.

Each case starts a real run in a fresh repository: an agent turn of `--agent-s` (a `sleep`, then a
one-file change no other lane touches) and a measurement of `--measure-s`, with `[lanes] count` =
N and one measurement slot. Throughput is the experiments decided per hour between the first
agent start and the last decision. The saturation model:

    throughput ≈ min(N / (T_agent + T_measure + overhead), slots / T_measure)

(a lane waits for its own candidate's decision before its next turn, so its cycle is the agent's
time plus one measurement plus expd's overhead, measured with one lane).

The last case runs `--wide` lanes with instant agents (`sleep 0`): the slot should never idle, and
the daemon's own CPU time per experiment (its process, threads included: git work, records, state
saves) is what expd costs; goal ≤ 25 ms.

With `--executor ray` the same cases run on a local Ray cluster started for the benchmark (a
head and a worker node on 127.0.0.2, each with two `agent` resources; the head holds the one
`bench` resource the measurement asks for, so measurements are serialised): agent turns and
measurements are Ray tasks, the repository travels as git bundles. No wide case there.

    python benchmarks/lanes_bench.py [--agent-s 2] [--measure-s 0.2] [--lanes 1,2,4,8] [--json]
    python benchmarks/lanes_bench.py --executor ray --lanes 1,4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import codec
from shared.paths import RunPaths
from shared.schema import DaemonInfo, Event
from tests.repos import git, make_repo, results, start, wait_finished

RAY_LANES = (
    'executor = "ray"\naddress = "{address}"\n'
    "agent_resources = {{num_cpus = 0, agent = 1}}\n"
    "measure_resources = {{num_cpus = 0, bench = 1}}\n"
    '[measure]\ncommand = "bash m.sh"\n'
)

AGENT = """#!/bin/bash
cat > /dev/null
sleep ${NAP:-0}
echo "x = -$EXPD_EXPERIMENT" > "d$EXPD_EXPERIMENT.py"
echo "EXPD-DESCRIPTION: file $EXPD_EXPERIMENT"
"""
MEASURE = """#!/bin/bash
n=$(ls d*.py 2>/dev/null | wc -l)
sleep ${MEASURE_NAP:-0}
echo "{\\"score\\": $((100000 - n))}"
"""
DECIDE = 'policy = "fixed"\nrepeats = 1\nmin_effect = 0.000001'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(
    root: Path,
    lanes: int,
    experiments: int,
    agent_s: float,
    measure_s: float,
    ray: str | None = None,
) -> dict:
    """One run; `ray` is the address of the cluster to run it on (None: the local executor)."""
    repo = make_repo(
        root,
        max_experiments=experiments,
        agent_sh=AGENT,
        measure_sh=MEASURE,
        decide=DECIDE,
        toml_extra=f"[lanes]\ncount = {lanes}\n" + (RAY_LANES.format(address=ray) if ray else ""),
    )
    env = {"NAP": str(agent_s), "MEASURE_NAP": str(measure_s)}
    if ray:
        from tests.ray_cluster import FAST_FAILURE, LOOPBACK

        (repo / "m.sh").write_text(MEASURE)
        git(repo, "add", "m.sh")
        git(repo, "commit", "-qm", "measure")
        env = {**os.environ, **env, **FAST_FAILURE, "EXPD_RAY_NODE_IP": LOOPBACK}
    paths = start(repo, env=env)
    pid = codec.read(paths.daemon_json, DaemonInfo).pid
    cpu = 0.0
    while True:
        try:
            cpu = cpu_seconds(pid)
        except (OSError, IndexError):
            break
        try:
            wait_finished(paths, timeout=0.2)
            break
        except AssertionError:
            continue
    wait_finished(paths, timeout=600)
    got = [r for r in results(paths) if r.experiment > 0]
    events = [
        codec.decode(x, Event, source="events") for x in paths.events.read_bytes().splitlines()
    ]
    first = min(e.t for e in events if e.kind == "agent_start")
    wall = max(r.finished_at for r in got) - first
    measuring = sum(r.measure_s for r in got)
    return {
        "lanes": lanes,
        "experiments": len(got),
        "wall_s": round(wall, 2),
        "per_hour": round(len(got) / wall * 3600),
        "slot_busy": round(measuring / wall, 3),
        # The daemon's start and baseline are counted in: an upper bound.
        "daemon_cpu_ms_per_experiment": round(cpu / len(got) * 1000, 1),
    }


class InstantAgent:
    """A synthetic agent inside the daemon's process: it writes one new file, at once."""

    kind = "command"

    def __init__(self, config: Any) -> None:
        self.config = config

    async def run(self, task: Any, emit: Any) -> Any:
        from daemon.agents.base import AgentOutcome

        if SIM.first_turn is None:
            SIM.first_turn = time.process_time()
        n = task.experiment
        (task.worktree / f"d{n}.py").write_text(f"x = -{n}\n")
        return AgentOutcome(description=f"file {n}")

    def __getattr__(self, name: str) -> Any:  # feedback, recover, close, switch_model
        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return nothing


@dataclass
class _Sim:
    measure_s: float = 0.2
    first_turn: float | None = None
    last_record: float = 0.0


SIM = _Sim()


async def _instant_measure(self: Any, on_start: Any = None) -> Any:
    """A measurement of `SIM.measure_s` (a sleep) scoring the tree by its `d*.py` files."""
    from daemon.ops.measure import Sample

    await anyio.sleep(SIM.measure_s)
    n = sum(1 for name in os.listdir(self.worktree) if name[0] == "d")
    return Sample(ok=True, metrics={"score": 100000.0 - n}, duration=SIM.measure_s)


def simulate(root: Path, lanes: int, experiments: int, measure_s: float) -> dict:
    """The wide case in this process: the real daemon code (lanes, queue, git work, recorder,
    store on `root`) with `InstantAgent`s and sleeping measurements. CPU time is this process's
    (threads included) from the first agent turn to the run's end."""
    from daemon.commands import spawn
    from daemon.ops.measure import Measurer
    from daemon.service import arms
    from daemon.service.main import main as daemon_main
    from daemon.service.recorder import Recorder

    def record(self: Recorder, *args: Any, **kwargs: Any) -> None:
        recorded(self, *args, **kwargs)
        SIM.last_record = time.process_time()

    repo = make_repo(
        root,
        max_experiments=experiments,
        agent_sh=AGENT,
        measure_sh=MEASURE,
        decide=DECIDE,
        sandbox="none",
        toml_extra=f'[lanes]\ncount = {lanes}\n[measure]\nsandbox = "none"\n',
    )
    SIM.measure_s, SIM.first_turn = measure_s, None
    saved = spawn._spawn, arms.make_agent, Measurer.once, Recorder.record
    recorded = Recorder.record
    spawn._spawn = lambda paths: os.getpid()  # the daemon runs here, below
    arms.make_agent = lambda config, **_: InstantAgent(config)
    Measurer.once = _instant_measure  # type: ignore[method-assign]
    Recorder.record = record  # type: ignore[method-assign]
    try:
        started = spawn.start_run(repo, "p")
        wall = time.monotonic()
        assert daemon_main([str(started.run_dir)]) == 0
        wall = time.monotonic() - wall
    finally:
        spawn._spawn, arms.make_agent, Measurer.once, Recorder.record = saved
    cpu = SIM.last_record - (SIM.first_turn or 0.0)
    paths = RunPaths(started.run_dir)
    got = [r for r in results(paths) if r.experiment > 0]
    events = [
        codec.decode(x, Event, source="events") for x in paths.events.read_bytes().splitlines()
    ]
    first = min(e.t for e in events if e.kind == "agent_start")
    span = max(r.finished_at for r in got) - first
    return {
        "lanes": lanes,
        "experiments": len(got),
        "keeps": sum(r.status == "keep" for r in got),
        "wall_s": round(span, 2),
        "per_hour": round(len(got) / span * 3600),
        "slot_busy": round(sum(r.measure_s for r in got) / span, 3),
        "daemon_cpu_ms_per_experiment": round(cpu / len(got) * 1000, 1),
        "start_and_end_s": round(wall - span, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-s", type=float, default=2.0)
    parser.add_argument("--measure-s", type=float, default=0.2)
    parser.add_argument("--lanes", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=4, help="experiments per lane")
    parser.add_argument("--wide", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    wide: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="expd-lanes-bench-") as tmp, _cluster(args) as ray:
        for i, n in enumerate(int(x) for x in args.lanes.split(",")):
            root = Path(tmp) / f"r{i}"
            rows.append(one(root, n, n * args.rounds, args.agent_s, args.measure_s, ray))
        if ray is None and args.wide:
            wide = one(Path(tmp) / "wide", args.wide, args.wide * 3, 0.0, args.measure_s)
    one_lane = next((r for r in rows if r["lanes"] == 1), rows[0])
    cycle = 3600 / one_lane["per_hour"]  # T_agent + T_measure + overhead, measured
    for row in rows:
        model = min(row["lanes"] / cycle, 1 / args.measure_s) * 3600
        row["model_per_hour"] = round(model)
        row["vs_linear"] = round(row["per_hour"] / (row["lanes"] * one_lane["per_hour"]), 2)
    if args.json:
        print(json.dumps({"rows": rows, "wide": wide}))
        return
    print("| lanes | experiments | per hour | model | vs N × one lane | slot busy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lanes']} | {r['experiments']} | {r['per_hour']} | {r['model_per_hour']} | "
            f"{r['vs_linear']} | {r['slot_busy']:.0%} |"
        )
    if wide is None:
        return
    print(
        f"\n{wide['lanes']} lanes, instant agents: {wide['experiments']} experiments, "
        f"{wide['per_hour']}/h, slot busy {wide['slot_busy']:.0%}, "
        f"daemon CPU {wide['daemon_cpu_ms_per_experiment']} ms per experiment"
    )


@contextlib.contextmanager
def _cluster(args: argparse.Namespace):
    """With `--executor ray`: a local head and worker (the agents' and measurement's naps in the
    nodes' environment, which their tasks inherit); the head's address."""
    if args.executor != "ray":
        yield None
        return
    from tests.ray_cluster import local_cluster

    env = {"NAP": str(args.agent_s), "MEASURE_NAP": str(args.measure_s)}
    with local_cluster({"agent": 2, "bench": 1}, {"agent": 2}, env) as (address, _):
        yield address


if __name__ == "__main__":
    main()
