"""Following a bakeoff run in plain text (`bakeoff start --attach` and `resume --attach` off a
terminal): one line per attempt the daemon records, read by offset from `attempts.jsonl`, and one
per phase change, until the daemon is gone; then a line per variant.

Each tick reads the small status files and only the bytes appended since the last tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from shared import display
from shared.bakeoffs.grading import decode_attempt, load_graded
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import AttemptRecord
from shared.bakeoffs.status import BakeoffStatus, build_bakeoff_status
from shared.runs import RunRef
from shared.tail import TailReader, end_of_last_line

STARTUP_GRACE_S = 15.0
"""How long a freshly started run may show no daemon before following gives up on it."""
WHY_WIDTH = 100


def _why(record: AttemptRecord) -> str:
    """What made an attempt fail: the error, else the first failed criterion and its details."""
    if record.error:
        return display.truncate(record.error, WHY_WIDTH)
    for c in record.criteria:
        if c.passed is False:
            first = c.details.splitlines()[-1] if c.details else ""
            return display.truncate(f"{c.type}:{c.target} — {first}", WHY_WIDTH)
    return ""


def attempt_line(record: AttemptRecord, done: int, total: int) -> str:
    """`[ 3/12] passed    t001 · solver #1  score 1.00  12s  $0.012`, and why when it failed."""
    width = len(str(total))
    score = "—" if record.score is None else f"{record.score:.2f}"
    parts = [
        f"[{done:>{width}}/{total}]",
        f"{record.status:<9}",
        f"{record.task} · {record.variant} #{record.attempt}",
        f" score {score}",
        f" {display.fmt_duration(record.duration_s + record.criteria_s)}",
    ]
    if record.cost_usd:
        parts.append(f" ${record.cost_usd:.3f}")
    if record.replay_of:
        parts.append(f" (replay of {record.replay_of})")
    pending = sum(1 for c in record.criteria if c.passed is None)
    if pending:
        parts.append(f" ({pending} to mark)")
    why = _why(record) if record.status != "passed" else ""
    return " ".join(parts) + (f" — {why}" if why else "")


def phase_line(status: BakeoffStatus) -> str:
    """`[12:00:01] running: 3/9 attempts`, or the daemon's own words for where it is."""
    where = status.detail or f"{status.done}/{status.total} attempts"
    return f"[{display.fmt_clock()}] {status.phase}: {where}"


def summary_lines(status: BakeoffStatus) -> list[str]:
    """One line per variant: done, passed, success rate, cost, mean duration."""
    reason = f" ({status.termination_reason})" if status.termination_reason else ""
    lines = [f"bakeoff run {status.run_id} {status.phase}{reason}: {status.done}/{status.total}"]
    width = max((len(v.variant) for v in status.variants), default=0)
    for v in status.variants:
        rate = "—" if v.success_rate is None else f"{v.success_rate * 100:.0f}%"
        lines.append(
            f"  {v.variant:<{width}}  {v.done}/{v.total} done  {v.passed} passed ({rate})"
            f"  ${v.cost_usd:.2f}  mean {display.fmt_duration(v.mean_duration_s)}"
        )
    return lines


def _gone(status: BakeoffStatus, started: float, clock: Callable[[], float]) -> bool:
    """The daemon will not write anything more (a just-started run gets a grace period)."""
    if status.daemon == "finished":
        return True
    if status.daemon != "dead":
        return False
    return not (status.updated_at is None and clock() - started < STARTUP_GRACE_S)


def follow_attempts(
    ref: RunRef,
    out: TextIO,
    *,
    interval: float = 1.0,
    from_start: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BakeoffStatus:
    """A line per recorded attempt and per phase change until the daemon is gone; the final
    status. Not `from_start`: only attempts recorded from now on are printed."""
    paths = BakeoffRunPaths(ref.paths.dir)
    reader = TailReader(paths.attempts, 0 if from_start else end_of_last_line(paths.attempts))
    counted: set[str] = set()
    if not from_start:
        counted = {r.key for r in load_graded(paths) if _counts(r)}
    started = clock()
    last: tuple[object, ...] | None = None
    while True:
        status = build_bakeoff_status(paths, run_id=ref.run_id)
        for line in reader.read_lines():
            record = decode_attempt(line)
            if record is None:
                continue
            if _counts(record):
                counted.add(record.key)
            print(attempt_line(record, len(counted), status.total), file=out)
        gone = _gone(status, started, clock)
        key = (status.phase, status.daemon)
        if key != last:
            last = key
            print(phase_line(status), file=out)
        out.flush()
        if gone:
            if status.daemon == "dead":
                print(
                    f"the daemon of {status.run_id} is not running (resume with: "
                    f"expd bakeoff resume {status.run_id})",
                    file=out,
                )
            return status
        sleep(interval)


def _counts(record: AttemptRecord) -> bool:
    """Whether a record counts toward the matrix's progress (replays and cancels do not)."""
    return record.replay_of is None and record.status != "cancelled"
