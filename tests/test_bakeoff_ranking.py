"""The ranking: its statistics against known values, the order and its tie-breaks, and the winner
on decisive, undecided and partial matrices (pure: no files)."""

from __future__ import annotations

import msgspec
import pytest

from shared.bakeoffs.analysis import cause, error_groups, task_matrix
from shared.bakeoffs.ranking import Comparison, rank
from shared.bakeoffs.schema import AttemptRecord, CriterionResult
from shared.bakeoffs.stats import more_tasks, sign_test, wilson
from tests import bakeoff_fakes as bf


def matrix(results: dict[str, list[str]], **kwargs: object) -> list[AttemptRecord]:
    """Per variant, one status per task (t000, t001, …); '-' = not reached yet."""
    out = []
    for variant, statuses in results.items():
        for i, status in enumerate(statuses):
            if status != "-":
                out.append(bf.record(f"t{i:03d}", variant, status, **kwargs))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("passed", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval_known_values(passed: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(passed, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_without_attempts_is_the_whole_range() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("wins", "losses", "p"),
    [(9, 1, 22 / 1024), (8, 2, 112 / 1024), (5, 5, 1.0), (1, 9, 22 / 1024), (10, 0, 2 / 1024)],
)
def test_sign_test_known_values(wins: int, losses: int, p: float) -> None:
    assert sign_test(wins, losses) == pytest.approx(p, rel=1e-12)


def test_sign_test_without_discordant_tasks() -> None:
    assert sign_test(0, 0) == 1.0


@pytest.mark.parametrize(("wins", "losses"), [(600, 501), (1100, 900), (560, 540), (1500, 1000)])
def test_sign_test_on_many_tasks_matches_exact_arithmetic(wins: int, losses: int) -> None:
    import math

    n, low = wins + losses, min(wins, losses)
    exact = min(1.0, 2 * sum(math.comb(n, i) for i in range(low + 1)) / 2**n)
    assert sign_test(wins, losses) == pytest.approx(exact, rel=1e-9)


def test_more_tasks_scales_the_smallest_significant_split() -> None:
    # 2–0 over 20 tasks: 6–0 is the first split of all wins with p < 0.05 (2/64), and at one
    # task in ten differing that takes 60 tasks, 40 more than now.
    assert more_tasks(20, 2, 0) == 40
    assert more_tasks(20, 0, 2) == 40  # the same evidence whichever side leads
    assert more_tasks(20, 5, 5) is None  # an exact split is never settled
    assert more_tasks(20, 0, 0) is None  # nor are tasks on which they never differ
    assert more_tasks(20, 10, 0) is None  # already significant
    # A 7–3 share: 20–8 over 28 is the first such split with p < 0.05 (19–8 is not), so 18 more.
    assert more_tasks(10, 7, 3) == 18
    assert sign_test(20, 8) < 0.05 <= sign_test(19, 8)


# --------------------------------------------------------------------------- the winner


def test_decisive_matrix_names_a_significant_winner() -> None:
    spec = bf.spec(20, ("half", "all"))
    records = matrix({"all": ["passed"] * 20, "half": ["passed", "failed"] * 10}, patch_files=["x"])
    r = rank(spec, records)
    assert [row.variant for row in r.ranking] == ["all", "half"]
    assert [row.rank for row in r.ranking] == [1, 2]
    top = r.ranking[0]
    assert (top.passed, top.attempts, top.success_rate, top.score) == (20, 20, 1.0, 1.0)
    assert top.interval == [pytest.approx(0.8389, abs=1e-4), 1.0]
    assert r.winner.variant == "all" and r.winner.significant
    c = r.comparison
    assert c is not None
    assert (c.a, c.b, c.tasks, c.wins_a, c.wins_b, c.ties) == ("all", "half", 20, 10, 0, 10)
    assert c.p_value == pytest.approx(2 / 1024)
    assert c.more_tasks is None
    assert "sign test p = 0.002 < 0.05" in r.winner.reason
    assert r.why_first == "all ranks above half by score (1.00 vs 0.50)"


def test_undecided_matrix_says_how_many_more_tasks() -> None:
    spec = bf.spec(20, ("a", "b"))
    a = ["passed"] * 12 + ["failed"] * 8
    b = ["passed"] * 10 + ["failed"] * 10
    r = rank(spec, matrix({"a": a, "b": b}, patch_files=["x"]))
    assert [row.variant for row in r.ranking] == ["a", "b"]
    assert r.winner.variant is None and not r.winner.significant
    c = r.comparison
    assert c is not None and (c.wins_a, c.wins_b, c.ties) == (2, 0, 18)
    assert c.p_value == pytest.approx(0.5)
    assert c.more_tasks == 40
    assert r.winner.reason == (
        "no clear winner: a and b differ on 2 of 20 tasks (2–0, p = 0.5); "
        "about 40 more tasks would settle it if the difference held"
    )


def test_an_even_split_is_never_settled() -> None:
    spec = bf.spec(10, ("a", "b"))
    a = ["passed"] * 5 + ["failed"] * 5
    b = ["failed"] * 5 + ["passed"] * 5
    r = rank(spec, matrix({"a": a, "b": b}, patch_files=["x"]))
    assert r.winner.variant is None
    assert r.comparison is not None and r.comparison.more_tasks is None
    assert "not settled by more tasks" in r.winner.reason


def test_identical_variants_never_differ() -> None:
    spec = bf.spec(4, ("a", "b"))
    r = rank(spec, matrix({"a": ["passed"] * 4, "b": ["passed"] * 4}))
    assert r.winner.variant is None
    assert "equally well on all 4 tasks" in r.winner.reason
    assert r.comparison is not None and r.comparison.more_tasks is None


def test_one_variant_has_no_winner() -> None:
    r = rank(bf.spec(3, ("solo",)), matrix({"solo": ["passed"] * 3}))
    assert [row.variant for row in r.ranking] == ["solo"]
    assert r.winner.variant is None and r.comparison is None
    assert "1 variant" in r.winner.reason


def test_the_runner_up_better_on_shared_tasks_blocks_the_winner() -> None:
    """On a partial matrix the first overall can lose every task both reached."""
    spec = bf.spec(60, ("a", "b"))
    a = ["failed"] * 6 + ["passed"] * 24 + ["-"] * 30
    b = ["passed"] * 6 + ["-"] * 24 + ["failed"] * 30
    r = rank(spec, matrix({"a": a, "b": b}, patch_files=["x"]))
    assert r.ranking[0].variant == "a"
    c = r.comparison
    assert c is not None and (c.tasks, c.wins_a, c.wins_b) == (6, 0, 6)
    assert c.p_value < 0.05
    assert r.winner.variant is None and not r.winner.significant
    assert "b is better on 6 of the 6" in r.winner.reason


def test_comparison_uses_only_tasks_both_reached() -> None:
    spec = bf.spec(10, ("a", "b"))
    r = rank(spec, matrix({"a": ["passed"] * 10, "b": ["failed"] * 3 + ["-"] * 7}))
    c = r.comparison
    assert c is not None and (c.tasks, c.wins_a, c.wins_b) == (3, 3, 0)
    assert r.ranking[0].attempts == 10 and r.ranking[1].attempts == 3
    assert "no clear winner" in r.winner.reason


def test_no_task_in_common_yet() -> None:
    spec = bf.spec(4, ("a", "b"))
    r = rank(spec, matrix({"a": ["passed", "passed"], "b": ["-", "-", "failed"]}))
    assert r.comparison is not None and r.comparison.tasks == 0
    assert "no finished task in common" in r.winner.reason


# --------------------------------------------------------------------------- the order


def test_ties_broken_by_cost_then_duration_then_id() -> None:
    spec = bf.spec(2, ("zeta", "alpha", "cheap", "quick"))
    records = []
    for v, cost, duration in [
        ("zeta", 0.05, 5.0),
        ("alpha", 0.05, 5.0),
        ("cheap", 0.01, 9.0),
        ("quick", 0.05, 1.0),
    ]:
        for t in ("t000", "t001"):
            records.append(bf.record(t, v, "passed", cost=cost, duration=duration))
    r = rank(spec, records)
    assert [row.variant for row in r.ranking] == ["cheap", "quick", "alpha", "zeta"]
    assert r.why_first == "cheap ranks above quick by cost per success ($0.0100 vs $0.0500)"
    assert rank(spec, list(reversed(records))).ranking == r.ranking  # stable: order-free


def test_errors_rank_below_failures_at_equal_score() -> None:
    spec = bf.spec(2, ("erring", "failing", "timing"))
    records = [
        bf.record("t000", "erring", "passed"),
        bf.record("t001", "erring", "error", error="exit 1"),
        bf.record("t000", "failing", "passed"),
        bf.record("t001", "failing", "failed"),
        bf.record("t000", "timing", "passed", cost=0.0001, duration=0.1),
        bf.record("t001", "timing", "timeout"),
    ]
    r = rank(spec, records)
    assert [row.score for row in r.ranking] == [0.5, 0.5, 0.5]
    assert r.ranking[0].variant == "failing"  # cheaper and quicker "timing" still ranks below
    assert {row.variant for row in r.ranking[1:]} == {"erring", "timing"}
    assert "fewer errors and timeouts (0 vs 1)" in r.why_first


def test_a_failure_with_partial_credit_outranks_an_error() -> None:
    half = [
        CriterionResult(type="command", target="true", passed=True),
        CriterionResult(type="command", target="false", passed=False),
    ]
    spec = bf.spec(1, ("err", "fail"))
    records = [
        bf.record("t000", "err", "error", error="boom"),
        bf.record("t000", "fail", "failed", criteria=half, patch_files=["x"]),
    ]
    r = rank(spec, records)
    assert [(row.variant, row.score) for row in r.ranking] == [("fail", 0.5), ("err", 0.0)]


def test_replays_cancelled_and_unknown_ids_are_not_ranked() -> None:
    spec = bf.spec(2, ("a", "b"))
    records = [
        bf.record("t000", "a", "passed"),
        bf.record("t001", "a", "cancelled"),
        bf.record("t000", "b", "failed"),
        bf.record("t000", "b", "passed", attempt=2, replay_of="t000/a/1"),
        bf.record("t000", "ghost", "passed"),
        bf.record("t999", "a", "failed"),
    ]
    rows = {row.variant: row for row in rank(spec, records).ranking}
    assert set(rows) == {"a", "b"}
    assert (rows["a"].attempts, rows["a"].passed) == (1, 1)
    assert (rows["b"].attempts, rows["b"].passed) == (1, 0)


def test_unmarked_manual_attempts_are_pending_not_failures() -> None:
    manual = [CriterionResult(type="manual", target="Is it idiomatic?", passed=None)]
    mixed = [
        CriterionResult(type="test_pass", target="pytest", passed=True),
        CriterionResult(type="manual", target="Is it idiomatic?", passed=None),
    ]
    spec = bf.spec(3, ("a", "b"))
    records = [
        bf.record("t000", "a", "failed", criteria=manual),
        bf.record("t001", "a", "passed", criteria=mixed),
        bf.record("t000", "b", "passed"),
    ]
    rows = {row.variant: row for row in rank(spec, records).ranking}
    a = rows["a"]
    assert (a.attempts, a.passed, a.pending, a.unmarked, a.score) == (1, 1, 1, 2, 1.0)
    assert a.success_rate == 1.0
    cells = task_matrix(spec, records)
    assert cells[0].results["a"] == ["pending"] and cells[1].results["a"] == ["passed"]
    assert cells[2].results == {"a": [None], "b": [None]}


def test_variants_without_attempts_rank_last() -> None:
    spec = bf.spec(2, ("idle", "busy"))
    r = rank(spec, [bf.record("t000", "busy", "failed")])
    idle = r.ranking[1]
    assert (idle.variant, idle.attempts, idle.success_rate, idle.score) == ("idle", 0, None, None)
    assert idle.interval == [0.0, 1.0] and idle.cost_per_success is None


def test_json_has_the_contract_keys() -> None:
    spec = bf.spec(2, ("a", "b"))
    r = rank(spec, matrix({"a": ["passed", "failed"], "b": ["failed", "failed"]}))
    data = msgspec.to_builtins(r)
    row = data["ranking"][0]
    for key in ("rank", "variant", "passed", "attempts", "success_rate", "interval", "score"):
        assert key in row
    for key in ("cost_usd", "cost_per_success", "duration_s"):
        assert key in row
    assert row["cost_per_success"] == pytest.approx(0.02)
    assert data["ranking"][1]["cost_per_success"] is None
    assert set(data["winner"]) == {"variant", "significant", "reason"}
    assert set(data["comparison"]) >= set(Comparison.__struct_fields__)


# --------------------------------------------------------------------------- failure causes


def test_causes_in_order_of_their_rules() -> None:
    crit = [
        CriterionResult(type="file_exists", target="a.txt", passed=True),
        CriterionResult(type="command", target="make check", passed=False),
        CriterionResult(type="contains", target="DONE", passed=False),
    ]
    assert cause(bf.record("t", "v", "timeout")) == "timeout"
    assert cause(bf.record("t", "v", "error", error_class="quota")) == "provider:quota"
    assert cause(bf.record("t", "v", "error", error="exit 3")) == "crash"
    assert cause(bf.record("t", "v", "failed", criteria=crit)) == "no change"
    changed = bf.record("t", "v", "failed", criteria=crit, patch_files=["a"])
    assert cause(changed) == "criterion:command:make check"
    assert cause(bf.record("t", "v", "passed")) is None
    assert cause(bf.record("t", "v", "cancelled")) is None


def test_error_groups_biggest_first_with_counts_per_variant() -> None:
    spec = bf.spec(4, ("a", "b"))
    records = [
        bf.record("t000", "a", "timeout"),
        bf.record("t001", "b", "timeout"),
        bf.record("t002", "b", "timeout"),
        bf.record("t000", "b", "error", error_class="rate_limit"),
        bf.record("t003", "a", "passed"),
        bf.record("t003", "b", "failed"),
    ]
    groups = error_groups(spec, records)
    assert [(g.cause, g.count) for g in groups] == [
        ("timeout", 3),
        ("no change", 1),
        ("provider:rate_limit", 1),
    ]
    assert groups[0].variants == {"a": 1, "b": 2}
    assert groups[0].attempts == ["t000/a/1", "t001/b/1", "t002/b/1"]
    assert groups[0].example == "t000/a/1"
