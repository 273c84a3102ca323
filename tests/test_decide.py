"""The decision policy as a pure object: driven here by a simulation, with no I/O at all."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from daemon.policies import driver
from daemon.policies.base import (
    Decision,
    Measure,
    Side,
    gate_breaches,
    medians,
    relative_effect,
)
from daemon.policies.fixed import FixedRepeatsPolicy
from daemon.policies.registry import make_policy
from shared.programs import parse_program


def drive(
    policy: FixedRepeatsPolicy,
    incumbent: list[float],
    candidate: list[dict[str, float] | None],
) -> tuple[Decision, int]:
    """Run one session, feeding `candidate` measurements in order; the decision and runs used."""
    session = policy.begin(incumbent)
    feed = iter(candidate)
    runs = 0
    while isinstance(step := session.next(), Measure):
        assert step.side == "candidate"
        runs += 1
        session.observe(step.side, next(feed))
    return step, runs


def scores(*values: float) -> list[dict[str, float] | None]:
    return [{"score": v} for v in values]


def lower(**kw: object) -> FixedRepeatsPolicy:
    return FixedRepeatsPolicy(metric="score", direction="lower", **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- thresholds


def test_repeats_decide_how_many_runs() -> None:
    policy = lower(repeats=3)
    assert policy.baseline_runs() == 3
    decision, runs = drive(policy, [100, 100, 100], scores(90, 90, 90))
    assert runs == 3
    assert decision.samples == [90, 90, 90]


@pytest.mark.parametrize(
    ("candidate", "status"),
    [
        (97.0, "keep"),  # 3 % better
        (98.0, "discard"),  # exactly the threshold is not enough
        (98.5, "discard"),  # better, but within noise
        (100.0, "discard"),  # no change
        (103.0, "discard"),  # worse
    ],
)
def test_keep_needs_more_than_min_effect(candidate: float, status: str) -> None:
    decision, _ = drive(lower(min_effect=0.02, repeats=1), [100.0], scores(candidate))
    assert decision.status == status
    assert decision.keep is (status == "keep")
    assert decision.metric == candidate
    assert decision.evidence.incumbent_median == 100.0
    assert decision.evidence.threshold == 0.02


def test_reasons_say_why() -> None:
    """The reason shows both medians, the change and the threshold (the wording may evolve)."""
    keep, _ = drive(lower(repeats=1), [100.0], scores(90))
    assert "90" in keep.reason and "100" in keep.reason and "10.00%" in keep.reason
    assert "better" in keep.reason
    worse, _ = drive(lower(repeats=1), [100.0], scores(110))
    assert "worse" in worse.reason and "2%" in worse.reason
    same, _ = drive(lower(repeats=1), [100.0], scores(100))
    assert "0.00%" in same.reason and "2%" in same.reason


def test_medians_not_means() -> None:
    """One wild run does not make a keep: the median of the candidate runs is compared."""
    decision, _ = drive(lower(repeats=3), [100, 101, 99], scores(10, 99, 100))
    assert decision.metric == 99 and decision.status == "discard"
    decision, _ = drive(lower(repeats=3), [100, 101, 99], scores(90, 500, 91))
    assert decision.metric == 91 and decision.status == "keep"


def test_direction_higher() -> None:
    policy = FixedRepeatsPolicy(metric="acc", direction="higher", min_effect=0.05, repeats=1)
    up, _ = drive(policy, [0.80], [{"acc": 0.90}])
    assert up.status == "keep" and up.evidence.effect == pytest.approx(0.125)
    down, _ = drive(policy, [0.80], [{"acc": 0.70}])
    assert down.status == "discard" and down.evidence.effect < 0
    small, _ = drive(policy, [0.80], [{"acc": 0.82}])
    assert small.status == "discard"


def test_zero_baseline_uses_an_absolute_effect() -> None:
    policy = lower(min_effect=0.02, repeats=1)
    keep, _ = drive(policy, [0.0], scores(-0.5))
    assert keep.status == "keep"
    assert keep.evidence.relative is False and keep.evidence.effect == 0.5
    assert "%" not in keep.reason
    tiny, _ = drive(policy, [0.0], scores(-0.01))
    assert tiny.status == "discard"
    worse, _ = drive(policy, [0.0], scores(0.01))
    assert worse.status == "discard"


def test_negative_metric_is_relative_to_its_magnitude() -> None:
    keep, _ = drive(lower(repeats=1), [-10.0], scores(-11))
    assert keep.status == "keep" and keep.evidence.effect == pytest.approx(0.1)
    worse, _ = drive(lower(repeats=1), [-10.0], scores(-9))
    assert worse.status == "discard"


def test_relative_effect() -> None:
    assert relative_effect(90, 100, "lower") == pytest.approx(0.1)
    assert relative_effect(110, 100, "higher") == pytest.approx(0.1)
    assert relative_effect(110, 100, "lower") == pytest.approx(-0.1)
    assert relative_effect(3, 0, "higher") == 3


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "bad",
    [None, {"score": math.nan}, {"score": math.inf}, {"other": 1.0}],
    ids=["failed", "nan", "inf", "missing"],
)
def test_a_failed_run_ends_the_session_as_measurement_failure(
    bad: dict[str, float] | None,
) -> None:
    decision, runs = drive(lower(repeats=3), [100.0], [{"score": 90.0}, bad, {"score": 90.0}])
    assert runs == 2  # it stops asking after the failure
    assert decision.status == "measurement_failure" and not decision.keep
    assert decision.metric is None
    assert decision.samples == [90.0]
    assert "2/3" in decision.reason


def test_fixed_policy_measures_the_incumbent_only_when_its_pool_is_empty() -> None:
    """With a pool, only the candidate; after a keep (an empty pool) the incumbent `repeats` times
    too, interleaved, and those fresh runs, not the kept candidate's lucky ones, are the pool."""
    policy = lower(repeats=3)
    decision, runs = drive(policy, [4.0, 4.0, 4.0], scores(3.0, 3.0, 3.0))  # candidate only
    assert runs == 3 and decision.keep and decision.pool == []
    session = policy.begin([])
    asked = []
    incumbent = iter([4.1, 3.9, 4.0])
    candidate = iter([3.5, 3.6, 3.4])
    while isinstance(step := session.next(), Measure):
        asked.append(step.side)
        value = next(candidate if step.side == "candidate" else incumbent)
        session.observe(step.side, {"score": value})
    assert asked == ["candidate", "incumbent"] * 3
    assert step.keep and step.evidence.incumbent_median == 4.0
    assert step.evidence.fresh_incumbent_samples == [4.1, 3.9, 4.0]
    discard, _ = drive(policy, [4.0, 4.0], scores(4.0, 4.0, 4.0))
    assert not discard.keep and discard.pool == [4.0, 4.0]  # a discard leaves the pool


