"""How well do the decision policies decide? A simulation that drives the real policy objects.

Each simulated run: a baseline, then 100 candidate changes (mixed stream: half neutral, a third
harmful, a sixth helpful, |effect| uniform in 1–6 %; or all neutral), each measured and decided by
the policy exactly as the daemon does. A measurement is log-normal noise at the given CV around the
true value, times a slow linear drift (up to ±8 % per 1000 runs), plus in half of the runs a step
of ±3–8 % at a random time (the machine changed), and an outlier (1.2–2× slower) in 2 % of runs.
The metric is a time (lower is better). Both policies see the same changes and the same machine.
The pool and the headline are kept by the daemon's own books (`daemon.policies.ledger.follow`), so
"claimed" is what `expd status` would show at the end; "gain in 5 runs/exp" is the true gain
reached when a fixed budget of runs was spent (nothing extrapolated).

    python benchmarks/decisions.py [--runs 200] [--seed 1] [--quick] [--json out.json]
        [--policies sequential] [--cvs 0.05] [--streams mixed] [--set close_runs=12 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from daemon.policies.base import ChangeInfo, Measure, Policy
from daemon.policies.fixed import FixedRepeatsPolicy
from daemon.policies.ledger import follow, pool_left
from daemon.policies.sequential import SequentialPolicy
from shared.evidence import BaselineEvidence
from shared.schema import RunState

CVS = (0.01, 0.05, 0.15)
STREAMS = ("mixed", "neutral")
POLICIES = ("sequential", "fixed median-of-5")
OUTLIER_RATE = 0.02


OVERRIDES: dict[str, float] = {}
"""`--set name=value`: sequential policy settings to try instead of the shipped defaults."""


def make(name: str) -> Policy:
    if name == "sequential":
        return SequentialPolicy("time", "lower", **OVERRIDES)  # type: ignore[arg-type]
    return FixedRepeatsPolicy("time", "lower", min_effect=0.02, repeats=5)


@dataclass
class Machine:
    """The measured system: noise, drift, a possible step, outliers. `g` is the true log-speedup."""

    rng: random.Random
    sigma: float
    slope: float
    step_at: int | None
    step: float
    t: int = 0

    @classmethod
    def new(cls, rng: random.Random, cv: float) -> Machine:
        slope = rng.uniform(-0.08, 0.08) / 1000
        step_at = rng.randrange(500) if rng.random() < 0.5 else None
        step = rng.choice((-1, 1)) * rng.uniform(0.03, 0.08)
        return cls(rng, math.sqrt(math.log1p(cv * cv)), slope, step_at, step)

    def measure(self, g: float) -> float:
        self.t += 1
        drift = self.slope * self.t
        if self.step_at is not None and self.t >= self.step_at:
            drift += self.step
        x = 100 * math.exp(-g + drift + self.rng.gauss(0, self.sigma))
        if self.rng.random() < OUTLIER_RATE:
            x *= 1 + self.rng.uniform(0.2, 1.0)
        return x


def change_effect(rng: random.Random, stream: str) -> float:
    u = rng.random()
    if stream == "neutral" or u < 1 / 2:
        return 0.0
    size = rng.uniform(0.01, 0.06)
    return -size if u < 1 / 2 + 1 / 3 else size


def simulate(policy_name: str, stream: str, cv: float, seed: str, experiments: int) -> dict:
    """One run of `experiments` decisions, with the daemon's own books (`ledger.follow`) for the
    pool and the headline: what was kept, what it was worth, what the headline claimed, what it
    cost, and the true gain reached when the budget of runs ran out."""
    policy = make(policy_name)
    changes = random.Random(f"{seed}-changes")
    machine = Machine.new(random.Random(f"{seed}-machine"), cv)
    g = 0.0
    state = RunState(direction="lower")
    values = [machine.measure(g) for _ in range(policy.baseline_runs())]
    follow(state, "baseline", values, BaselineEvidence(pool=values, estimates=True))
    runs = len(values)
    budget = BUDGET_PER_EXPERIMENT * experiments
    out: dict[str, Any] = {"effects": [], "kept": [], "true": 0.0, "drift": 0}
    out["at_budget"] = None
    for _ in range(experiments):
        effect = change_effect(changes, stream)
        session = policy.begin(state.pool, change=ChangeInfo())
        while isinstance(step := session.next(), Measure):
            runs += 1
            if runs == budget:
                out["at_budget"] = g
            value = machine.measure(g + effect if step.side == "candidate" else g)
            session.observe(step.side, {"time": value})
        out["effects"].append(effect)
        out["kept"].append(step.keep)
        out["drift"] += step.drift is not None
        if step.keep:
            g += effect
            state.keeps += 1
        ev = msgspec.structs.replace(step.evidence, pool=pool_left(step, state.pool))
        if step.drift:
            ev = msgspec.structs.replace(ev, drift=step.drift)
        follow(state, step.status, step.samples, ev)
    out["true"] = g
    out["runs"] = runs
    if out["at_budget"] is None:  # the experiments ended before the budget: what they reached
        out["at_budget"] = g
    imp = state.improvement_pct or 0.0
    out["claimed"] = -math.log1p(-min(imp / 100, 0.99))
    ci = state.improvement_ci
    truth = -math.expm1(-g) * 100
    out["covered"] = ci is not None and ci[0] - 1e-9 <= truth <= ci[1] + 1e-9
    return out


BUDGET_PER_EXPERIMENT = 5
"""The fixed budget of runs for "gain within budget": this many per experiment (500 runs for 100
experiments); a policy that spends less gets no extrapolated credit, one that spends more is cut."""


ONE_SHOT_EFFECTS = (-0.03, 0.0, 0.03, 0.06)


def one_shot(policy_name: str, cv: float, seed: int, count: int) -> dict[str, Any]:
    """Single decisions against a freshly measured incumbent (no ratchet, no drift): how often
    each true effect is kept, and the runs it takes. The pool is the policy's steady state."""
    policy = make(policy_name)
    pool_runs = getattr(policy, "pool_size", policy.baseline_runs())
    out: dict[str, Any] = {"policy": policy_name, "cv": cv}
    runs = 0
    for effect in ONE_SHOT_EFFECTS:
        machine = Machine(
            random.Random(f"{seed}-{cv}-{effect}"), math.sqrt(math.log1p(cv * cv)), 0, None, 0
        )
        kept = 0
        for _ in range(count):
            pool = [machine.measure(0) for _ in range(pool_runs)]
            session = policy.begin(pool, change=ChangeInfo())
            while isinstance(step := session.next(), Measure):
                runs += 1
                session.observe(
                    step.side, {"time": machine.measure(effect if step.side == "candidate" else 0)}
                )
            kept += step.keep
        out[f"keep_at_{effect:+.2f}"] = kept / count
    out["runs_per_decision"] = runs / (count * len(ONE_SHOT_EFFECTS))
    return out


