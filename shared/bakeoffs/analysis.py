"""What a bakeoff's attempts say beyond the ranking: the task × variant matrix and the failures
grouped by cause. Pure functions of the spec and the graded records (the CLI adds the logs)."""

from __future__ import annotations

import msgspec

from shared.bakeoffs.ranking import attempt_score, ranked_records
from shared.bakeoffs.schema import AttemptRecord, BakeoffSpec

SYMBOLS = {"passed": "✓", "failed": "✗", "error": "E", "timeout": "T", "pending": "?"}
NOT_RUN = "·"
"""An attempt that has not finished (yet)."""


class TaskRow(msgspec.Struct, kw_only=True):
    """One task of the matrix."""

    task: str
    results: dict[str, list[str | None]]
    """Per variant, one outcome per attempt (passed, failed, error, timeout, pending — awaiting
    manual marks — or None: not finished)."""
    scores: dict[str, float | None]
    """Per variant, the mean score of its decided attempts of this task."""


class ErrorGroup(msgspec.Struct, kw_only=True):
    """Attempts that did not pass for the same cause."""

    cause: str
    count: int
    variants: dict[str, int]
    """Attempts per variant, in the spec's order (variants without any are left out)."""
    attempts: list[str]
    """Their keys (`task/variant/attempt`), in the order they finished."""
    example: str
    """The attempt whose log is shown."""
    example_log: list[str] = []
    """The first lines of its agent log (filled in by the reader, which may pick another
    attempt of the group when the first has an empty log)."""


def outcome(record: AttemptRecord) -> str:
    """The matrix's word for a finished attempt: its status, or `pending` while a failed-looking
    attempt has no decided criterion (only unmarked manual ones)."""
    if record.status in ("passed", "failed") and attempt_score(record) is None:
        return "pending"
    return record.status


def task_matrix(spec: BakeoffSpec, records: list[AttemptRecord]) -> list[TaskRow]:
    """Every task of the spec, in its order, with every variant's attempts."""
    cells: dict[tuple[str, str], list[str | None]] = {
        (t.id, v.id): [None] * spec.attempts for t in spec.tasks for v in spec.variants
    }
    scores: dict[tuple[str, str], list[float]] = {}
    for r in ranked_records(spec, records):
        row = cells[(r.task, r.variant)]
        if 1 <= r.attempt <= len(row):
            row[r.attempt - 1] = outcome(r)
        value = attempt_score(r)
        if value is not None:
            scores.setdefault((r.task, r.variant), []).append(value)
    out = []
    for t in spec.tasks:
        means = {}
        for v in spec.variants:
            values = scores.get((t.id, v.id), [])
            means[v.id] = sum(values) / len(values) if values else None
        out.append(
            TaskRow(
                task=t.id,
                results={v.id: cells[(t.id, v.id)] for v in spec.variants},
                scores=means,
            )
        )
    return out


def cell_text(results: list[str | None]) -> str:
    """A matrix cell for people: one symbol per attempt (✓ ✗ E T ?, · not finished)."""
    return "".join(NOT_RUN if r is None else SYMBOLS.get(r, "?") for r in results)


def cause(record: AttemptRecord) -> str | None:
    """Why an attempt did not pass (None when it passed, is cancelled or awaits marks).

    The first rule that applies: `timeout`; `provider:<class>` for a provider failure; `crash`
    for any other error (the agent exited badly, its change could not be captured); `no change`
    for a failure that changed nothing; else `criterion:<type>:<target>` of the first criterion
    that failed.
    """
    status = record.status
    if status == "timeout":
        return "timeout"
    if status == "error":
        return f"provider:{record.error_class}" if record.error_class else "crash"
    if status != "failed" or attempt_score(record) is None:
        return None
    if not record.changed:
        return "no change"
    for c in record.criteria:
        if c.passed is False:
            return f"criterion:{c.type}:{c.target}"
    return "failed: no criterion failed"


def error_groups(spec: BakeoffSpec, records: list[AttemptRecord]) -> list[ErrorGroup]:
    """Every ranked attempt that did not pass, grouped by `cause`, biggest group first."""
    order = {v.id: i for i, v in enumerate(spec.variants)}
    groups: dict[str, list[AttemptRecord]] = {}
    for r in ranked_records(spec, records):
        why = cause(r)
        if why is not None:
            groups.setdefault(why, []).append(r)
    out = []
    for why, members in groups.items():
        counts: dict[str, int] = {}
        for r in sorted(members, key=lambda r: order.get(r.variant, len(order))):
            counts[r.variant] = counts.get(r.variant, 0) + 1
        out.append(
            ErrorGroup(
                cause=why,
                count=len(members),
                variants=counts,
                attempts=[r.key for r in members],
                example=members[0].key,
            )
        )
    out.sort(key=lambda g: (-g.count, g.cause))
    return out
