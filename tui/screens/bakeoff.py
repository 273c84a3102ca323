"""The dashboard of one bakeoff run: the tasks × variants grid, per-variant progress, and the
selected attempt (its live agent stream, then its criteria and patch).

Like the run dashboard it reacts to messages from its source and never reads run files; stop and
abort are `control.json` requests sent from a thread worker after a confirmation, shown as
"requested…" until the daemon acknowledges them. Leaving it (q) leaves the daemon running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from shared.bakeoffs.progress import overall_eta, variant_progress
from shared.bakeoffs.schema import (
    AttemptRecord,
    BakeoffManifest,
    BakeoffState,
    RunningAttempt,
    attempt_key,
)
from shared.display import fmt_duration
from shared.liveness import Probe
from shared.runs import RunRef
from shared.schema import TERMINAL_PHASES
from tui.bakeoff_messages import (
    AttemptFilesLoaded,
    AttemptLogAppended,
    AttemptsUpdated,
    BakeoffOpened,
    BakeoffStateChanged,
)
from tui.bakeoff_source import BakeoffSourceLike, split_key
from tui.messages import LivenessChanged, SourceProblem
from tui.screens.bakeoff_controls import BakeoffControls
from tui.widgets.attempt_detail import AttemptDetail
from tui.widgets.bakeoff_grid import BakeoffGrid, Cell
from tui.widgets.variant_progress import VariantProgressTable

TICK_S = 1.0
"""Elapsed time and a running attempt's age move on this timer; the rest moves on messages."""