def condition(args: tuple[str, str, float, int, int, int]) -> dict[str, Any]:
    policy_name, stream, cv, seed, first, count = args
    sims = [
        simulate(policy_name, stream, cv, f"{seed}-{stream}-{cv}-{i}", EXPERIMENTS)
        for i in range(first, first + count)
    ]
    return {"key": (policy_name, stream, cv), "sims": sims}


EXPERIMENTS = 100


def summarize(sims: list[dict]) -> dict[str, float]:
    def rate(pred: Any) -> float:
        picked = [k for s in sims for e, k in zip(s["effects"], s["kept"], strict=True) if pred(e)]
        return sum(picked) / len(picked) if picked else math.nan

    decisions = sum(len(s["kept"]) for s in sims)
    runs = sum(s["runs"] for s in sims)
    true = sorted(math.expm1(s["true"]) * 100 for s in sims)
    mean_true = statistics.fmean(s["true"] for s in sims)
    mean_claimed = statistics.fmean(s["claimed"] for s in sims)
    errors = [s["claimed"] - s["true"] for s in sims]
    return {
        "false_keep": rate(lambda e: e <= 0),
        "harmful_keep": rate(lambda e: e < 0),
        "helpful_keep": rate(lambda e: e > 0),
        "gain3_lost": 1 - rate(lambda e: e >= 0.03),
        "runs_per_decision": runs / decisions,
        "true_improvement_pct": statistics.fmean(true),
        "true_improvement_p10_pct": true[len(true) // 10],
        "gain_at_budget_pct": math.expm1(statistics.fmean(s["at_budget"] for s in sims)) * 100,
        "claimed_pct": math.expm1(mean_claimed) * 100,
        "claimed_over_true": mean_claimed / mean_true if mean_true > 0.001 else math.nan,
        "headline_error_pct": math.sqrt(statistics.fmean(e * e for e in errors)) * 100,
        "headline_covered": statistics.fmean(s["covered"] for s in sims),
        "below_start": statistics.fmean(s["true"] < -1e-12 for s in sims),
        "drift_events_per_run": sum(s["drift"] for s in sims) / len(sims),
    }


def main() -> None:
    global EXPERIMENTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated runs per condition")
    parser.add_argument("--experiments", type=int, default=100, help="decisions per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 runs per condition")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a sequential setting"
    )
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    parser.add_argument("--cvs", default=",".join(f"{c:g}" for c in CVS), help="comma-separated")
    parser.add_argument("--streams", default=",".join(STREAMS), help="comma-separated")
    args = parser.parse_args()
    cvs = tuple(float(c) for c in args.cvs.split(","))
    streams = tuple(args.streams.split(","))
    defaults = SequentialPolicy("time", "lower")
    for name, value in (item.split("=", 1) for item in args.set):
        kind = type(getattr(defaults, name))  # KeyError-like AttributeError: no such setting
        OVERRIDES[name] = float(value) if kind is float else int(value)
    policies = tuple(args.policies.split(","))
    runs = 20 if args.quick else args.runs
    EXPERIMENTS = args.experiments
    chunk = max(1, runs // (4 * args.jobs))
    tasks = [
        (p, s, cv, args.seed, first, min(chunk, runs - first))
        for p in policies
        for s in streams
        for cv in cvs
        for first in range(0, runs, chunk)
    ]
    start = time.monotonic()
    sims: dict[tuple, list] = {}
    with ProcessPoolExecutor(
        args.jobs, initializer=_set_globals, initargs=(EXPERIMENTS, dict(OVERRIDES))
    ) as ex:
        shots = [ex.submit(one_shot, p, cv, args.seed, 5 * runs) for p in policies for cv in cvs]
        for result in ex.map(condition, tasks):
            sims.setdefault(result["key"], []).extend(result["sims"])
        one = [f.result() for f in shots]
    results = [
        {"policy": p, "stream": s, "cv": cv, **summarize(sims[(p, s, cv)])}
        for s in streams
        for cv in cvs
        for p in policies
    ]
    print_table(results, runs, args.experiments, time.monotonic() - start)
    print_one_shot(one, 5 * runs)
    if args.json:
        meta = {"runs": runs, "experiments": args.experiments, "seed": args.seed}
        clean = [{k: None if v != v else v for k, v in r.items()} for r in results]  # NaN → null
        data = {**meta, "results": clean, "one_shot": one}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")


def _set_globals(n: int, overrides: dict[str, float]) -> None:
    global EXPERIMENTS
    EXPERIMENTS = n
    OVERRIDES.update(overrides)


def print_table(results: list[dict], runs: int, experiments: int, seconds: float) -> None:
    print(f"{runs} simulated runs × {experiments} experiments per row ({seconds:.0f} s)\n")
    head = (
        "| stream | CV | policy | false-keep | harmful-keep | gains ≥ 3 % lost | runs/decision "
        "| true gain | gain in 5 runs/exp | claimed | claimed/true | headline error | covered "
        "| below start |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        print(
            f"| {r['stream']} | {r['cv'] * 100:.0f} % | {r['policy']} "
            f"| {r['false_keep'] * 100:.1f} % | {_pct(r['harmful_keep'], 1)} "
            f"| {_pct(r['gain3_lost'], 0)} | {r['runs_per_decision']:.2f} "
            f"| {r['true_improvement_pct']:+.1f} % | {r['gain_at_budget_pct']:+.1f} % "
            f"| {r['claimed_pct']:+.1f} % | {_num(r['claimed_over_true'])} "
            f"| {r['headline_error_pct']:.1f} % | {r['headline_covered'] * 100:.0f} % "
            f"| {r['below_start'] * 100:.1f} % |"
        )


def print_one_shot(rows: list[dict[str, Any]], count: int) -> None:
    print(f"\nSingle decisions against a fresh incumbent, {count} per cell: how often kept")
    cells = " | ".join(f"effect {e * 100:+.0f} %" for e in ONE_SHOT_EFFECTS)
    print(f"\n| CV | policy | {cells} | runs/decision |")
    print("|" + "---|" * (len(ONE_SHOT_EFFECTS) + 3))
    for r in rows:
        kept = " | ".join(f"{r[f'keep_at_{e:+.2f}'] * 100:.1f} %" for e in ONE_SHOT_EFFECTS)
        print(f"| {r['cv'] * 100:.0f} % | {r['policy']} | {kept} | {r['runs_per_decision']:.2f} |")


def _pct(x: float, digits: int) -> str:
    return "–" if math.isnan(x) else f"{x * 100:.{digits}f} %"


def _num(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2f}"


if __name__ == "__main__":
    main()
