"""The Darwin plan and the generations for people: the ranking table, the winner line with its
reason, the next generation (`expd darwin`), and a generation's summary (`expd report`)."""

from __future__ import annotations

from shared.bakeoffs.ranking import VariantRank
from shared.cli.render import table
from shared.darwin import ArmRank, Generation, Plan
from shared.display import DASH, fmt_duration, fmt_pct, fmt_time


def _share(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}"


def _span(values: list[float] | None, fmt: str) -> str:
    if not values:
        return ""
    return f" ({fmt.format(values[0])}–{fmt.format(values[1])})"


def arm_cells(row: ArmRank) -> list[str]:
    cells = [
        str(row.rank),
        row.id,
        str(row.experiments),
        str(row.keeps),
        _share(row.keep_rate) + (_span(row.keep_interval, "{:.0%}") if row.experiments else ""),
    ]
    if row.unit == "dollar":
        rate = DASH if row.rate is None else f"{row.rate:.3g}"
        cells.append(rate + _span(row.rate_interval, "{:.3g}"))
    return [
        *cells,
        f"${row.cost_usd:.2f}",
        fmt_pct(row.improvement_pct),
        str(row.errors),
        fmt_duration(row.mean_agent_s),
    ]


def arm_table(ranking: list[ArmRank], unit: str | None) -> str:
    header = ["RANK", "ARM", "EXPERIMENTS", "KEEPS", "KEEP RATE (95%)"]
    if unit == "dollar":
        header.append("KEEPS/$ (95%)")
    header += ["COST", "IMPROVEMENT", "ERRORS", "AGENT TIME"]
    return table(header, [arm_cells(r) for r in ranking])


def variant_table(ranking: list[VariantRank]) -> str:
    rows = [
        [
            str(r.rank),
            r.variant,
            f"{r.passed}/{r.attempts}",
            _share(r.success_rate) + (_span(r.interval, "{:.0%}") if r.attempts else ""),
            DASH if r.score is None else f"{r.score:.2f}",
            f"${r.cost_usd:.2f}",
            DASH if r.cost_per_success is None else f"${r.cost_per_success:.4f}",
            str(r.errors + r.timeouts),
        ]
        for r in ranking
    ]
    header = ["RANK", "VARIANT", "PASSED", "SUCCESS (95%)", "SCORE", "COST", "$/SUCCESS"]
    return table([*header, "ERRORS"], rows)


def next_line(plan: Plan) -> str:
    if not plan.next_arms:
        return "next generation: none — no winner to promote (pass --winner ARM to choose one)"
    first, *rest = plan.next_arms
    return "next generation: " + ", ".join([f"{first} (promoted to [agent])", *rest])


def plan_text(plan: Plan, what: str) -> str:
    src = plan.source
    by = {
        "dollar": "keeps per dollar",
        "experiment": "keeps per experiment (the arms report no cost)",
    }.get(plan.unit or "", "the bakeoff ranking")
    lines = [
        f"darwin: {src.kind} {src.name} — {len(plan.current_arms)} {what}s over "
        f"{len(src.runs)} run(s), ranked by {by}",
        "",
    ]
    if src.kind == "program":
        lines.append(arm_table(plan.ranking, plan.unit))
    else:
        lines.append(variant_table(plan.ranking))
    verdict = plan.winner
    lines += ["", f"winner: {verdict.arm or 'none'} — {verdict.reason}", next_line(plan)]
    if plan.other_arms:
        gone = ", ".join(f"{a.id} ({a.experiments} experiments)" for a in plan.other_arms)
        lines.append(f"not ranked (no longer declared): {gone}")
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def generation_lines(g: Generation) -> tuple[str, str]:
    """What a generation promoted and why, and what came next (plain text, one line each)."""
    how = "chosen with --winner" if g.forced else "on the evidence"
    runs = ", ".join(g.source.runs) if g.source and g.source.runs else DASH
    head = (
        f"Generation {g.number} ({fmt_time(g.created_at)}): promoted {g.winner or DASH} "
        f"({how}) — {g.reason}"
    )
    return head, f"next: {', '.join(g.next_ids) or DASH}; ranked from {runs}"