class BakeoffScreen(BakeoffControls, Screen[None]):
    """Layout: header, then the grid over the progress table beside the selected attempt."""

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (120, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("a", "abort", "Abort"),
        Binding("q", "detach", "Detach"),
    ]

    def __init__(
        self, ref: RunRef, source: BakeoffSourceLike, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.ref = ref
        self.source = source
        self.clock = clock
        self.manifest = BakeoffManifest()
        self.state: BakeoffState | None = None
        self.probe: Probe | None = None
        self.records: dict[str, AttemptRecord] = {}
        self.running: dict[str, RunningAttempt] = {}
        self.extra: dict[tuple[str, str], int] = {}
        """Cells with attempts past the spec's (replays): the highest attempt number."""
        self.spec_variants: set[str] = set()
        self.selected: str | None = None
        self.requested: dict[str, str] = {}
        self.problem: str | None = None
        self.newer_version = False
        self.opened = False

    def compose(self) -> ComposeResult:
        yield Static("", id="bk-header")
        with Horizontal(id="bk-body"):
            with Vertical(id="bk-left"):
                yield BakeoffGrid(id="bk-grid")
                yield VariantProgressTable(id="bk-progress")
            yield AttemptDetail(id="bk-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(BakeoffGrid).border_title = "tasks × variants"
        self.query_one(BakeoffGrid).focus()
        self.refresh_header()
        self.set_interval(TICK_S, self.tick)
        self.source.attach(self)

    def on_unmount(self) -> None:
        self.source.detach()

    def tick(self) -> None:
        self.refresh_header()
        if self.selected in self.running:
            self.show_selected()

    # ------------------------------------------------------------------ the matrix

    @property
    def finished(self) -> bool:
        daemon_done = self.probe is not None and self.probe.daemon == "finished"
        return daemon_done or (self.state is not None and self.state.phase in TERMINAL_PHASES)

    def cell_of(self, task: str, variant: str) -> Cell:
        count = max(self.manifest.spec.attempts, self.extra.get((task, variant), 0))
        out = []
        for n in range(1, count + 1):
            key = attempt_key(task, variant, n)
            record = self.records.get(key)
            if key in self.running:
                out.append("running")
            elif record is not None and record.status:
                out.append(record.status)
            else:
                out.append("pending")
        return tuple(out)

    def extend_matrix(self, tasks: list[str], variants: list[str]) -> None:
        """The spec's tasks and variants, then any a record or a replay brings (a replay may run
        as a variant of the bakeoff's current bakeoff.toml, not of the run's)."""
        for task, variant in self.extra:
            if task not in tasks:
                tasks.append(task)
            if variant not in variants:
                variants.append(variant)
        self.query_one(BakeoffGrid).set_matrix(tasks, variants)

    def repaint(self, keys: Iterable[str]) -> None:
        """Recompute the cells of these attempts, the progress table and the header."""
        cells = {split_key(key)[:2] for key in keys}
        grid = self.query_one(BakeoffGrid)
        known = set(grid.variants)
        if self.opened and any(v not in known or not grid.has_row(t) for t, v in cells):
            self.extend_matrix(grid.row_keys, list(grid.variants))
        grid.update_cells((t, v, self.cell_of(t, v)) for t, v in cells)
        self.refresh_progress()
        self.refresh_header()

    def note_attempt(self, task: str, variant: str, attempt: int) -> None:
        if attempt > self.manifest.spec.attempts or variant not in self.spec_variants:
            cell = (task, variant)
            self.extra[cell] = max(self.extra.get(cell, 0), attempt)

    def add_records(self, records: list[AttemptRecord]) -> list[str]:
        for record in records:
            self.records[record.key] = record
            self.note_attempt(record.task, record.variant, record.attempt)
        return [r.key for r in records]

    def set_state(self, state: BakeoffState | None) -> list[str]:
        """Take a new state; the attempts whose cells may change (started, ended, replays asked)."""
        self.state = state
        before = set(self.running)
        self.running = {r.key: r for r in state.running} if state is not None else {}
        replays = state.replays if state is not None else []
        for r in [*self.running.values(), *replays]:
            self.note_attempt(r.task, r.variant, r.attempt)
        asked = {attempt_key(r.task, r.variant, r.attempt) for r in replays}
        return sorted((before ^ set(self.running)) | asked)

    def refresh_progress(self) -> None:
        counts: dict[str, int] = {}
        for r in self.running.values():
            counts[r.variant] = counts.get(r.variant, 0) + 1
        rows = variant_progress(self.manifest.spec, list(self.records.values()), counts)
        self.query_one(VariantProgressTable).show(rows)

    # ------------------------------------------------------------------ the header

    def header_text(self) -> str:
        spec, st = self.manifest.spec, self.state
        phase = st.phase if st is not None else "starting"
        detail = f" — {st.detail}" if st is not None and st.detail else ""
        daemon = self.probe.daemon if self.probe is not None else "…"
        first = f"{self.ref.run_id} · bakeoff · {phase}{detail} · daemon {daemon}"
        matrix = [
            r for r in self.records.values() if r.replay_of is None and r.status != "cancelled"
        ]
        count = {s: sum(1 for r in matrix if r.status == s) for s in ("passed", "failed")}
        bad = {s: sum(1 for r in matrix if r.status == s) for s in ("error", "timeout")}
        cost = st.cost_usd if st is not None else sum(r.cost_usd for r in self.records.values())
        budget = f" of ${spec.max_cost_usd:.2f}" if spec.max_cost_usd is not None else ""
        started = (st.started_at if st is not None else 0.0) or self.manifest.created_at
        words = [
            f"attempts {len(matrix)}/{spec.total()}",
            f"{len(self.running)} running",
            f"✓ {count['passed']}  ✗ {count['failed']}  E {bad['error']}  T {bad['timeout']}",
            f"${cost:.2f}{budget}",
        ]
        if started:
            words.append(f"elapsed {fmt_duration(self.clock() - started)}")
        if daemon in ("running", "starting"):
            rows = self.query_one(VariantProgressTable).rows_shown
            eta = overall_eta(rows, spec.concurrency)
            if eta:
                words.append(f"ETA ~{fmt_duration(eta)}")
        lines = [first, " · ".join(words)]
        notes = [f"{label} requested…" for label in self.requested.values()]
        if st is not None and phase in TERMINAL_PHASES:
            notes.append(f"ended: {st.termination_reason or phase}")
        if daemon == "dead" and not self.finished:
            notes.append(f"daemon is dead — resume with: expd bakeoff resume {self.ref.run_id}")
        if daemon == "hung":
            notes.append("daemon is unresponsive (see daemon.log)")
        if st is not None and st.message:
            notes.append(st.message)
        if self.problem:
            notes.append(self.problem)
        if notes:
            lines.append(" · ".join(notes))
        return "\n".join(lines)

    def refresh_header(self) -> None:
        self.query_one("#bk-header", Static).update(self.header_text())

    # ------------------------------------------------------------------ messages from the source

    def on_bakeoff_opened(self, message: BakeoffOpened) -> None:
        message.stop()
        self.manifest = message.manifest
        spec = self.manifest.spec
        self.spec_variants = {v.id for v in spec.variants}
        self.set_state(message.state)
        self.add_records(message.records)
        self.opened = True
        grid = self.query_one(BakeoffGrid)
        with self.app.batch_update():
            self.extend_matrix([t.id for t in spec.tasks], [v.id for v in spec.variants])
            tasks, variants = grid.row_keys, grid.variants
            grid.update_cells((t, v, self.cell_of(t, v)) for t in tasks for v in variants)
            self.refresh_progress()
            self.refresh_header()
        if self.selected is not None:
            self.show_selected(load=True)

    def on_bakeoff_state_changed(self, message: BakeoffStateChanged) -> None:
        message.stop()
        was_finished = self.finished
        changed = self.set_state(message.state)
        self.collect_acks(message.state)
        self.repaint(changed)
        if self.selected in changed:
            self.show_selected(load=True)
        if self.opened and not was_finished and self.finished:
            st = message.state
            self.notify(
                f"{self.ref.run_id} ended: {st.termination_reason or st.phase}",
                title=f"bakeoff {st.phase}",
                severity="error" if st.phase == "crashed" else "information",
                timeout=15,
            )

    def on_attempts_updated(self, message: AttemptsUpdated) -> None:
        message.stop()
        keys = self.add_records(message.records)
        self.repaint(keys)
        if self.selected in keys:
            self.show_selected(load=True)

    def on_attempt_log_appended(self, message: AttemptLogAppended) -> None:
        message.stop()
        self.query_one(AttemptDetail).append_log(message.key, message.lines, reset=message.reset)

    def on_attempt_files_loaded(self, message: AttemptFilesLoaded) -> None:
        message.stop()
        self.query_one(AttemptDetail).show_files(message.key, message.patch, message.criteria_log)

    def on_liveness_changed(self, message: LivenessChanged) -> None:
        message.stop()
        self.probe = message.probe
        self.refresh_header()
        self.refresh_bindings()

    def on_source_problem(self, message: SourceProblem) -> None:
        message.stop()
        self.problem = message.text
        self.newer_version = self.newer_version or message.newer_version
        if not message.newer_version:
            self.notify(message.text, title="run files", severity="warning")
        self.refresh_header()
        self.refresh_bindings()

    # ------------------------------------------------------------------ selection

    def on_bakeoff_grid_attempt_selected(self, message: BakeoffGrid.AttemptSelected) -> None:
        message.stop()
        key = attempt_key(message.task, message.variant, message.attempt)
        if key != self.selected or message.opened:
            self.selected = key
            self.source.follow(key)
            self.show_selected(load=True)

    def show_selected(self, *, load: bool = False) -> None:
        key = self.selected
        if key is None:
            return
        record = self.records.get(key) if key not in self.running else None
        self.query_one(AttemptDetail).show(key, record, self.running.get(key), self.clock())
        if load and record is not None:
            self.source.load_attempt(key)

    # ------------------------------------------------------------------ detach

    def action_detach(self) -> None:
        self.app.exit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "abort") and (self.finished or self.newer_version):
            return None  # shown disabled: there is no daemon to listen
        return True
