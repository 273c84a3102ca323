"""Darwin: rank a program's arms by what they earned, name a winner only on evidence, and plan the
next generation. Pure functions of the results, so the CLI, the report and the tests agree.

Outcomes, never picks: an arm is ranked by keeps per dollar (keeps per experiment when the arms
report no cost), with an exact interval, then by its summed improvement. The top two are compared
with the exact conditional test of two Poisson rates: given n = k₁ + k₂ keeps over exposures e₁
and e₂, a first arm no better than the second would have k₁ ~ Binomial(n, e₁ / (e₁ + e₂)).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.bakeoffs.stats import ALPHA, fmt_p, wilson
from shared.darwin_stats import more_experiments, poisson_interval, rate_p_value
from shared.schema import ResultRecord
from shared.status import improvement_pct

Unit = Literal["dollar", "experiment"]


class ArmOutcome(msgspec.Struct, kw_only=True):
    """What one arm's experiments earned (in one run, or pooled over several)."""

    id: str
    experiments: int = 0
    keeps: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    improvement_pct: float = 0.0
    """The sum of its keeps' gains, each relative to the best before it (positive: better)."""
    tokens: int = 0
    agent_s: float = 0.0

    def add(self, other: ArmOutcome) -> None:
        self.experiments += other.experiments
        self.keeps += other.keeps
        self.errors += other.errors
        self.cost_usd += other.cost_usd
        self.improvement_pct += other.improvement_pct
        self.tokens += other.tokens
        self.agent_s += other.agent_s


class RunOutcomes(msgspec.Struct, kw_only=True):
    run: str
    arms: list[ArmOutcome]


class ArmRank(msgspec.Struct, kw_only=True):
    rank: int
    id: str
    experiments: int
    keeps: int
    errors: int
    keep_rate: float | None
    keep_interval: list[float]
    """95 % Wilson interval of the keep rate."""
    cost_usd: float
    improvement_pct: float
    mean_agent_s: float | None
    rate: float | None
    """Keeps per dollar (or per experiment, see `unit`); None without exposure."""
    rate_interval: list[float] | None
    """Exact 95 % (Garwood) interval of `rate`."""
    unit: Unit


class RateComparison(msgspec.Struct, kw_only=True):
    """The top two arms' keep rates, compared exactly (conditional binomial test)."""

    test: str = "exact_poisson_rates"
    a: str
    b: str
    keeps_a: int
    keeps_b: int
    exposure_a: float
    exposure_b: float
    unit: Unit
    p_value: float
    """One-sided: the chance of `keeps_a` or more if `a` were no better than `b`."""
    alpha: float = ALPHA
    more_experiments: int | None
    """About how many more experiments (both arms together) would make the lead significant if
    the rates held; None when no number would, or it already is."""


class Verdict(msgspec.Struct, kw_only=True):
    arm: str | None
    significant: bool
    reason: str
    forced: bool = False
    """Chosen with `--winner`, whatever the evidence."""


class Source(msgspec.Struct, kw_only=True):
    kind: Literal["program", "bakeoff"]
    name: str
    runs: list[str]


class Plan(msgspec.Struct, kw_only=True):
    """`expd darwin --json`: the ranking, the winner and the next generation."""

    source: Source
    unit: Unit | None
    """What the program ranking counts keeps per (None for a bakeoff's ranking)."""
    ranking: list[Any]
    """`ArmRank` rows for a program, the bakeoff ranking's `VariantRank` rows for a bakeoff."""
    winner: Verdict
    comparison: Any
    current_arms: list[str]
    next_arms: list[str] | None
    """Winner first, then the kept challengers in declared order (None: no winner)."""
    other_arms: list[ArmOutcome] = []
    """Outcomes of arms the program no longer declares (not ranked)."""
    notes: list[str] = []


