"""The sequential policy on constructed sample streams: no randomness, no I/O."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.policies.base import ChangeInfo, Decision, Measure
from daemon.policies.registry import make_policy
from daemon.policies.sequential import SequentialPolicy
from daemon.policies.stats import huber, laplace_posterior, noise_scale
from shared.evidence import dump
from shared.programs import parse_program

WOBBLE = (0.0, 0.01, -0.01, 0.005, -0.005, 0.008, -0.008)
"""A deterministic ≈0.7 % noise pattern."""
POOL = [100 * (1 + w) for w in (*WOBBLE, *WOBBLE[1:6])]


def stream(level: float, *extra: tuple[int, float]) -> Callable[[], float]:
    """`level` with the wobble; `extra` puts (index, value) replacements in (outliers)."""
    counter = itertools.count()
    special = dict(extra)

    def nxt() -> float:
        i = next(counter)
        return special.get(i, level * (1 + WOBBLE[i % len(WOBBLE)]))

    return nxt


def drive(
    policy: SequentialPolicy,
    pool: list[float],
    candidate: Callable[[], float],
    incumbent: Callable[[], float] | None = None,
    change: ChangeInfo | None = None,
    extra: Callable[[str], dict[str, float]] | None = None,
) -> tuple[Decision, list[str]]:
    """Run one session; the decision and the sides measured, in order."""
    incumbent = incumbent or stream(100)
    session = policy.begin(pool, change=change)
    sides = []
    while isinstance(step := session.next(), Measure):
        sides.append(step.side)
        value = candidate() if step.side == "candidate" else incumbent()
        session.observe(step.side, {"t": value, **(extra(step.side) if extra else {})})
        assert len(sides) < 100
    return step, sides


def lower(**kw: object) -> SequentialPolicy:
    return SequentialPolicy("t", "lower", **kw)  # type: ignore[arg-type]


def test_clear_win_is_kept_quickly_with_its_evidence() -> None:
    decision, sides = drive(lower(), POOL, stream(90))
    assert decision.status == "keep" and decision.keep
    assert sides[:3] == ["candidate", "incumbent", "candidate"]  # interleaved
    assert len(sides) <= 4
    ev = dump(decision.evidence)
    assert ev["measured_effect"] == pytest.approx(0.10, abs=0.01)
    assert ev["measured_interval"][0] < ev["measured_effect"] < ev["measured_interval"][1]
    # The reported effect is pulled toward 0 a little (the winner's curse), within the interval.
    assert ev["interval"][0] < ev["effect"] < ev["measured_effect"] < ev["interval"][1]
    assert ev["llr"] >= ev["bounds"][1] and ev["bounds"][0] < 0
    lo, hi = ev["measured_interval"]
    assert hi - lo <= 2 * ev["delta"] * 1.05  # a keep waits until the gain is measured to ±δ
    assert ev["delta"] == pytest.approx(0.02, abs=0.001)  # noise (0.7 %) is below min_effect
    assert ev["noise"] == pytest.approx(0.0075, abs=0.003)
    assert ev["runs"] == {
        "candidate": sides.count("candidate"),
        "incumbent": sides.count("incumbent"),
    }
    assert ev["candidate_samples"] == decision.samples
    assert ev["fresh_incumbent_samples"] and ev["incumbent_samples"][: len(POOL)] == POOL
    assert decision.reason.startswith("better by 9.") and "after 2+1 runs" in decision.reason
    assert "SPRT accepted improvement ≥ 2.0 %" in decision.reason
    # The runs that won the selection look better than the truth: they never become the pool.
    assert decision.pool == []
    assert decision.drift is None


def test_clear_loss_is_discarded_at_the_minimum() -> None:
    decision, sides = drive(lower(), POOL, stream(110))
    assert decision.status == "discard"
    assert sides == ["candidate", "incumbent", "candidate"]
    assert decision.evidence.effect < -0.05
    assert "worse by" in decision.reason and "rejected" in decision.reason
    assert decision.pool == (POOL + decision.evidence.fresh_incumbent_samples)[-24:]


def test_close_call_measures_more_and_ends_inconclusive() -> None:
    """1 % better with δ = 2 %: halfway between the hypotheses, so the LLR hovers near 0; without
    the close-call cap it ends at max_runs."""
    decision, sides = drive(lower(close_runs=12), POOL, stream(98.9))
    assert sides.count("candidate") == 12 and sides.count("incumbent") == 3  # C I C C C C I …
    assert decision.status == "discard"
    assert decision.reason.startswith("inconclusive after 12+3 runs: better by 1.0 %")
    assert "improvement ≥ 2.0 % neither accepted nor rejected" in decision.reason


def test_a_promising_close_call_gets_the_close_cap() -> None:
    """Still undecided at max_runs with a measured gain of δ/2 or more: measured on (up to 3 ×
    max_runs) instead of discarded as inconclusive; the small real gain is decided."""
    decision, sides = drive(lower(), POOL, stream(98.9))
    assert 12 < sides.count("candidate") <= 36
    assert decision.keep and "SPRT accepted" in decision.reason
    capped, sides = drive(lower(max_runs=4, close_runs=6), POOL, stream(98.9))
    assert sides.count("candidate") == 6 and capped.reason.startswith("inconclusive after 6+")


def test_one_wild_run_does_not_decide() -> None:
    win, _ = drive(lower(), POOL, stream(90, (1, 300.0)))
    assert win.status == "keep"
    same, _ = drive(lower(), POOL, stream(100, (0, 20.0)))  # a wildly fast candidate run
    assert same.status == "discard"


def test_an_outlier_in_the_pool_is_not_an_improvement() -> None:
    pool = [*POOL[:-1], 400.0]
    decision, _ = drive(lower(), pool, stream(100))
    assert decision.status == "discard"
    assert decision.evidence.noise < 0.02


def test_drift_faster_machine_does_not_make_a_neutral_change_a_keep() -> None:
    """The machine got 15 % faster: the candidate beats the old pool, not the incumbent."""
    decision, sides = drive(lower(), POOL, stream(85), stream(85))
    assert decision.status == "discard"
    assert decision.drift is not None and "better than its pool" in decision.drift
    assert sides.count("incumbent") >= 3
    fresh = decision.evidence.fresh_incumbent_samples
    assert decision.pool == fresh
    assert decision.evidence.incumbent_samples == fresh


def test_drift_slower_machine_refreshes_the_pool() -> None:
    decision, _ = drive(lower(), POOL, stream(112), stream(120))
    assert decision.status == "keep"  # 112 vs the drifted incumbent's 120
    assert decision.drift is not None and "worse than its pool" in decision.drift
    assert decision.pool == []  # a keep: the next session re-measures the new incumbent


def test_identical_values_are_exact() -> None:
    flat = [100.0] * 6
    same, sides = drive(lower(), flat, lambda: 100.0, lambda: 100.0)
    assert same.status == "discard" and len(sides) == 2  # a full pool: one run each decides
    assert same.evidence.noise == 0 and "unchanged" in same.reason
    assert same.evidence.note.startswith("every run") and same.evidence.noise_hides_gains is False
    better, _ = drive(lower(), flat, lambda: 97.0, lambda: 100.0)
    assert better.status == "keep" and better.evidence.effect == pytest.approx(0.03)
    small, _ = drive(lower(), flat, lambda: 99.0, lambda: 100.0)
    assert small.status == "discard"  # 1 % < min_effect
    assert json.loads(json.dumps(dump(better.evidence), allow_nan=False))["llr"] is None  # exact: ∞


def test_noise_sets_the_smallest_effect_and_says_so() -> None:
    noisy = [100 * (1 + 8 * w) for w in (*WOBBLE, *WOBBLE[1:6])]  # ≈ 6 % noise
    decision, _ = drive(lower(), noisy, stream(100))
    ev = dump(decision.evidence)
    assert ev["delta"] == pytest.approx(ev["noise"]) and ev["delta"] > 0.04
    assert ev["note"].startswith("noise ") and "hides gains below" in ev["note"]
    assert ev["noise_hides_gains"] is True


def test_zero_and_negative_metrics_use_raw_values() -> None:
    higher = SequentialPolicy("t", "higher")
    around_zero = [0.0, 0.001, -0.001, 0.0005, -0.0005]
    up, _ = drive(higher, around_zero, stream(0.5), stream(0.0))
    assert up.status == "keep" and up.evidence.scale == "raw"
    assert up.evidence.effect == pytest.approx(0.5, rel=0.1)  # absolute: the location is 0
    assert up.reason.startswith("better by 0.5 (95 % interval +0.49")
    negative = [-5 * (1 + w) for w in WOBBLE]
    better, _ = drive(lower(), negative, stream(-6), stream(-5))
    assert better.status == "keep" and better.evidence.scale == "raw"
    assert better.evidence.effect == pytest.approx(0.2, rel=0.15)
    worse, _ = drive(lower(), negative, stream(-4), stream(-5))
    assert worse.status == "discard"


def test_higher_is_better() -> None:
    higher = SequentialPolicy("t", "higher")
    up, _ = drive(higher, POOL, stream(110))
    assert up.status == "keep" and up.evidence.measured_effect == pytest.approx(0.1, abs=0.01)
    down, _ = drive(higher, POOL, stream(90))
    assert down.status == "discard" and down.evidence.effect < 0


def test_failed_run_is_a_measurement_failure() -> None:
    session = lower().begin(POOL)
    assert session.next() == Measure("candidate")
    session.observe("candidate", {"t": 90.0})
    assert session.next() == Measure("incumbent")
    session.observe("incumbent", None)
    decision = session.next()
    assert isinstance(decision, Decision)
    assert decision.status == "measurement_failure" and "incumbent measurement 1" in decision.reason
    assert decision.samples == [90.0] and decision.pool == POOL


def test_gate_breach_discards_an_improvement() -> None:
    policy = lower(gates={"mem": (None, 10.0)})
    decision, sides = drive(policy, POOL, stream(80), extra=lambda side: {"mem": 12.0})
    assert decision.status == "discard" and "gate mem: 12 > max 10" in decision.reason
    assert decision.evidence.gates == ["gate mem: 12 > max 10"]
    assert len(sides) == 2  # the breach shows in the first run: nothing more is measured


def test_a_clear_loss_is_discarded_after_one_run_but_a_keep_needs_two() -> None:
    loss, sides = drive(lower(), POOL, stream(104))
    assert loss.status == "discard" and sides == ["candidate", "incumbent"]
    assert loss.evidence.runs.candidate == 1 and "SPRT rejected" in loss.reason
    # A wild first run (an outlier?) is not enough: a second one tells.
    wild, sides = drive(lower(), POOL, stream(100, (0, 130.0)))
    assert wild.status == "discard" and sides.count("candidate") >= 2
    win, sides = drive(lower(), POOL, stream(90))
    assert win.status == "keep" and sides.count("candidate") >= 2
    # A thin pool (right after a keep) does not know the noise: no one-run look.
    thin, sides = drive(lower(), POOL[:3], stream(104))
    assert thin.status == "discard" and sides.count("candidate") >= 2


def noisy(level: float) -> Callable[[], float]:
    """`level` with ≈ 6 % noise: the wobble, eight times larger."""
    counter = itertools.count()
    return lambda: level * (1 + 8 * WOBBLE[next(counter) % len(WOBBLE)])


def test_after_a_keep_a_clear_loss_needs_no_full_refill_but_a_keep_does() -> None:
    """After a keep the pool is empty and the noise (≈ δ) asks for 4 fresh incumbent runs before
    a keep; a change clearly worse is discarded as soon as the evidence says so."""
    loss, sides = drive(lower(), [], noisy(140), noisy(100))
    assert loss.status == "discard" and sides.count("incumbent") < 4
    win, sides = drive(lower(), [], noisy(75), noisy(100))
    assert win.status == "keep" and sides.count("incumbent") >= 4


def test_secondary_metrics_are_reported_direction_aware() -> None:
    policy = lower(secondary={"size": "lower", "acc": "higher"})

    def extra(side: str) -> dict[str, float]:
        return {"size": 90.0, "acc": 0.8} if side == "candidate" else {"size": 100.0, "acc": 0.9}

    decision, _ = drive(policy, POOL, stream(90), extra=extra)
    sec = dump(decision.evidence)["secondary"]
    assert sec["size"]["change"] == pytest.approx(0.1) and sec["size"]["incumbent"] == 100.0
    assert sec["acc"]["change"] == pytest.approx((0.8 - 0.9) / 0.9)
    assert sec["acc"]["direction"] == "higher"


def test_simplifications_within_noise_are_kept_only_when_asked() -> None:
    shorter = ChangeInfo(lines_added=3, lines_removed=40)
    kept, _ = drive(lower(keep_simplifications=True), POOL, stream(100.3), change=shorter)
    assert kept.status == "keep" and "simplification" in kept.reason
    plain, _ = drive(lower(), POOL, stream(100.3), change=shorter)
    assert plain.status == "discard"
    longer, _ = drive(
        lower(keep_simplifications=True), POOL, stream(100.3), change=ChangeInfo(40, 3)
    )
    assert longer.status == "discard"
    worse, _ = drive(lower(keep_simplifications=True), POOL, stream(106), change=shorter)
    assert worse.status == "discard"


def test_thin_pool_is_measured_alongside() -> None:
    decision, sides = drive(lower(), [], stream(90))
    assert decision.status == "keep"
    assert sides.count("incumbent") >= 2


def test_robust_statistics() -> None:
    assert noise_scale([[1.0], [2.0]]) == float("inf")
    assert noise_scale([[0.0, 0.0, 0.0]]) == 0
    assert huber([0.0, 0.1, -0.1, 50.0], 0.1) < 0.2  # the wild value is pulled in
    assert huber([1.0, 3.0], 0.1) == 2.0


def test_laplace_posterior_matches_numeric_integration() -> None:
    """Reference values from integrating exp(-(θ-d)²/2se² - √2|θ|/sd) on a 1e-5 grid."""
    mean, lo, hi = laplace_posterior(0.06, 0.024, 0.05)
    assert (mean, lo, hi) == pytest.approx((0.04443, 0.00082, 0.09087), abs=2e-4)
    mean, lo, hi = laplace_posterior(0.5, 0.01, 0.02)  # far out: shifted by se²·√2/sd only
    assert mean == pytest.approx(0.5 - 0.01**2 * 2**0.5 / 0.02)
    assert laplace_posterior(-0.06, 0.024, 0.05)[0] == pytest.approx(-0.04443, abs=2e-4)
    assert laplace_posterior(0.03, 0.0, 0.05) == (0.03, 0.03, 0.03)


def test_make_policy_builds_the_sequential_policy(tmp_path: Path) -> None:
    text = (
        'metric = "t"\ndirection = "higher"\n[decide]\npolicy = "sequential"\nmax_runs = 9\n'
        '[agent]\ncommand = "true"\n'
    )
    config = parse_program(text, source=tmp_path / "program.toml")
    policy = make_policy(config)
    assert isinstance(policy, SequentialPolicy)
    assert policy.name == "sequential" and policy.max_runs == 9 and policy.direction == "higher"
    assert policy.baseline_runs() == 5


def test_a_keep_waits_for_enough_incumbent_runs_behind_it() -> None:
    """Right after a keep (empty pool), at noise ≈ δ, a clear win still needs `keep_reference`
    incumbent runs: a few fresh runs misjudge the noise and the incumbent too often. A quiet
    metric is known from fewer."""
    win, sides = drive(lower(), [], noisy(75), noisy(100))
    assert win.status == "keep" and sides.count("incumbent") >= 6
    assert len(win.evidence.fresh_incumbent_samples) >= 6
    quick, sides = drive(lower(keep_reference=2), [], noisy(75), noisy(100))
    assert quick.status == "keep" and sides.count("incumbent") < 6
    quiet, sides = drive(lower(), [], stream(90))
    assert quiet.status == "keep" and sides.count("incumbent") < 6


def test_noise_far_above_min_effect_asks_for_stronger_evidence() -> None:
    policy = lower()
    assert policy.bounds_for(0.05) == policy.bounds  # δ within 3 × min_effect: α as configured
    lower_bound, upper = policy.bounds_for(0.15)  # 15 % noise: α × 3 · 2 / 15
    assert upper == pytest.approx(math.log(0.7 / (0.05 * 0.4)))
    assert lower_bound == pytest.approx(math.log(0.3 / (1 - 0.02)))
    assert lower(strict_beyond=0).bounds_for(0.15) == policy.bounds
    very_noisy = [100 * (1 + 20 * w) for w in (*WOBBLE, *WOBBLE[1:6])]  # ≈ 15 % noise
    decision, _ = drive(policy, very_noisy, stream(100))
    ev = decision.evidence
    assert ev.delta > 0.06 and ev.bounds.keep == pytest.approx(policy.bounds_for(ev.delta)[1])
    assert ev.bounds.keep > policy.bounds[1]
