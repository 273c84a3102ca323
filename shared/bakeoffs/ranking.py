"""The ranking of a bakeoff's variants and whether its top is better than the runner-up or luck.

A pure function of the graded records and the spec, so the report, the TUI and the tests agree. It
works on a partial matrix: only attempts that finished count, and the paired comparison looks only
at tasks both variants have reached. docs/bakeoffs.md explains the method.
"""

from __future__ import annotations

import msgspec

from shared.bakeoffs.schema import AttemptRecord, BakeoffSpec
from shared.bakeoffs.stats import ALPHA, fmt_p, more_tasks, sign_test, wilson


class VariantRank(msgspec.Struct, kw_only=True):
    rank: int
    variant: str
    passed: int
    attempts: int
    """Finished, decided attempts (replays, cancelled and still-unmarked ones are not counted)."""
    success_rate: float | None
    interval: list[float]
    """95 % Wilson score interval of the success rate ([0, 1] before any attempt)."""
    score: float | None
    """Mean attempt score; errors and timeouts count as 0."""
    cost_usd: float
    cost_per_success: float | None
    duration_s: float | None
    """Mean agent time per attempt."""
    failed: int
    errors: int
    timeouts: int
    pending: int
    """Attempts whose only criteria are manual ones nobody has marked yet."""
    unmarked: int
    """Manual criteria not marked yet, over all of the variant's attempts."""


class Comparison(msgspec.Struct, kw_only=True):
    """The paired comparison of the top two over the tasks both attempted."""

    test: str = "sign"
    a: str
    b: str
    tasks: int
    """Tasks both have at least one decided attempt of."""
    wins_a: int
    wins_b: int
    ties: int
    p_value: float
    alpha: float = ALPHA
    more_tasks: int | None
    """Roughly how many more tasks would make the difference significant if it held (None: it
    never would, or it already is)."""


class Winner(msgspec.Struct, kw_only=True):
    variant: str | None
    significant: bool
    reason: str


class Ranking(msgspec.Struct, kw_only=True):
    ranking: list[VariantRank]
    winner: Winner
    comparison: Comparison | None
    why_first: str
    """What put the first variant above the second in the order ("" with fewer than two)."""


# --------------------------------------------------------------------------- ranking


def attempt_score(record: AttemptRecord) -> float | None:
    """What an attempt scores in the ranking: errors and timeouts 0, pending attempts None."""
    if record.status in ("error", "timeout"):
        return 0.0
    return record.score


def ranked_records(spec: BakeoffSpec, records: list[AttemptRecord]) -> list[AttemptRecord]:
    """The attempts a ranking counts: finished ones of the matrix (no replays, no cancelled ones,
    nothing of a task or variant the spec does not have)."""
    tasks = {t.id for t in spec.tasks}
    variants = {v.id for v in spec.variants}
    return [
        r
        for r in records
        if r.replay_of is None
        and r.status not in ("cancelled", "")
        and r.task in tasks
        and r.variant in variants
    ]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def variant_row(variant: str, records: list[AttemptRecord]) -> VariantRank:
    """One variant's numbers (its rank is set once all rows are ordered)."""
    scores = [s for s in map(attempt_score, records) if s is not None]
    pending = len(records) - len(scores)
    attempts = len(scores)
    passed = sum(1 for r in records if r.status == "passed")
    cost = sum(r.cost_usd for r in records)
    lo, hi = wilson(passed, attempts)
    return VariantRank(
        rank=0,
        variant=variant,
        passed=passed,
        attempts=attempts,
        success_rate=passed / attempts if attempts else None,
        interval=[lo, hi],
        score=_mean(scores),
        cost_usd=cost,
        cost_per_success=cost / passed if passed else None,
        duration_s=_mean([r.duration_s for r in records]),
        failed=sum(1 for r in records if r.status == "failed" and attempt_score(r) is not None),
        errors=sum(1 for r in records if r.status == "error"),
        timeouts=sum(1 for r in records if r.status == "timeout"),
        pending=pending,
        unmarked=sum(1 for r in records for c in r.criteria if c.passed is None),
    )


def _desc(value: float | None) -> tuple[bool, float]:
    """Descending with None last (rounded so sums in another order tie as they should)."""
    return (value is None, -round(value, 12) if value is not None else 0.0)


def _asc(value: float | None) -> tuple[bool, float]:
    return (value is None, round(value, 12) if value is not None else 0.0)


def order_key(row: VariantRank) -> tuple[object, ...]:
    """Score, success rate, fewer errors and timeouts, cost per success, duration, id.

    Status-aware by construction: an error or timeout scores 0, no more than any failure, and at
    an equal score it counts against the variant in the third place; a pass scores 1, more than
    any failure. So turning any attempt's error into a failure, or a failure into a pass, never
    moves a variant down.
    """
    return (
        _desc(row.score),
        _desc(row.success_rate),
        row.errors + row.timeouts,
        _asc(row.cost_per_success),
        _asc(row.duration_s),
        row.variant,
    )