class Generation(msgspec.Struct, kw_only=True):
    """One archive in `generations/`: what a `--apply` ranked, promoted and wrote, and why."""

    schema_version: int = 1
    number: int = 0
    created_at: float = 0.0
    source: Source | None = None
    unit: str | None = None
    ranking: list[dict[str, Any]] = []
    outcomes: list[RunOutcomes] = []
    winner: str | None = None
    significant: bool = False
    forced: bool = False
    reason: str = ""
    evidence: dict[str, Any] | None = None
    """The comparison of the top two the verdict rests on."""
    current_arms: list[dict[str, Any]] = []
    """The arm (or variant) tables as they were written."""
    current_agent: dict[str, Any] = {}
    next_ids: list[str] = []
    """The next generation, winner first."""
    next_arms: list[dict[str, Any]] = []
    """The tables written ([] when a program kept only the winner: no list any more)."""
    next_agent: dict[str, Any] = {}
    notes: list[str] = []


# --------------------------------------------------------------------------- outcomes


def run_outcomes(run: str, records: list[ResultRecord], direction: str) -> RunOutcomes:
    """Per arm, what one run's results earned (the baseline and results without an arm are
    not counted; a keep's gain is measured against the best before it)."""
    arms: dict[str, ArmOutcome] = {}
    best: float | None = None
    for rec in records:
        if rec.status == "baseline":
            best = rec.metric if best is None else best
            continue
        gain = None
        if rec.status == "keep":
            gain = improvement_pct(best, rec.metric, direction)
            best = rec.metric if rec.metric is not None else best
        if rec.arm is None:
            continue
        arm = arms.setdefault(rec.arm, ArmOutcome(id=rec.arm))
        arm.experiments += 1
        arm.keeps += rec.status == "keep"
        arm.errors += rec.status == "crash"
        arm.cost_usd += rec.cost_usd
        arm.tokens += rec.tokens
        arm.agent_s += rec.agent_s
        arm.improvement_pct += gain or 0.0
    return RunOutcomes(run=run, arms=list(arms.values()))


def pool(
    outcomes: list[RunOutcomes], declared: list[str]
) -> tuple[list[ArmOutcome], list[ArmOutcome]]:
    """The declared arms' outcomes summed over the runs (in declared order), and the others'."""
    totals = {arm: ArmOutcome(id=arm) for arm in declared}
    others: dict[str, ArmOutcome] = {}
    for run in outcomes:
        for arm in run.arms:
            target = totals.get(arm.id) or others.setdefault(arm.id, ArmOutcome(id=arm.id))
            target.add(arm)
    return list(totals.values()), sorted(others.values(), key=lambda a: a.id)


# --------------------------------------------------------------------------- ranking


def exposure(arm: ArmOutcome, unit: Unit) -> float:
    return arm.cost_usd if unit == "dollar" else float(arm.experiments)


def unit_of(arms: list[ArmOutcome]) -> Unit:
    """Dollars when every arm that ran reported a cost, else experiments (comparable units)."""
    ran = [a for a in arms if a.experiments]
    return "dollar" if ran and all(a.cost_usd > 0 for a in ran) else "experiment"


def arm_row(arm: ArmOutcome, unit: Unit) -> ArmRank:
    lo, hi = wilson(arm.keeps, arm.experiments)
    e = exposure(arm, unit)
    rate = arm.keeps / e if e > 0 else None
    interval = None
    if e > 0:
        if unit == "dollar":
            p_lo, p_hi = poisson_interval(arm.keeps)
            interval = [p_lo / e, p_hi / e]
        else:
            interval = [lo, hi]
    return ArmRank(
        rank=0,
        id=arm.id,
        experiments=arm.experiments,
        keeps=arm.keeps,
        errors=arm.errors,
        keep_rate=arm.keeps / arm.experiments if arm.experiments else None,
        keep_interval=[lo, hi],
        cost_usd=arm.cost_usd,
        improvement_pct=arm.improvement_pct,
        mean_agent_s=arm.agent_s / arm.experiments if arm.experiments else None,
        rate=rate,
        rate_interval=interval,
        unit=unit,
    )


