"""Orchestration overhead per experiment: a trivial `command` agent and an instant measurement.

Runs the real CLI and daemon on a scratch repository and reads the timings back from
results.jsonl. Prints the wall time per experiment (what the peers in the docs report) and expd's
own share of it (wall time minus the agent's and the measurement's process time). The agent runs
in the sandbox `--sandbox` names (default `auto`, as runs do): its start-up is part of the agent's
time, not expd's share, so comparing `agent_ms_median` with `--sandbox none` reports it separately.
The measurement runs in the sandbox `--measure-sandbox` names (default: `--sandbox`'s); its
start-up is part of `measure_ms_median`, likewise.

    python benchmarks/overhead.py [--experiments 200] [--sandbox auto|bwrap|landlock|none]
                                  [--measure-sandbox auto|bwrap|landlock|none]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.repos import expd, git, make_repo, measure_toml, results, start, wait_finished  # noqa: E402

# Odd experiments write 0 (a discard and a revert), even ones write n (a keep).
AGENT = """#!/bin/bash
n=$EXPD_EXPERIMENT
if [ $((n % 2)) -eq 1 ]; then echo 0 > n.txt; echo "$n" > odd.txt; else echo "$n" > n.txt; fi
"""
MEASURE = 'read v < n.txt; echo "{\\"n\\": $v}"'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


SEGMENTS = {
    ("agent_start", "agent_end"): "agent process",
    ("agent_end", "phase:measuring"): "capture: commit, pin, diff, patch",
    ("phase:measuring", "decision"): "checkout, measurement process, decision",
    ("decision", "phase:reverting"): "record result",
    ("decision", "phase:idle"): "record result",
    ("phase:reverting", "phase:idle"): "revert and verify",
    ("phase:idle", "phase:agent_running"): "prompt",
    ("phase:agent_running", "agent_start"): "start agent",
}


def breakdown(events: Path) -> dict[str, float]:
    """Median milliseconds between consecutive transcript entries, by what happens in between."""
    entries = [json.loads(line) for line in events.read_text().splitlines() if line]
    spans: dict[str, list[float]] = {}
    for a, b in itertools.pairwise(entries):
        if not a.get("experiment"):
            continue
        key = tuple(
            e["kind"] + (f":{e['data']['phase']}" if e["kind"] == "phase" else "") for e in (a, b)
        )
        name = SEGMENTS.get(key)  # type: ignore[arg-type]
        if name:
            spans.setdefault(name, []).append((b["t"] - a["t"]) * 1000)
    return {name: round(statistics.median(v), 2) for name, v in spans.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--sandbox", default="auto", help="[agent] sandbox for the run")
    parser.add_argument("--measure-sandbox", default=None, help="[measure] sandbox (--sandbox's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="expd-bench-") as tmp:
        os.environ["EXPD_STATE_DIR"] = str(Path(tmp) / "state")
        repo = make_repo(
            Path(tmp) / "repo",
            max_experiments=args.experiments,
            agent_sh=AGENT,
            measure_sh="#!/bin/bash\n" + MEASURE + "\n",
            sandbox=args.sandbox,
            toml_extra=measure_toml(sandbox=args.measure_sandbox or args.sandbox),
        )
        (repo / "n.txt").write_text("0\n")
        git(repo, "add", "n.txt")
        git(repo, "commit", "-qm", "n")
        toml = repo / ".expd/programs/p/program.toml"
        text = toml.read_text().replace('metric = "score"', 'metric = "n"')
        text = text.replace('direction = "lower"', 'direction = "higher"')
        toml.write_text(text + "\n" if not text.endswith("\n") else text)
        text = toml.read_text().replace("[loop]\n", "[loop]\nmax_consecutive_discards = 100000\n")
        toml.write_text(text)
        began = time.monotonic()
        paths = start(repo)
        state = wait_finished(paths, timeout=3600)
        wall = time.monotonic() - began
        records = [r for r in results(paths) if r.experiment > 0]
        per = [b.finished_at - a.finished_at for a, b in itertools.pairwise(records)]
        own = [
            (b.finished_at - a.finished_at) - b.agent_s - b.measure_s
            for a, b in itertools.pairwise(records)
        ]
        status = expd("status", "--json", cwd=repo)
        segments = breakdown(paths.events)
        summary = {
            "experiments": len(records),
            "sandbox": state.sandbox,
            "measure_sandbox": state.measure_sandbox,
            "keeps": state.keeps,
            "discards": state.discards,
            "total_s": round(wall, 2),
            "per_experiment_ms": {
                "median": round(statistics.median(per) * 1000, 1),
                "p95": round(percentile(per, 0.95) * 1000, 1),
            },
            "expd_share_ms": {
                "median": round(statistics.median(own) * 1000, 1),
                "p95": round(percentile(own, 0.95) * 1000, 1),
            },
            "agent_ms_median": round(statistics.median(r.agent_s for r in records) * 1000, 1),
            "measure_ms_median": round(statistics.median(r.measure_s for r in records) * 1000, 1),
            "segments_ms_median": segments,
            "status_exit": status.returncode,
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
