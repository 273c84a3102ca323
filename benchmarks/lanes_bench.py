"""How many experiments an hour do lanes give? The real daemon, local executor, command agents.

Each case starts a real run in a fresh repository: an agent turn of `--agent-s` (a `sleep`, then a
one-file change no other lane touches) and a measurement of `--measure-s`, with `[lanes] count` =
N, one measurement slot and `--rounds` experiments per lane. Throughput is the experiments decided
per hour between the first agent start and the last decision. The saturation model:

    throughput(N) ≈ min(N / C, 1 / S)

C is one lane's cycle (agent + measurement + expd's overhead, measured with one lane: a lane
waits for its candidate's decision before its next turn), S the slot's time per experiment as
the record counts it (checkout and measurement). Saturation is predicted at N* = C / S lanes; the
decision's own serial work (recording, replaying the next candidate) is outside S, so the
measured plateau sits a little under 1 / S. Every lane's first candidate reaches the slot at once, so the
first round costs about (N - 1) × S of queueing: short runs understate the steady rate.
`--stagger` starts lane k's first turn k × `--measure-s` late (the agent of the first round
waits), to see whether that start-up burst is what costs.

`--wide N` then runs N lanes with instant agents in this process (benchmarks/lanes_sim.py): how
busy the slot stays and the daemon's CPU per experiment (goal ≤ 25 ms).

With `--executor ray` the cases run on a local Ray cluster started for the benchmark (a head and
a worker node on 127.0.0.2, each with `agent` resources for half the lanes; the head holds the
one `bench` resource the measurement asks for, so measurements are serialised): agent turns and
measurements are Ray tasks, the repository travels as git bundles. No wide case there.

    python benchmarks/lanes_bench.py [--agent-s 2] [--measure-s 0.2] [--lanes 1,2,4,8,12,16]
        [--rounds 16] [--stagger] [--wide 100] [--json]
    python benchmarks/lanes_bench.py --executor ray --lanes 1,4 --wide 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import codec
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
if [ -n "$STAGGER" ] && [ "$EXPD_EXPERIMENT" -le "$LANES" ]; then
  sleep $(awk "BEGIN { print ($EXPD_EXPERIMENT - 1) * $STAGGER }")
fi
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
    stagger: bool = False,
) -> dict[str, Any]:
    """One run; `ray` is the address of the cluster to run it on (None: the local executor)."""
    repo = make_repo(
        root,
        max_experiments=experiments,
        agent_sh=AGENT,
        measure_sh=MEASURE,
        decide=DECIDE,
        toml_extra=f"[lanes]\ncount = {lanes}\n" + (RAY_LANES.format(address=ray) if ray else ""),
    )
    env = {"NAP": str(agent_s), "MEASURE_NAP": str(measure_s), "LANES": str(lanes)}
    if stagger:
        env["STAGGER"] = str(measure_s)
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
    wait_finished(paths, timeout=1800)
    got = [r for r in results(paths) if r.experiment > 0]
    events = [
        codec.decode(x, Event, source="events") for x in paths.events.read_bytes().splitlines()
    ]
    first = min(e.t for e in events if e.kind == "agent_start")
    ends = sorted(r.finished_at for r in got)
    wall = ends[-1] - first
    # Past the start-up burst: from the moment every lane has had its first decision.
    settled = ends[lanes - 1] if len(ends) > lanes else first
    steady = (len(ends) - lanes) / (ends[-1] - settled) * 3600 if ends[-1] > settled else 0.0
    return {
        "lanes": lanes,
        "experiments": len(got),
        "wall_s": round(wall, 2),
        "per_hour": round(len(got) / wall * 3600),
        "steady_per_hour": round(steady),
        "slot_busy": round(sum(r.measure_s for r in got) / wall, 3),
        "measure_s_mean": sum(r.measure_s for r in got) / len(got),
        # The daemon's start and baseline are counted in: an upper bound.
        "daemon_cpu_ms_per_experiment": round(cpu / len(got) * 1000, 1),
    }


def model(rows: list[dict[str, Any]]) -> dict[str, float]:
    """C (one lane's cycle, measured), S (the slot's time per experiment as the record counts it:
    checkout and measurement, mean over every run) and the predicted saturation N* = C / S."""
    one_lane = next((r for r in rows if r["lanes"] == 1), rows[0])
    cycle = 3600 / one_lane["per_hour"]
    total = sum(r["experiments"] for r in rows)
    slot = sum(r["measure_s_mean"] * r["experiments"] for r in rows) / total
    for row in rows:
        row["model_per_hour"] = round(min(row["lanes"] / cycle, 1 / slot) * 3600)
        linear = row["lanes"] * one_lane["per_hour"]
        row["vs_linear"] = round(row["per_hour"] / linear, 2)
        row["steady_vs_linear"] = round(row["steady_per_hour"] / linear, 2)
    return {"cycle_s": round(cycle, 3), "slot_s": round(slot, 3), "saturation": cycle / slot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-s", type=float, default=2.0)
    parser.add_argument("--measure-s", type=float, default=0.2)
    parser.add_argument("--lanes", default="1,2,4,8,12,16")
    parser.add_argument("--rounds", type=int, default=16, help="experiments per lane")
    parser.add_argument("--stagger", action="store_true", help="lane k starts k × measure late")
    parser.add_argument("--wide", type=int, default=100, help="lanes of the in-process case")
    parser.add_argument("--wide-rounds", type=int, default=3)
    parser.add_argument("--wide-keep-every", type=int, default=1, help="1: every one a keep")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    wide: dict[str, Any] | None = None
    counts = [int(x) for x in args.lanes.split(",") if x]
    with tempfile.TemporaryDirectory(prefix="expd-lanes-bench-") as tmp:
        os.environ.setdefault("EXPD_STATE_DIR", str(Path(tmp) / "state"))  # not the user's index
        with _cluster(args, max(counts, default=1)) as ray:
            for i, n in enumerate(counts):
                root = Path(tmp) / f"r{i}"
                experiments = n * args.rounds
                rows.append(
                    one(root, n, experiments, args.agent_s, args.measure_s, ray, args.stagger)
                )
        if ray is None and args.wide:
            from benchmarks.lanes_sim import simulate

            wide = simulate(
                Path(tmp) / "wide",
                args.wide,
                args.wide * args.wide_rounds,
                args.measure_s,
                args.wide_keep_every,
            )
    fit = model(rows) if rows else {}
    if args.json:
        print(json.dumps({"rows": rows, "model": fit, "wide": wide}))
        return
    if rows:
        _table(rows, fit, args)
    if wide is not None:
        print(
            f"\n{wide['lanes']} lanes, instant agents, in-process: {wide['experiments']} "
            f"experiments ({wide['keeps']} keeps), {wide['per_hour']}/h, slot busy "
            f"{wide['slot_busy']:.0%}, daemon CPU {wide['daemon_cpu_ms_per_experiment']} ms per "
            f"experiment ({wide['git_threads_ms_per_experiment']} ms of it git work on trees); "
            f"start and end {wide['start_and_end_s']} s"
        )


def _table(rows: list[dict[str, Any]], fit: dict[str, float], args: argparse.Namespace) -> None:
    print(
        f"agent {args.agent_s} s, measurement {args.measure_s} s, {args.rounds} experiments per "
        f"lane{', staggered starts' if args.stagger else ''}, executor {args.executor}"
    )
    print("| lanes | experiments | per hour | steady per hour | model | vs N × one lane |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lanes']} | {r['experiments']} | {r['per_hour']} | {r['steady_per_hour']} | "
            f"{r['model_per_hour']} | {r['vs_linear']} (steady {r['steady_vs_linear']}) |"
        )
    print(
        f"\nmodel: one lane's cycle C = {fit['cycle_s']} s, slot time per experiment S = "
        f"{fit['slot_s']} s: saturation predicted at N* = C / S = {fit['saturation']:.1f} lanes "
        f"({round(3600 / fit['slot_s'])}/h)"
    )


@contextlib.contextmanager
def _cluster(args: argparse.Namespace, lanes: int):
    """With `--executor ray`: a local head and worker (the agents' and measurement's naps in the
    nodes' environment, which their tasks inherit); the head's address."""
    if args.executor != "ray":
        yield None
        return
    from tests.ray_cluster import local_cluster

    env = {"NAP": str(args.agent_s), "MEASURE_NAP": str(args.measure_s)}
    half = max(1, (lanes + 1) // 2)
    with local_cluster({"agent": half, "bench": 1}, {"agent": half}, env) as (address, _):
        yield address


if __name__ == "__main__":
    main()
