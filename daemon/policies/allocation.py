"""Which arm runs the next experiment: pure, no I/O, so a simulation can drive it.

The floor comes first: an unpaused arm with fewer than `min_share × (experiments + 1)` of the
run's experiments is due, and the most starved one runs (ties: declared order). Otherwise
`round_robin` takes the arm with the fewest experiments; `thompson` draws each arm's probability
of a keep from its Beta posterior and divides it by a draw-free estimate of its cost per
experiment (shrunk towards the run's mean), so the best *keeps per dollar* draw wins. While no
arm has cost anything (command arms), the probability alone decides.
"""

from __future__ import annotations

import random

from shared.schema import ArmsPolicy, ArmStats


def choose(stats: list[ArmStats], policy: ArmsPolicy, rng: random.Random) -> str | None:
    """The id of the arm to run next; None when every arm is paused."""
    active = [a for a in stats if not a.paused]
    if not active:
        return None
    total = sum(a.experiments for a in stats)
    floor = policy.min_share * (total + 1)
    due = [a for a in active if a.experiments < floor]
    if due:
        return _fewest(due).id
    if policy.allocation == "round_robin":
        return _fewest(active).id
    return _thompson(active, stats, rng)


def _fewest(arms: list[ArmStats]) -> ArmStats:
    """The arm with the fewest experiments; `min` keeps the first of equals (declared order)."""
    return min(arms, key=lambda a: a.experiments)


def _thompson(active: list[ArmStats], stats: list[ArmStats], rng: random.Random) -> str:
    total = sum(a.experiments for a in stats)
    spent = sum(a.cost_usd for a in stats)
    priced = spent > 0
    prior = spent / total if priced and total else 1.0
    best_id, best_score = active[0].id, float("-inf")
    for arm in active:
        keeps = min(arm.keeps, arm.experiments)
        p = rng.betavariate(1 + keeps, 1 + arm.experiments - keeps)
        score = p / cost_per_experiment(arm, prior) if priced else p
        if score > best_score:
            best_id, best_score = arm.id, score
    return best_id


def cost_per_experiment(arm: ArmStats, prior: float) -> float:
    """The arm's mean cost per experiment with one pseudo-experiment at `prior` (the run's mean):
    an arm with no experiments yet costs the mean, never zero."""
    return (arm.cost_usd + prior) / (arm.experiments + 1)


def rng_for(seed: int | str, experiment: int) -> random.Random:
    """The draws for one experiment, from the run's seed and its number alone: a resumed daemon
    makes the same choice for the same statistics, however many daemons the run had."""
    return random.Random(f"{seed}/{experiment}")
