"""How well does the arms allocation share a run? A simulation that drives the real `choose`.

The world: a good arm (a keep with probability 0.4), a mediocre one (0.15) and a useless one
(0.0), each costing $0.10 per experiment. Each simulated run gives 100 experiments, one at a time,
to the arm `daemon.policies.allocation.choose` picks (with the per-experiment draws the daemon
makes, `rng_for(seed, n)`), and the arm's outcome is drawn from the world. For each policy and
`min_share`, over `--seeds` runs:

- good share: the good arm's share of the 100 experiments (mean, minimum, and how many runs gave
  it at least 60 %);
- starved: runs in which some arm ever had fewer than `min_share × n − 1` of the first n;
- regret: the expected keeps lost against always running the good arm (40 per run), i.e.
  40 − Σ experiments × keep probability, in keeps and as a share of 40.

    python benchmarks/arms_bench.py [--seeds 1000] [--experiments 100] [--json]

Prints a Markdown table (or, with --json, one JSON object).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.policies.allocation import choose, rng_for
from shared.schema import ArmsPolicy, ArmStats

WORLD = {"good": (0.4, 0.10), "mediocre": (0.15, 0.10), "useless": (0.0, 0.10)}
CASES = [("thompson", 0.05), ("thompson", 0.1), ("thompson", 0.2), ("round_robin", 0.1)]


def run(seed: int, policy: ArmsPolicy, n: int) -> tuple[dict[str, int], int, bool]:
    """Experiments per arm, keeps, and whether an arm ever fell below the floor."""
    stats = [ArmStats(id=name) for name in WORLD]
    outcomes = random.Random(f"world/{seed}")
    starved = False
    keeps = 0
    for i in range(1, n + 1):
        chosen = choose(stats, policy, rng_for(seed, i))
        arm = next(a for a in stats if a.id == chosen)
        p, cost = WORLD[arm.id]
        arm.experiments += 1
        arm.cost_usd += cost
        kept = outcomes.random() < p
        arm.keeps += kept
        keeps += kept
        starved = starved or any(a.experiments < policy.min_share * i - 1 for a in stats)
    return {a.id: a.experiments for a in stats}, keeps, starved


def case(allocation: str, min_share: float, seeds: int, n: int) -> dict[str, Any]:
    policy = ArmsPolicy(allocation=allocation, min_share=min_share)  # type: ignore[arg-type]
    shares, regrets, keeps, starved = [], [], [], 0
    best = max(p for p, _ in WORLD.values()) * n
    for seed in range(seeds):
        counts, kept, hungry = run(seed, policy, n)
        shares.append(counts["good"] / n)
        regrets.append(best - sum(counts[a] * WORLD[a][0] for a in WORLD))
        keeps.append(kept)
        starved += hungry
    return {
        "allocation": allocation,
        "min_share": min_share,
        "good_share_mean": statistics.mean(shares),
        "good_share_min": min(shares),
        "good_share_p10": sorted(shares)[len(shares) // 10],
        "runs_good_at_least_60pct": sum(s >= 0.6 for s in shares) / seeds,
        "starved_runs": starved,
        "regret_keeps": statistics.mean(regrets),
        "regret_share": statistics.mean(regrets) / best,
        "keeps_mean": statistics.mean(keeps),
    }


def table(rows: list[dict[str, Any]], seeds: int, n: int) -> str:
    lines = [
        f"{seeds} seeded runs of {n} experiments each; good arm p=0.4, mediocre 0.15, useless 0.0,"
        " $0.10 each.",
        "",
        "| allocation | min_share | good share: mean | p10 | min | runs ≥ 60 % | starved runs "
        "| regret (keeps) | regret |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['allocation']} | {r['min_share']:g} | {r['good_share_mean']:.1%} "
            f"| {r['good_share_p10']:.0%} | {r['good_share_min']:.0%} "
            f"| {r['runs_good_at_least_60pct']:.1%} | {r['starved_runs']} "
            f"| {r['regret_keeps']:.1f} | {r['regret_share']:.1%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [case(a, s, args.seeds, args.experiments) for a, s in CASES]
    if args.json:
        print(json.dumps({"seeds": args.seeds, "experiments": args.experiments, "cases": rows}))
    else:
        print(table(rows, args.seeds, args.experiments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
