"""How few runs per decision could any sequential test need on the decisions benchmark's stream?

An idealised lower bound for `benchmarks/decisions.py`'s goal "gains ≥ 3 % lost ≤ 25 % with false
keeps ≤ 2 %": Wald's SPRT with the noise known exactly, normal noise, no drift, no outliers, no
pool to refill after a drift, and an incumbent known from `n_i` runs that are paid once per keep
(after a keep the incumbent must be measured afresh). The stream is the benchmark's mixed one
(half neutral, a third harmful, a sixth helpful, |effect| uniform in 1–6 %) at 5 % noise. For each
`n_i` it searches the SPRT's settings (θ₁, α, β; a cap of 40 runs) for the cheapest that meets
both goals, counting candidate runs plus `n_i` × keeps per decision.

    python benchmarks/decision_bound.py [--trials 3000] [--seed 1] [--cv 0.05]

Every advantage the real policy lacks is given here, so what this finds is a floor: if it is
above 6 runs per decision, no test of this kind meets both goals within 6 on this stream.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass

SHARES = {"neutral": 1 / 2, "harmful": 1 / 3, "gain ≥ 3 %": 1 / 10, "gain < 3 %": 1 / 15}
"""The mixed stream: helpful changes (a sixth) have |effect| uniform in 1–6 %, so 3/5 of them
are gains of 3 % or more."""
CAP = 40


@dataclass(frozen=True)
class Setting:
    theta1: float
    alpha: float
    beta: float


@dataclass(frozen=True)
class Outcome:
    runs: float
    """Candidate runs per decision, over the stream."""
    keeps: float
    """Keeps per decision, over the stream."""
    false_keeps: float
    """Kept among changes with effect ≤ 0."""
    lost: float
    """Discarded among gains ≥ 3 %."""


def effect(kind: str, rng: random.Random) -> float:
    if kind == "neutral":
        return 0.0
    if kind == "harmful":
        return -rng.uniform(0.01, 0.06)
    if kind == "gain ≥ 3 %":
        return rng.uniform(0.03, 0.06)
    return rng.uniform(0.01, 0.03)


def simulate(s: Setting, n_i: int, sigma: float, trials: int, seed: int) -> Outcome:
    rng = random.Random(seed)
    low, high = math.log(s.beta / (1 - s.alpha)), math.log((1 - s.beta) / s.alpha)
    kept: dict[str, float] = {}
    runs: dict[str, float] = {}
    for kind in SHARES:
        keeps = total = 0
        for _ in range(trials):
            theta = effect(kind, rng)
            incumbent = rng.gauss(0.0, sigma / math.sqrt(n_i))
            acc = 0.0
            n = 0
            keep = False
            while True:
                n += 1
                acc += rng.gauss(theta, sigma)
                d = acc / n - incumbent
                var = sigma * sigma * (1 / n + 1 / n_i)
                llr = s.theta1 / var * (d - s.theta1 / 2)
                if n >= 2 and llr >= high:
                    keep = True
                    break
                if llr <= low or n >= CAP:
                    break
            keeps += keep
            total += n
        kept[kind], runs[kind] = keeps / trials, total / trials
    not_better = SHARES["neutral"] + SHARES["harmful"]
    return Outcome(
        runs=sum(runs[k] * w for k, w in SHARES.items()),
        keeps=sum(kept[k] * w for k, w in SHARES.items()),
        false_keeps=(kept["neutral"] * SHARES["neutral"] + kept["harmful"] * SHARES["harmful"])
        / not_better,
        lost=1 - kept["gain ≥ 3 %"],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3000, help="decisions per kind of change")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cv", type=float, default=0.05)
    args = ap.parse_args()
    print(f"idealised SPRT, CV {args.cv:.0%}, {args.trials} decisions per kind of change")
    print("| incumbent runs n_i | cheapest runs/decision | candidate runs | keeps/decision "
          "| θ₁ | α | β | false keeps | gains ≥ 3 % lost |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for n_i in (8, 12, 16, 24, 32, 48):
        best: tuple[float, Setting, Outcome] | None = None
        for theta1 in (0.03, 0.035, 0.04, 0.045, 0.05, 0.055):
            for alpha in (0.02, 0.03, 0.05):
                for beta in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
                    s = Setting(theta1, alpha, beta)
                    o = simulate(s, n_i, args.cv, args.trials, args.seed)
                    if o.lost <= 0.25 and o.false_keeps <= 0.02:
                        cost = o.runs + o.keeps * n_i
                        if best is None or cost < best[0]:
                            best = (cost, s, o)
        if best is None:
            print(f"| {n_i} | none meets both goals | | | | | | | |")
            continue
        cost, s, o = best
        print(
            f"| {n_i} | {cost:.2f} | {o.runs:.2f} | {o.keeps:.3f} | {s.theta1:g} | {s.alpha:g} "
            f"| {s.beta:g} | {o.false_keeps:.1%} | {o.lost:.0%} |"
        )


if __name__ == "__main__":
    main()
