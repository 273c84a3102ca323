"""How values read to people, the same in the CLI, the TUI, reports and the daemon's messages."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: this module stays importable without the contract
    from shared.bakeoffs.progress import VariantProgress
    from shared.status import StatusReport

DASH = "—"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters: in an agent's text (a description, an error) a terminal would
obey them, and could be made to redraw a row of results as something else."""


def fmt_num(value: float | None) -> str:
    """Six significant digits, without scientific notation for large values (byte counts)."""
    if value is None:
        return DASH
    text = f"{value:.6g}"
    if "e+" in text and abs(value) < 1e15:
        text = f"{value:.0f}"
    return text


def fmt_pct(value: float | None) -> str:
    return DASH if value is None else f"{value:+.1f}%"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return DASH
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_time(ts: float | None) -> str:
    return DASH if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_clock(ts: float | None = None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def one_line(text: str) -> str:
    """`text` as one line a terminal shows as written: whitespace runs and control characters
    (an escape sequence keeps its visible rest) become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def truncate(text: str, width: int) -> str:
    text = one_line(text)
    if width <= 1:
        return text[: max(width, 0)]
    return text if len(text) <= width else text[: width - 1] + "…"


def better_word(improvement: float | None) -> str:
    if improvement is None:
        return ""
    return f"{abs(improvement):.1f}% {'better' if improvement >= 0 else 'worse'}"


def interval_words(ci: list[float] | None, runs: int | None = None) -> str:
    """`95 % noise interval +1.2 to +7.9 %, 8 runs` for an estimated improvement ("" without
    one). "noise": it holds the run-to-run spread, not a drift of the machine between the
    baseline's runs and now, which no run of the loop can tell from a real change."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    text = f"95 % noise interval {ci[0]:+.1f} to {ci[1]:+.1f} %"
    if runs is not None:
        text += f", {runs} run{'s' if runs != 1 else ''}" if runs else ", estimated at its keep"
    return text


def headline_words(improvement: float | None, ci: list[float] | None, runs: int | None) -> str:
    """`20.0% better, 95 % noise interval +15.1 to +24.6 %, 8 runs`: the estimate and its
    interval."""
    words = better_word(improvement)
    extra = interval_words(ci, runs)
    return f"{words}, {extra}" if words and extra else words


def drift_line(drift: str, at: int | None) -> str:
    """`drift at #N: …`, the same words in the status, the TUI and the daemon's message."""
    if not drift:
        return ""
    return f"drift at #{at}: {drift}" if at is not None else f"drift: {drift}"


def progress_of(s: StatusReport) -> str:
    """`7/20`: the experiment reached out of the run's maximum."""
    return f"{s.experiment}/{s.max_experiments}"


def metric_line(s: StatusReport) -> str:
    """`score (lower is better): baseline 10 → best 8 at #5 (20.0% better)`."""
    name = s.metric or "metric"
    text = f"{name} ({s.direction} is better): baseline {fmt_num(s.baseline)}"
    if s.best is not None:
        at = f" at #{s.best_experiment}" if s.best_experiment is not None else ""
        text += f" → best {fmt_num(s.best)}{at}"
        if s.improvement_pct is not None:
            text += f" ({headline_words(s.improvement_pct, s.improvement_ci, s.best_runs)})"
    return text


SANDBOX_WORDS = {
    "bwrap": "bwrap — the agent writes only its tree and sees neither your repository, the "
    "program, the run nor other processes",
    "landlock": "landlock — the agent writes only its tree (it can still read your files)",
    "none": "UNCONFINED — the agent runs with all your permissions ([agent] sandbox, "
    "see docs/security.md)",
}


MEASURE_WORDS = {
    "bwrap": "bwrap — the measured code writes only its tree and sees neither your repository, "
    "the run nor other processes",
    "landlock": "landlock — the measured code writes only its tree (it can still read your files)",
    "none": "UNCONFINED — the measured code (the agent's commits) runs with all your permissions "
    "([measure] sandbox, see docs/security.md)",
}


def measure_sandbox_line(sandbox: str | None) -> str:
    """What confines the run's build and measurement, for people; "" for older runs."""
    if not sandbox:
        return ""
    return MEASURE_WORDS.get(sandbox, sandbox)


def sandbox_line(sandbox: str | None, *, bakeoff: bool = False) -> str:
    """What confines the run's agent, for people; "" for runs that predate the record of it.
    A bakeoff's agents are hidden the bakeoff (its criteria) instead of a program."""
    if not sandbox:
        return ""
    words = SANDBOX_WORDS.get(sandbox, sandbox)
    if bakeoff:
        words = words.replace("the program, the run", "the bakeoff, the run, other attempts")
    return words


PROGRESS_COLUMNS = (
    "variant",
    "done",
    "running",
    "passed",
    "failed",
    "errors",
    "rate",
    "cost",
    "mean",
    "ETA",
)
"""A bakeoff's per-variant progress table, the same in the TUI and `expd status` (errors
counts errors and timeouts)."""


def progress_cells(row: VariantProgress) -> tuple[str, ...]:
    """One variant's row as people read it, in `PROGRESS_COLUMNS` order."""
    rate = DASH if row.success_rate is None else f"{row.success_rate:.0%}"
    if row.eta_s is None:
        eta = DASH
    elif row.done >= row.total:
        eta = "done"
    else:
        eta = "~" + fmt_duration(row.eta_s)
    return (
        row.variant,
        f"{row.done}/{row.total}",
        str(row.running),
        str(row.passed),
        str(row.failed),
        str(row.errors),
        rate,
        f"${row.cost_usd:.2f}",
        fmt_duration(row.mean_duration_s),
        eta,
    )