# --------------------------------------------------------------------------- gates


def test_gate_breach_discards_an_improvement() -> None:
    policy = lower(repeats=1, gates={"score": (None, 2.0)})
    decision, _ = drive(policy, [4.0], scores(3))
    assert decision.status == "discard"
    assert "gate score: 3 > max 2" in decision.reason
    assert decision.evidence.gates == ["gate score: 3 > max 2"]
    ok, _ = drive(policy, [4.0], scores(1.5))
    assert ok.status == "keep" and ok.evidence.gates == []


def test_gates_on_other_fields_use_the_median_of_the_runs() -> None:
    policy = lower(repeats=3, gates={"tests_passed": (10.0, None)})
    runs = [{"score": 1.0, "tests_passed": v} for v in (12.0, 9.0, 8.0)]
    decision, _ = drive(policy, [2.0], runs)  # median 9 < 10, despite one good run
    assert decision.status == "discard" and "tests_passed: 9 < min 10" in decision.reason
    assert decision.metrics == {"score": 1.0, "tests_passed": 9.0}


def test_gate_breaches() -> None:
    gates = {"a": (0.0, 1.0), "b": (None, 5.0), "c": (1.0, None)}
    assert gate_breaches(gates, {"a": 0.5, "b": 5.0, "c": 1.0}) == []
    assert gate_breaches(gates, {"a": -1.0, "b": 6.0, "c": math.nan}) == [
        "gate a: -1 < min 0",
        "gate b: 6 > max 5",
        "gate c: not reported",
    ]


def test_medians_skip_missing_and_non_finite_values() -> None:
    assert medians([]) == {}
    assert medians([{"a": 1.0, "b": math.nan}, {"a": 3.0}, {"a": 2.0, "b": 4.0}]) == {
        "a": 2.0,
        "b": 4.0,
    }


# --------------------------------------------------------------------------- from program.toml


def test_make_policy_from_program_toml() -> None:
    config = parse_program(
        """
        metric = "ms"
        direction = "lower"
        [decide]
        policy = "fixed"
        repeats = 5
        min_effect = 0.1
        [gates]
        errors = {max = 0}
        [agent]
        command = "./a.sh"
        """,
        source=Path("program.toml"),
    )
    policy = make_policy(config)
    assert isinstance(policy, FixedRepeatsPolicy)
    assert (policy.metric, policy.direction, policy.repeats, policy.min_effect) == (
        "ms",
        "lower",
        5,
        0.1,
    )
    assert policy.gates == {"errors": (None, 0.0)}
    decision, runs = drive(policy, [100.0], [{"ms": 80.0, "errors": 0.0}] * 5)
    assert runs == 5 and decision.status == "keep"


def test_the_policy_is_deterministic() -> None:
    policy = lower(repeats=3)
    first = drive(policy, [100, 100, 100], scores(95, 97, 96))
    second = drive(policy, [100, 100, 100], scores(95, 97, 96))
    assert first == second


async def test_the_driver_measures_what_the_session_asks_until_it_decides() -> None:
    policy = FixedRepeatsPolicy(metric="score", direction="lower", repeats=3)
    asked: list[str] = []

    async def measure(side: Side) -> dict[str, float] | None:
        asked.append(side)
        return {"score": 90.0}

    decision = await driver.drive(policy.begin([100.0]), measure)
    assert decision.status == "keep" and asked == ["candidate"] * 3


async def test_the_driver_measures_nothing_after_a_failure() -> None:
    policy = FixedRepeatsPolicy(metric="score", direction="lower", repeats=3)
    asked: list[str] = []

    async def measure(side: Side) -> dict[str, float] | None:
        asked.append(side)
        return None

    decision = await driver.drive(policy.begin([100.0]), measure)
    assert decision.status == "measurement_failure" and asked == ["candidate"]
