"""From the record to the verdict: the newest line per attempt, manual marks applied, the score
and status recomputed. Pure functions, so the daemon, the CLI and the TUI grade alike."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import AttemptRecord, CriterionResult, Mark
from shared.tail import read_complete_lines

_attempt = msgspec.json.Decoder(AttemptRecord)
_mark = msgspec.json.Decoder(Mark)

SCORED = frozenset({"passed", "failed"})
"""Statuses whose score comes from the criteria (errors, timeouts, cancels score 0)."""


def score(criteria: Iterable[CriterionResult]) -> float | None:
    """The weighted share of decided criteria that passed; None when none is decided yet."""
    total = passed = 0.0
    for c in criteria:
        if c.passed is None:
            continue
        total += c.weight
        passed += c.weight if c.passed else 0.0
    return None if total == 0 else passed / total


def verdict(criteria: list[CriterionResult]) -> tuple[str, float | None]:
    """`passed` when every decided criterion passed, else `failed`, with the score."""
    value = score(criteria)
    return ("passed" if value == 1.0 else "failed"), value


def pending(record: AttemptRecord) -> int:
    """Manual criteria of this attempt not marked yet."""
    return sum(1 for c in record.criteria if c.passed is None)


def decode_attempt(line: bytes) -> AttemptRecord | None:
    try:
        return _attempt.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def decode_mark(line: bytes) -> Mark | None:
    try:
        return _mark.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def latest(records: Iterable[AttemptRecord]) -> dict[str, AttemptRecord]:
    """The newest record of each attempt (a re-run supersedes a cancelled or errored one)."""
    out: dict[str, AttemptRecord] = {}
    for record in records:
        out.pop(record.key, None)
        out[record.key] = record
    return out


def apply_marks(record: AttemptRecord, marks: Iterable[Mark]) -> AttemptRecord:
    """`record` with its manual criteria decided by the newest marks (a copy when any apply)."""
    chosen: dict[int, Mark] = {}
    for mark in marks:
        inside = mark.key == record.key and 0 <= mark.criterion < len(record.criteria)
        if inside and record.criteria[mark.criterion].type == "manual":
            chosen[mark.criterion] = mark
    if not chosen:
        return record
    criteria = []
    for i, c in enumerate(record.criteria):
        if i in chosen:
            mark = chosen[i]
            note = f"marked {'pass' if mark.passed else 'fail'}" + (
                f": {mark.note}" if mark.note else ""
            )
            c = msgspec.structs.replace(c, passed=mark.passed, details=note)
        criteria.append(c)
    out = msgspec.structs.replace(record, criteria=criteria)
    if record.status in SCORED:
        out.status, out.score = verdict(criteria)
    return out


def read_records(paths: BakeoffRunPaths) -> list[AttemptRecord]:
    """Every readable line of `attempts.jsonl`, in order (bad lines are skipped)."""
    lines = read_complete_lines(paths.attempts)
    return [r for r in (decode_attempt(line) for line in lines) if r is not None]


def read_marks(paths: BakeoffRunPaths) -> list[Mark]:
    lines = read_complete_lines(paths.marks)
    return [m for m in (decode_mark(line) for line in lines) if m is not None]


def graded(records: Iterable[AttemptRecord], marks: list[Mark]) -> list[AttemptRecord]:
    """The current verdict of each attempt: newest record, marks applied, in record order."""
    if not marks:
        return list(latest(records).values())
    return [apply_marks(r, marks) for r in latest(records).values()]


def load_graded(paths: BakeoffRunPaths) -> list[AttemptRecord]:
    return graded(read_records(paths), read_marks(paths))