KEY_WORDS = ("score", "success rate", "fewer errors and timeouts", "cost per success", "duration")


def why_first(a: VariantRank, b: VariantRank) -> str:
    """Which part of the order put `a` above `b`, in words."""
    values = [
        (a.score, b.score, "{:.2f}"),
        (a.success_rate, b.success_rate, "{:.0%}"),
        (a.errors + a.timeouts, b.errors + b.timeouts, "{}"),
        (a.cost_per_success, b.cost_per_success, "${:.4f}"),
        (a.duration_s, b.duration_s, "{:.1f}s"),
    ]
    key_a, key_b = order_key(a), order_key(b)
    for i, ((va, vb, fmt), word) in enumerate(zip(values, KEY_WORDS, strict=True)):
        if key_a[i] != key_b[i]:
            shown_a = "—" if va is None else fmt.format(va)
            shown_b = "—" if vb is None else fmt.format(vb)
            return f"{a.variant} ranks above {b.variant} by {word} ({shown_a} vs {shown_b})"
    return f"{a.variant} and {b.variant} tie on every count: the order between them is by id"


def task_means(records: list[AttemptRecord]) -> dict[str, float]:
    """Per task, the mean score of its decided attempts (one variant's records)."""
    sums: dict[str, list[float]] = {}
    for r in records:
        s = attempt_score(r)
        if s is not None:
            sums.setdefault(r.task, []).append(s)
    return {task: sum(v) / len(v) for task, v in sums.items()}


def compare(
    a: str, b: str, records_a: list[AttemptRecord], records_b: list[AttemptRecord]
) -> Comparison:
    """The paired sign test of `a` against `b` over the tasks both have decided attempts of."""
    means_a, means_b = task_means(records_a), task_means(records_b)
    shared = sorted(means_a.keys() & means_b.keys())
    wins_a = sum(1 for t in shared if means_a[t] - means_b[t] > 1e-9)
    wins_b = sum(1 for t in shared if means_b[t] - means_a[t] > 1e-9)
    return Comparison(
        a=a,
        b=b,
        tasks=len(shared),
        wins_a=wins_a,
        wins_b=wins_b,
        ties=len(shared) - wins_a - wins_b,
        p_value=sign_test(wins_a, wins_b),
        more_tasks=more_tasks(len(shared), wins_a, wins_b),
    )


def judge(c: Comparison) -> Winner:
    """The winner line: `a` only when it is significantly better on the tasks both attempted."""
    a, b, n = c.a, c.b, c.tasks
    differ = c.wins_a + c.wins_b
    if n == 0:
        return Winner(
            variant=None,
            significant=False,
            reason=f"no clear winner: {a} and {b} have no finished task in common yet",
        )
    if differ == 0:
        return Winner(
            variant=None,
            significant=False,
            reason=f"no clear winner: {a} and {b} do equally well on all {n} tasks both "
            "attempted; more tasks settle it only if they start to differ",
        )
    p = fmt_p(c.p_value)
    if c.p_value < c.alpha and c.wins_a > c.wins_b:
        return Winner(
            variant=a,
            significant=True,
            reason=f"{a} beats {b} on {c.wins_a} of the {differ} tasks where they differ "
            f"({c.ties} ties; two-sided sign test p = {p} < {c.alpha:g})",
        )
    if c.p_value < c.alpha:
        return Winner(
            variant=None,
            significant=False,
            reason=f"no clear winner: {a} ranks first overall, but {b} is better on "
            f"{c.wins_b} of the {differ} tasks both attempted where they differ (p = {p})",
        )
    head = (
        f"no clear winner: {a} and {b} differ on {differ} of {n} tasks "
        f"({c.wins_a}–{c.wins_b}, p = {p})"
    )
    if c.more_tasks is None:
        return Winner(
            variant=None,
            significant=False,
            reason=f"{head}; an even split like this is not settled by more tasks",
        )
    return Winner(
        variant=None,
        significant=False,
        reason=f"{head}; about {c.more_tasks} more tasks would settle it if the difference held",
    )


def rank(spec: BakeoffSpec, records: list[AttemptRecord]) -> Ranking:
    """Rank the spec's variants by their graded `records` and name a winner only on evidence."""
    by_variant: dict[str, list[AttemptRecord]] = {v.id: [] for v in spec.variants}
    for r in ranked_records(spec, records):
        by_variant[r.variant].append(r)
    rows = sorted((variant_row(v, rs) for v, rs in by_variant.items()), key=order_key)
    for i, row in enumerate(rows, 1):
        row.rank = i
    if len(rows) < 2:
        return Ranking(
            ranking=rows,
            winner=Winner(
                variant=None,
                significant=False,
                reason=f"no winner: a bakeoff with {len(rows)} variant compares nothing",
            ),
            comparison=None,
            why_first="",
        )
    a, b = rows[0].variant, rows[1].variant
    comparison = compare(a, b, by_variant[a], by_variant[b])
    return Ranking(
        ranking=rows,
        winner=judge(comparison),
        comparison=comparison,
        why_first=why_first(rows[0], rows[1]),
    )
