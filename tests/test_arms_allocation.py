"""Which arm runs next (daemon/policies/allocation.py): the rules, then a simulated world.

The world has a good arm (a keep with probability 0.4), a mediocre one (0.15) and a useless one
(0.0), each $0.10 an experiment. Every simulation is seeded (the arm's draws as the daemon makes
them, `rng_for(seed, n)`; the world's outcomes from their own seed), so the numbers asserted here
are the same on every machine: nothing can flake. benchmarks/arms_bench.py prints the same
simulation over many more seeds.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from daemon.policies.allocation import choose, cost_per_experiment, rng_for
from shared.schema import ArmsPolicy, ArmStats

WORLD = {"good": (0.4, 0.10), "mediocre": (0.15, 0.10), "useless": (0.0, 0.10)}
SEEDS = range(20)


def arm(id: str, experiments: int = 0, keeps: int = 0, cost: float = 0.0, **kw: Any) -> ArmStats:
    return ArmStats(id=id, experiments=experiments, keeps=keeps, cost_usd=cost, **kw)


def policy(allocation: str = "thompson", min_share: float = 0.1) -> ArmsPolicy:
    return ArmsPolicy(allocation=allocation, min_share=min_share)  # type: ignore[arg-type]


def simulate(
    seed: int,
    allocation: str = "thompson",
    min_share: float = 0.1,
    n: int = 100,
    world: dict[str, tuple[float, float]] = WORLD,
) -> tuple[dict[str, int], float]:
    """Experiments per arm after `n`, and the least any arm ever had above its floor
    (`experiments − (min_share × i − 1)` after experiment i: negative means it starved)."""
    stats = [ArmStats(id=name) for name in world]
    outcomes = random.Random(f"world/{seed}")
    margin = float("inf")
    for i in range(1, n + 1):
        chosen = choose(stats, policy(allocation, min_share), rng_for(seed, i))
        got = next(a for a in stats if a.id == chosen)
        p, cost = world[got.id]
        got.experiments += 1
        got.cost_usd += cost
        got.keeps += outcomes.random() < p
        margin = min(margin, *(a.experiments - (min_share * i - 1) for a in stats))
    return {a.id: a.experiments for a in stats}, margin


# --------------------------------------------------------------------------- the rules


def test_every_arm_paused_means_none() -> None:
    stats = [arm("a", paused="quota exhausted"), arm("b", paused="not found")]
    assert choose(stats, policy(), random.Random(1)) is None
    assert choose([], policy(), random.Random(1)) is None


@pytest.mark.parametrize("allocation", ["round_robin", "thompson"])
def test_a_paused_arm_never_runs_even_when_starved(allocation: str) -> None:
    stats = [arm("a", paused="auth failed"), arm("b", 10, 5), arm("c", 10, 0)]
    for seed in range(50):
        assert choose(stats, policy(allocation), random.Random(seed)) in ("b", "c")


def test_the_floor_comes_first_and_serves_the_most_starved() -> None:
    # 40 experiments: the floor is 0.1 × 41 = 4.1. b (3) and c (1) are due; c is more starved.
    stats = [arm("a", 36, 30, 3.6), arm("b", 3, 0, 0.3), arm("c", 1, 0, 0.1)]
    for seed in range(50):
        assert choose(stats, policy(), random.Random(seed)) == "c"
    # Equally starved: declared order.
    stats = [arm("a", 38, 30), arm("b", 1), arm("c", 1)]
    assert choose(stats, policy(), random.Random(0)) == "b"


def test_no_floor_with_min_share_zero() -> None:
    stats = [arm("a", 50, 40), arm("b", 0)]
    picks = [choose(stats, policy(min_share=0.0), random.Random(s)) for s in range(200)]
    assert picks.count("a") > 150  # b is drawn from Beta(1, 1) and sometimes wins; a mostly


def test_round_robin_takes_the_fewest_then_declared_order() -> None:
    stats = [arm("a", 2), arm("b", 1), arm("c", 1)]
    assert choose(stats, policy("round_robin", 0.0), random.Random(0)) == "b"
    stats = [arm("a", 2, 2), arm("b", 2), arm("c", 2)]
    assert choose(stats, policy("round_robin", 0.0), random.Random(0)) == "a"


def test_thompson_is_deterministic_given_its_rng() -> None:
    stats = [arm("a", 10, 3, 1.0), arm("b", 10, 2, 0.5), arm("c", 10, 4, 2.0)]
    for seed in range(20):
        picks = {choose(stats, policy(), rng_for(seed, 7)) for _ in range(5)}
        assert len(picks) == 1
    assert rng_for("run-1", 3).random() == rng_for("run-1", 3).random()
    assert rng_for("run-1", 3).random() != rng_for("run-1", 4).random()
    assert rng_for(5, 3).random() != rng_for("run-1", 3).random()


def test_thompson_counts_keeps_per_dollar() -> None:
    """Equal keep rates: the arm ten times cheaper wins almost every draw."""
    stats = [arm("dear", 20, 6, 20.0), arm("cheap", 20, 6, 2.0)]
    picks = [choose(stats, policy(), random.Random(s)) for s in range(200)]
    assert picks.count("cheap") > 180
    # Without any cost yet (command arms), the keep rate alone decides.
    stats = [arm("rare", 20, 1), arm("often", 20, 10)]
    picks = [choose(stats, policy(), random.Random(s)) for s in range(200)]
    assert picks.count("often") > 190


def test_cost_per_experiment_is_shrunk_towards_the_runs_mean() -> None:
    assert cost_per_experiment(arm("new"), 0.5) == 0.5  # no experiments: the run's mean
    assert cost_per_experiment(arm("free", 9, cost=0.0), 0.5) == pytest.approx(0.05)  # never 0
    assert cost_per_experiment(arm("dear", 9, cost=9.0), 1.0) == pytest.approx(1.0)


# --------------------------------------------------------------------------- the simulated world


def test_thompson_gives_the_good_arm_most_of_100_experiments() -> None:
    runs = [simulate(seed) for seed in SEEDS]
    shares = [counts["good"] / 100 for counts, _ in runs]
    # Seeds 0–19: mean 0.74, 19 of 20 at ≥ 0.60; in the worst (seed 16: 30 good, 59 mediocre)
    # the mediocre arm's early luck held the lead. Over 1,000 seeds: mean 0.73, 93 % at ≥ 0.60.
    assert statistics.mean(shares) >= 0.70, shares
    assert sum(s >= 0.60 for s in shares) >= 18, shares
    assert min(shares) >= 0.10, shares
    assert all(margin >= 0 for _, margin in runs), [m for _, m in runs]


@pytest.mark.parametrize("min_share", [0.05, 0.1, 0.2, 1 / 3])
def test_no_arm_ever_falls_below_the_floor(min_share: float) -> None:
    for seed in range(10):
        counts, margin = simulate(seed, min_share=min_share)
        assert margin >= 0, (seed, counts)
        assert sum(counts.values()) == 100


def test_round_robin_splits_evenly() -> None:
    for seed in range(5):
        counts, _ = simulate(seed, "round_robin", min_share=0.0)
        assert sorted(counts.values()) == [33, 33, 34], counts
        assert counts["good"] == 34  # the first in declared order takes the odd one
    for n in range(1, 31):
        counts, _ = simulate(0, "round_robin", n=n)
        assert max(counts.values()) - min(counts.values()) <= 1, (n, counts)
