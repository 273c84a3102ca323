"""The dashboard's top lines: progress, counts, baseline → best, cost, time and a metric sparkline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Sparkline, Static

from shared.display import DASH, better_word, fmt_duration, fmt_num, interval_words
from shared.schema import TERMINAL_PHASES, ResultRecord, RunState
from shared.status import headline_improvement

ETA_WINDOW = 10
"""ETA averages the durations of this many most recent experiments (the agent's pace drifts)."""


def fmt_tokens(tokens: int) -> str:
    if tokens < 1000:
        return str(tokens)
    if tokens < 1_000_000:
        return f"{tokens / 1000:.1f}k"
    return f"{tokens / 1_000_000:.1f}M"


def durations_of(records: Mapping[int, ResultRecord]) -> list[float]:
    """How long each experiment took (wall clock, else agent + measurement), in order."""
    out = []
    for n in sorted(records):
        record = records[n]
        if record.status == "baseline":
            continue
        took = record.finished_at - record.started_at if record.started_at else 0.0
        took = took if took > 0 else record.agent_s + record.measure_s
        if took > 0:
            out.append(took)
    return out


def metrics_of(records: Mapping[int, ResultRecord]) -> list[float]:
    """The sparkline's data: every measured metric, baseline first."""
    return [m for n in sorted(records) if (m := records[n].metric) is not None]


def elapsed_seconds(state: RunState, now: float) -> float | None:
    """Since the run started; a finished run stops counting at its last update."""
    if not state.started_at:
        return None
    end = state.updated_at if state.phase in TERMINAL_PHASES and state.updated_at else now
    return max(end - state.started_at, 0.0)


def eta_seconds(state: RunState, durations: Sequence[float], now: float) -> float | None:
    """Remaining experiments × recent mean duration, minus what the current one already took."""
    if state.phase in TERMINAL_PHASES or not durations:
        return None
    done = state.keeps + state.discards + state.crashes + state.measurement_failures
    remaining = max(state.max_experiments - done, 0)
    recent = durations[-ETA_WINDOW:]
    mean = sum(recent) / len(recent)
    eta = remaining * mean
    if remaining and state.in_flight is not None and state.in_flight.started_at:
        eta -= min(max(now - state.in_flight.started_at, 0.0), mean)
    return max(eta, 0.0)


def progress_line(run_id: str, state: RunState, durations: Sequence[float], now: float) -> Content:
    """The line that moves with the clock: the run, how far it is, how long it took and will take."""
    if state.phase in TERMINAL_PHASES:
        eta_text = "done"
    else:
        eta = eta_seconds(state, durations, now)
        eta_text = DASH if eta is None else f"~{fmt_duration(eta)}"
    return Content.assemble(
        (run_id, "bold"),
        " · experiment ",
        (f"{state.experiment}/{state.max_experiments}", "bold"),
        " · elapsed ",
        (fmt_duration(elapsed_seconds(state, now)), "bold"),
        " · ETA ",
        (eta_text, "bold"),
    )


def counts_line(state: RunState) -> Content:
    parts: list[str | tuple[str, str]] = [
        "keep ",
        (str(state.keeps), "bold $text-success"),
        " · discard ",
        (str(state.discards), "bold"),
        " · crash ",
        (str(state.crashes), "bold $text-error" if state.crashes else "bold"),
    ]
    if state.measurement_failures:
        parts += [" · measure-fail ", (str(state.measurement_failures), "bold $text-warning")]
    parts += [" · ", (f"${state.cost_usd:.2f}", "bold"), f" · {fmt_tokens(state.tokens)} tokens"]
    return Content.assemble(*parts)


def metric_line(state: RunState) -> Content:
    parts: list[str | tuple[str, str]] = [
        (state.metric or "metric", "bold"),
        f" ({state.direction} is better) ",
        (fmt_num(state.baseline), "bold"),
    ]
    if state.best is not None:
        parts += [" → ", (fmt_num(state.best), "bold $text-success")]
        if state.best_experiment is not None:
            parts.append(f" at #{state.best_experiment}")
        pct = headline_improvement(state)
        if pct is not None:
            style = "$text-success" if pct > 0 else "$text-error" if pct < 0 else ""
            ci = interval_words(state.improvement_ci, state.best_runs)
            parts += [" (", (better_word(pct), style), f", {ci})" if ci else ")"]
    return Content.assemble(*parts)


class StatsHeader(Vertical):
    """Three lines; `show` is cheap enough to call on every tick (elapsed and ETA move)."""

    DEFAULT_CSS = """
    StatsHeader {
        height: 3;
        padding: 0 1;
        background: $boost;
    }
    StatsHeader Static {
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    StatsHeader > Horizontal { height: 1; }
    StatsHeader #stats-metric { width: auto; max-width: 75%; }
    StatsHeader Sparkline { width: 1fr; margin-left: 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="stats-progress")
        yield Static(id="stats-counts")
        with Horizontal():
            yield Static(id="stats-metric")
            yield Sparkline([], id="stats-sparkline")

    def show(
        self,
        run_id: str,
        state: RunState,
        metrics: Sequence[float],
        durations: Sequence[float],
        now: float,
    ) -> None:
        self.show_progress(run_id, state, durations, now)
        self.query_one("#stats-counts", Static).update(counts_line(state))
        self.query_one("#stats-metric", Static).update(metric_line(state))
        sparkline = self.query_one(Sparkline)
        if list(sparkline.data or []) != list(metrics):
            sparkline.data = list(metrics)
        sparkline.tooltip = f"{state.metric or 'metric'} of each measured experiment"

    def show_progress(
        self, run_id: str, state: RunState, durations: Sequence[float], now: float
    ) -> None:
        self.query_one("#stats-progress", Static).update(
            progress_line(run_id, state, durations, now)
        )