def order_key(row: ArmRank) -> tuple[object, ...]:
    """Keeps per unit (none last), then improvement, then id — never how often it was picked."""
    rate = row.rate
    return (rate is None, -round(rate or 0.0, 12), -round(row.improvement_pct, 9), row.id)


def rank_arms(
    arms: list[ArmOutcome],
) -> tuple[list[ArmRank], Verdict, RateComparison | None, Unit]:
    """The ranking, the verdict on the top two and the comparison it rests on."""
    unit = unit_of(arms)
    rows = sorted((arm_row(a, unit) for a in arms), key=order_key)
    for i, row in enumerate(rows, 1):
        row.rank = i
    if len(rows) < 2:
        return rows, Verdict(arm=None, significant=False, reason="no winner: one arm"), None, unit
    by_id = {a.id: a for a in arms}
    a, b = by_id[rows[0].id], by_id[rows[1].id]
    e_a, e_b = exposure(a, unit), exposure(b, unit)
    comparison = RateComparison(
        a=a.id,
        b=b.id,
        keeps_a=a.keeps,
        keeps_b=b.keeps,
        exposure_a=e_a,
        exposure_b=e_b,
        unit=unit,
        p_value=rate_p_value(a.keeps, b.keeps, e_a, e_b),
        more_experiments=more_experiments(
            a.keeps, b.keeps, e_a, e_b, a.experiments + b.experiments
        ),
    )
    return rows, judge(comparison, a, b), comparison, unit


def fmt_rate(rate: float | None, unit: str) -> str:
    if rate is None:
        return "—"
    return f"{rate:.3g} keeps/$" if unit == "dollar" else f"{rate:.0%} kept"


def _side(arm: ArmOutcome, unit: Unit) -> str:
    if unit == "dollar":
        return f"{arm.keeps} keeps over ${arm.cost_usd:.2f}"
    return f"{arm.keeps} of {arm.experiments}"


def judge(c: RateComparison, a: ArmOutcome, b: ArmOutcome) -> Verdict:
    """`a` wins only when its keep rate is significantly above `b`'s."""
    unit = c.unit
    rate_a = c.keeps_a / c.exposure_a if c.exposure_a else None
    rate_b = c.keeps_b / c.exposure_b if c.exposure_b else None
    evidence = (
        f"{fmt_rate(rate_a, unit)} vs {fmt_rate(rate_b, unit)}; "
        f"{_side(a, unit)} vs {_side(b, unit)}"
    )
    p = fmt_p(c.p_value)
    if c.p_value < c.alpha:
        per = "per dollar" if unit == "dollar" else "per experiment"
        return Verdict(
            arm=a.id,
            significant=True,
            reason=f"{a.id} earns more keeps {per} than {b.id} ({evidence}; one-sided exact "
            f"Poisson test p = {p} < {c.alpha:g})",
        )
    if c.exposure_b <= 0:
        what = "cost" if b.experiments else "experiment"
        return _none(f"{b.id} has no {what} yet; it would need more experiments")
    if c.keeps_a + c.keeps_b == 0:
        return _none(f"neither {a.id} nor {b.id} has a keep yet; it would need more experiments")
    if c.keeps_a * c.exposure_b <= c.keeps_b * c.exposure_a:
        return _none(
            f"{a.id} and {b.id} earn keeps at the same rate ({evidence}); more experiments "
            "settle it only if they start to differ"
        )
    head = f"{a.id} leads {b.id} ({evidence}; p = {p})"
    if c.more_experiments is None:
        return _none(f"{head}; it would need many more experiments")
    return _none(
        f"{head}; it would need about {c.more_experiments} more experiments if the rates held"
    )


def _none(reason: str) -> Verdict:
    return Verdict(arm=None, significant=False, reason=f"no clear winner: {reason}")
