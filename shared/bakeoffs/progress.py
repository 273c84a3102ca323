"""Per-variant progress of a bakeoff run (the TUI's table and `expd status --watch`)."""

from __future__ import annotations

import msgspec

from shared.bakeoffs.schema import AttemptRecord, BakeoffSpec


class VariantProgress(msgspec.Struct, kw_only=True):
    variant: str
    done: int
    total: int
    running: int
    passed: int
    failed: int
    errors: int
    """Errors and timeouts."""
    success_rate: float | None
    cost_usd: float
    mean_duration_s: float | None
    eta_s: float | None
    """Roughly how long its remaining attempts will take at the current pace (None: unknown)."""


def ranked_only(records: list[AttemptRecord]) -> list[AttemptRecord]:
    """Replays are shown but never ranked or counted against the matrix."""
    return [r for r in records if r.replay_of is None]


def variant_progress(
    spec: BakeoffSpec, records: list[AttemptRecord], running: dict[str, int] | None = None
) -> list[VariantProgress]:
    """One row per variant in the spec's order; `records` are graded, `running` counts the
    attempts in flight per variant."""
    per_variant = spec.attempts * len(spec.tasks)
    by_variant: dict[str, list[AttemptRecord]] = {v.id: [] for v in spec.variants}
    for record in ranked_only(records):
        if record.variant in by_variant and record.status != "cancelled":
            by_variant[record.variant].append(record)
    out = []
    concurrency = max(1, spec.concurrency)
    n_variants = max(1, len(spec.variants))
    for variant, done in by_variant.items():
        passed = sum(1 for r in done if r.status == "passed")
        failed = sum(1 for r in done if r.status == "failed")
        errors = sum(1 for r in done if r.status in ("error", "timeout"))
        durations = [r.duration_s + r.criteria_s for r in done]
        mean = sum(durations) / len(durations) if durations else None
        remaining = per_variant - len(done)
        eta = (
            None
            if mean is None
            else remaining * mean * n_variants / concurrency
            if remaining > 0
            else 0.0
        )
        out.append(
            VariantProgress(
                variant=variant,
                done=len(done),
                total=per_variant,
                running=(running or {}).get(variant, 0),
                passed=passed,
                failed=failed,
                errors=errors,
                success_rate=passed / len(done) if done else None,
                cost_usd=sum(r.cost_usd for r in done),
                mean_duration_s=sum(r.duration_s for r in done) / len(done) if done else None,
                eta_s=eta,
            )
        )
    return out


def overall_eta(rows: list[VariantProgress], concurrency: int) -> float | None:
    """The whole matrix's remaining time at the current pace."""
    known = [r for r in rows if r.mean_duration_s is not None]
    if not known:
        return None
    work = 0.0
    for row in rows:
        pace = row.mean_duration_s if row.mean_duration_s is not None else 0.0
        work += max(0, row.total - row.done) * pace
    return work / max(1, concurrency)
