"""The dashboard of one run: it reacts to messages from its source and sends control requests.

It never reads run files itself (its source does, and posts what it read), never drives the loop,
and leaving it (q) leaves the daemon running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer

from shared.runs import RunRef
from shared.schema import PHASES, TERMINAL_PHASES, ResultRecord, RunManifest, RunState
from tui.messages import (
    ExperimentLoaded,
    LivenessChanged,
    LogAppended,
    ResultsAppended,
    RunOpened,
    SourceProblem,
    StateChanged,
)
from tui.screens.help import HelpScreen
from tui.screens.run_commands import RunCommands
from tui.screens.run_controls import ABORT_TIMEOUT_S, Kill, RunControls
from tui.widgets import (
    AgentLog,
    ArmsPanel,
    ExperimentDetail,
    LanesStrip,
    PhaseBar,
    ResultsTable,
    StatsHeader,
)
from tui.widgets.arms_panel import declared_arms
from tui.widgets.stats_header import durations_of, metrics_of

if TYPE_CHECKING:
    from tui.source import Source

TICK_S = 0.25
"""Spinner, elapsed time and ETA move on this timer; everything else moves on messages."""

END_SEVERITY: dict[str, SeverityLevel] = {
    "stopped": "information",
    "max_experiments": "information",
    "stagnation": "information",
    "budget": "information",
}


class RunScreen(RunControls, Screen[None]):
    """Layout: stats header, phase bar, the lanes (in a run with lanes), the arms (in a run with
    arms), results + experiment detail, live agent stream, footer."""

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (120, "-wide"),
    ]
    COMMANDS: ClassVar = {RunCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("a", "abort", "Abort"),
        Binding("g", "guidance", "Guidance"),
        Binding("m", "max_experiments", "Max exp"),
        Binding("K", "kill", "Kill"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "detach", "Detach"),
        Binding("escape", "live", "Live stream"),
    ]

    def __init__(
        self,
        ref: RunRef,
        source: Source,
        *,
        clock: Callable[[], float] = time.time,
        abort_timeout: float = ABORT_TIMEOUT_S,
        kill: Kill = os.kill,
    ) -> None:
        super().__init__()
        self.ref = ref
        self.source = source
        self.clock = clock
        self.manifest = RunManifest()
        self.state: RunState | None = None
        self.opened = False
        self.metric_series: list[float] = []
        self.durations: list[float] = []
        self.init_controls(abort_timeout=abort_timeout, kill=kill)
        self.view.run_id = ref.run_id

    # ------------------------------------------------------------------ layout and lifetime

    def compose(self) -> ComposeResult:
        yield StatsHeader(id="stats")
        yield PhaseBar(id="phase")
        yield LanesStrip(id="lanes")
        yield ArmsPanel(id="arms")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield ResultsTable(id="results")
                yield ExperimentDetail(id="detail")
            yield AgentLog(id="agent")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ResultsTable).border_title = "results"
        self.refresh_all()
        self.set_interval(TICK_S, self.tick)
        self.source.attach(self)

    def on_unmount(self) -> None:
        self.source.detach()

    def tick(self) -> None:
        now = self.clock()
        self.query_one(PhaseBar).tick(now)
        self.query_one(LanesStrip).tick(now)
        self.query_one(StatsHeader).show_progress(
            self.ref.run_id, self.header_state(), self.durations, now
        )

    # ------------------------------------------------------------------ what the header shows

    def header_state(self) -> RunState:
        """The state, or before the daemon wrote one, what the manifest already tells."""
        if self.state is not None:
            return self.state
        config = self.manifest.config or {}
        return RunState(
            run_id=self.manifest.run_id,
            max_experiments=self.manifest.max_experiments,
            metric=str(config.get("metric", "")),
            direction=str(config.get("direction", "lower")),
            started_at=self.manifest.created_at,
            arm_stats=declared_arms(config),
        )

    def add_results(self, records: list[ResultRecord]) -> None:
        table = self.query_one(ResultsTable)
        if any(r.arm for r in records):
            table.show_arms()
        if any(r.lane is not None for r in records):
            table.show_lanes()
        table.add_results(records)
        self.metric_series = metrics_of(table.records)
        self.durations = durations_of(table.records)

    def refresh_all(self) -> None:
        now = self.clock()
        state = self.header_state()
        self.query_one(StatsHeader).show(
            self.ref.run_id, state, self.metric_series, self.durations, now
        )
        ended = (state.updated_at or None) if state.phase in TERMINAL_PHASES else None
        self.query_one(LanesStrip).show(state.lanes, now, frozen_at=ended)
        self.query_one(ArmsPanel).show(state.arm_stats, self.manifest.config)
        if state.arm_stats:
            self.query_one(ResultsTable).show_arms()
        self.refresh_phase()

    def refresh_phase(self) -> None:
        self.view.state = self.state
        self.view.requested = list(self.requested.values())
        self.query_one(PhaseBar).show(self.view, self.clock())
        self.refresh_bindings()

    # ------------------------------------------------------------------ messages from the source

    def on_run_opened(self, message: RunOpened) -> None:
        message.stop()
        self.manifest = message.manifest
        if message.state is not None and message.state.phase not in PHASES:
            self.newer_version(f"unknown phase {message.state.phase!r}")
        else:
            self.state = message.state
        self.opened = True
        self.add_results(message.results)
        self.refresh_all()

    def on_state_changed(self, message: StateChanged) -> None:
        message.stop()
        state = message.state
        if state.phase not in PHASES:
            self.newer_version(f"unknown phase {state.phase!r}")
            return
        before = self.state
        self.state = state
        if not self.view.newer_version:
            self.view.problem = None  # a passing problem (a torn read) was already notified
        self.collect_acks(state)
        was_finished = before is not None and before.phase in TERMINAL_PHASES
        if self.opened and not was_finished and state.phase in TERMINAL_PHASES:
            self.notify_end(state)
        self.refresh_all()

    def on_results_appended(self, message: ResultsAppended) -> None:
        message.stop()
        self.add_results(message.results)
        self.refresh_all()

    def on_log_appended(self, message: LogAppended) -> None:
        message.stop()
        self.query_one(AgentLog).append(message.experiment, message.lines, reset=message.reset)

    def on_liveness_changed(self, message: LivenessChanged) -> None:
        message.stop()
        self.view.probe = message.probe
        self.view.probe_at = self.clock()
        self.refresh_phase()

    def on_source_problem(self, message: SourceProblem) -> None:
        message.stop()
        if message.newer_version:
            self.newer_version(message.text)
            return
        self.view.problem = message.text
        self.notify(message.text, title="run files", severity="warning")
        self.refresh_phase()

    def newer_version(self, text: str) -> None:
        """Show what this expd can, say why not the rest, and send nothing to a daemon it misreads."""
        self.view.newer_version = True
        self.view.problem = text
        self.refresh_phase()

    def notify_end(self, state: RunState) -> None:
        reason = state.termination_reason or state.phase
        severity: SeverityLevel = "warning"  # aborted, agent unavailable: worth a look
        if state.phase == "crashed" or reason == "error":
            severity = "error"
        else:
            severity = END_SEVERITY.get(reason, severity)
        note = f"\n{state.message}" if state.message else ""
        self.notify(
            f"{self.ref.run_id} ended: {reason}{note}",
            title=f"run {state.phase}",
            severity=severity,
            timeout=15,
        )

    # ------------------------------------------------------------------ selection

    def on_results_table_experiment_selected(
        self, message: ResultsTable.ExperimentSelected
    ) -> None:
        record = self.query_one(ResultsTable).records.get(message.experiment)
        if record is None:
            return
        detail = self.query_one(ExperimentDetail)
        if detail.experiment != record.experiment:
            detail.show(record)
            self.source.load_experiment(record.experiment)
        if message.opened:
            self.add_class("-detail")
            self.refresh_bindings()

    def on_experiment_loaded(self, message: ExperimentLoaded) -> None:
        message.stop()
        self.query_one(ExperimentDetail).show_files(message.experiment, message.patch, message.log)

    def action_live(self) -> None:
        self.remove_class("-detail")
        self.refresh_bindings()

    # ------------------------------------------------------------------ other keys

    def action_detach(self) -> None:
        self.app.exit()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "live":
            return self.has_class("-detail") and self.has_class("-narrow")
        return self.check_control(action)
