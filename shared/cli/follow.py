"""Following a live run in plain text: `status --watch`, `start --attach` and `demo`.

Each tick reads the small status files (constant time) and only the bytes appended to
`results.jsonl` since the last tick, so following a run of ten thousand results costs the same as
following a fresh one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from shared import display
from shared.cli import render
from shared.runs import RunRef
from shared.schema import ResultRecord
from shared.status import StatusReport, build_status
from shared.tail import TailReader, end_of_last_line, last_lines

_decoder = msgspec.json.Decoder(ResultRecord)

STARTUP_GRACE_S = 15.0
"""How long a freshly started run may show no daemon before following gives up on it."""


def decode_result(line: bytes) -> ResultRecord | None:
    """One results line, or None if it cannot be read (a reader never crashes on one bad line)."""
    try:
        return _decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def decode_results(lines: list[bytes]) -> tuple[list[ResultRecord], int]:
    """Decoded records and how many lines were unreadable."""
    records = [decode_result(line) for line in lines]
    good = [r for r in records if r is not None]
    return good, len(records) - len(good)


class ResultTail:
    """New result records since the last call, by byte offset."""

    def __init__(self, path: Path, *, from_start: bool = True) -> None:
        self.reader = TailReader(path, 0 if from_start else end_of_last_line(path))

    def new(self) -> list[ResultRecord]:
        return decode_results(self.reader.read_lines())[0]


def _gone(status: StatusReport, started: float, clock: Callable[[], float]) -> bool:
    """The daemon will not write anything more (a just-started run gets a grace period)."""
    if status.daemon == "finished":
        return True
    if status.daemon != "dead":
        return False
    fresh = status.updated_at is None and clock() - started < STARTUP_GRACE_S
    return not fresh


def follow_progress(
    ref: RunRef,
    out: TextIO,
    *,
    interval: float = 1.0,
    from_start: bool = True,
    transient: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StatusReport:
    """A line per new result and per phase change until the daemon is gone; the final status.

    On a terminal (`transient`) the phase line is redrawn in place under the results, so fast
    experiments do not bury the results under phase lines; elsewhere every change is a line.
    """
    transient = out.isatty() if transient is None else transient
    tail = ResultTail(ref.paths.results, from_start=from_start)
    started = clock()
    first_baseline: float | None = None
    last_key: tuple[Any, ...] | None = None
    pending_line = ""
    while True:
        status = build_status(ref.paths, run_id=ref.run_id)
        records = tail.new()
        if records and pending_line:
            out.write("\r\x1b[K")
            pending_line = ""
        for rec in records:
            if rec.status == "baseline" and first_baseline is None:
                first_baseline = rec.metric
            baseline = first_baseline if first_baseline is not None else status.baseline
            print(render.result_line(rec, baseline), file=out)
        key = (status.phase, status.experiment, status.daemon, status.detail)
        gone = _gone(status, started, clock)
        if key != last_key or (records and transient):
            last_key = key
            line = render.progress_line(status)
            if transient and not gone:
                out.write(f"\r\x1b[K{line}")
                pending_line = line
            else:
                out.write(f"\r\x1b[K{line}\n" if pending_line else f"{line}\n")
                pending_line = ""
        out.flush()
        if gone:
            if pending_line:
                out.write("\n")
            if status.daemon == "dead":
                print(render.alert(status), file=out)
            return status
        sleep(interval)


CLEAR = "\x1b[H\x1b[2J"


def watch_screen(
    ref: RunRef,
    out: TextIO,
    *,
    interval: float = 1.0,
    recent: int = 10,
    sleep: Callable[[float], None] = time.sleep,
) -> StatusReport:
    """Redraw the status and the latest results every `interval` until the daemon is gone."""
    tail = ResultTail(ref.paths.results, from_start=False)
    shown: deque[ResultRecord] = deque(
        decode_results(last_lines(ref.paths.results, recent))[0], maxlen=recent
    )
    width = render.terminal_width(out)
    while True:
        status = build_status(ref.paths, run_id=ref.run_id)
        # A result appended between the two reads above is in both: numbers only grow.
        newest = shown[-1].experiment if shown else -1
        shown.extend(rec for rec in tail.new() if rec.experiment > newest)
        table = render.results_table(list(shown), status.baseline, width)
        gone = status.daemon in ("finished", "dead")
        footer = (
            ""
            if gone
            else f"\n\n[{display.fmt_clock()}] refreshing every {interval:g}s — Ctrl-C to quit"
        )
        out.write(f"{CLEAR}{render.status_text(status)}\n\n{table}{footer}\n")
        out.flush()
        if gone:
            return status
        sleep(interval)
