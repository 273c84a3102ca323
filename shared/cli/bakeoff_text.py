"""Plain text and JSON objects of a bakeoff's attempts: `results`, `errors` and `diff` (the
report's own rendering is `bakeoff_report.py`)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from shared.bakeoffs.analysis import ErrorGroup
from shared.bakeoffs.schema import AttemptRecord
from shared.display import DASH, fmt_duration, one_line, truncate

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters a terminal would obey (tabs are expanded before, newlines split lines)."""


def to_json(obj: Any) -> str:
    """Indented UTF-8 JSON (msgspec is loaded anyway; the json module is not)."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=2).decode()


def fmt_score(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def short(text: str, width: int = 40) -> str:
    return truncate(text, width)


def listed(items: list[str], limit: int = 8) -> str:
    """`a, b, c and 5 more` (or `none`)."""
    if not items:
        return "none"
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def result_object(r: AttemptRecord) -> dict[str, Any]:
    """One attempt as `expd bakeoff results --json` prints it (the contract's keys)."""
    return {
        "task": r.task,
        "variant": r.variant,
        "attempt": r.attempt,
        "status": r.status,
        "score": r.score,
        "criteria": [
            {"type": c.type, "target": c.target, "passed": c.passed, "details": c.details}
            for c in r.criteria
        ],
        "cost_usd": r.cost_usd,
        "tokens": r.tokens,
        "duration_s": r.duration_s,
        "commit": r.commit,
        "error": r.error,
        "replay_of": r.replay_of,
        "ref": r.ref,
        "error_class": r.error_class,
    }


def criteria_cell(r: AttemptRecord) -> str:
    """`2/3` criteria passed, with `+1?` for manual ones awaiting a mark."""
    if not r.criteria:
        return DASH
    passed = sum(1 for c in r.criteria if c.passed)
    pending = sum(1 for c in r.criteria if c.passed is None)
    decided = len(r.criteria) - pending
    return f"{passed}/{decided}" + (f" +{pending}?" if pending else "")


def note(r: AttemptRecord) -> str:
    """What explains the row: the error, the first failed criterion, or the replayed attempt."""
    parts = []
    if r.replay_of:
        parts.append(f"replay of {r.replay_of}")
    if r.error:
        parts.append((f"{r.error_class}: " if r.error_class else "") + r.error)
    elif r.status == "failed":
        if not r.changed:
            parts.append("no change")
        failed = next((c for c in r.criteria if c.passed is False), None)
        if failed is not None:
            parts.append(f"{failed.type}:{failed.target} failed")
    return "; ".join(parts)


def table(
    header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()
) -> list[str]:
    """Aligned columns (those in `right` flush right), trailing spaces trimmed."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def results_text(records: list[AttemptRecord], width: int = 120) -> str:
    if not records:
        return "no finished attempts yet"
    rows = [
        [
            r.task,
            r.variant,
            str(r.attempt),
            r.status,
            fmt_score(r.score),
            criteria_cell(r),
            f"${r.cost_usd:.4f}",
            fmt_duration(r.duration_s),
        ]
        for r in records
    ]
    header = ["TASK", "VARIANT", "#", "STATUS", "SCORE", "CRITERIA", "COST", "AGENT"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    room = max(width - sum(widths) - 2 * len(widths), 20)
    full = [[*row, truncate(note(r), room)] for row, r in zip(rows, records, strict=True)]
    return "\n".join(table([*header, "NOTE"], full, right=frozenset({2, 4, 6, 7})))


# --------------------------------------------------------------------------- errors


def errors_text(run_id: str, groups: list[ErrorGroup], finished: int, log_width: int = 120) -> str:
    """One block per cause, biggest first: counts per variant, the attempts, an example log."""
    if not finished:
        return f"{run_id}: no attempt has finished yet"
    if not groups:
        return f"{run_id}: all {finished} finished attempt(s) passed (or await a manual mark)"
    total = sum(g.count for g in groups)
    lines = [
        f"{run_id}: {total} of {finished} finished attempt(s) did not pass, {len(groups)} cause(s)"
    ]
    for g in groups:
        per_variant = ", ".join(f"{v} {n}" for v, n in g.variants.items())
        lines += ["", f"{g.count:>4}  {one_line(g.cause)}", f"      variants: {per_variant}"]
        lines.append(f"      attempts: {listed(g.attempts, 6)}")
        if g.example_log:
            lines.append(f"      {g.example} agent.log:")
            lines += [f"        │ {clean(line, log_width)}" for line in g.example_log]
        else:
            lines.append(f"      {g.example}: the agent log is empty")
    return "\n".join(lines)


# --------------------------------------------------------------------------- diff


def clean(line: str, width: int) -> str:
    """One line of a file as a terminal would show it verbatim, cut to `width` columns."""
    text = _CONTROL.sub("?", line.rstrip("\r\n").expandtabs(4))
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def diff_side(record: AttemptRecord, patch: str | None) -> dict[str, Any]:
    return {
        "variant": record.variant,
        "status": record.status,
        "score": record.score,
        "changed": record.changed,
        "files": record.diff.files,
        "patch": patch,
    }


def side_header(record: AttemptRecord) -> list[str]:
    """Two lines: who and how it did, then what it changed."""
    d = record.diff
    files = f"{len(d.files)} file{'s' if len(d.files) != 1 else ''} (+{d.added} −{d.removed})"
    return [
        f"{record.variant}: {record.status}, score {fmt_score(record.score)}",
        files if record.changed else "no change",
    ]


def side_lines(record: AttemptRecord, patch: str | None) -> list[str]:
    if patch is None:
        return ["no change"]
    if not patch:
        return ["(the patch file is missing or empty)"]
    return patch.splitlines()


def side_by_side(
    left: tuple[AttemptRecord, str | None], right: tuple[AttemptRecord, str | None], width: int
) -> str:
    """Two attempts' patches in two columns of half the width each, under a header that gives
    each attempt's status, score and files."""
    col = (width - 3) // 2
    a, b = side_lines(*left), side_lines(*right)
    rule = "─" * col
    lines = [
        f"{clean(ha, col):<{col}} │ {clean(hb, col)}"
        for ha, hb in zip(side_header(left[0]), side_header(right[0]), strict=True)
    ]
    lines.append(f"{rule}─┼─{rule}")
    for i in range(max(len(a), len(b))):
        la = clean(a[i], col) if i < len(a) else ""
        lb = clean(b[i], col) if i < len(b) else ""
        lines.append(f"{la:<{col}} │ {lb}".rstrip())
    return "\n".join(lines)
