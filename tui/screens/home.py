"""Home: the repository's programs and bakeoffs and their runs, and the run queue under them,
refreshed from the run files every two seconds.

The listing is read by a `ListingSource` in a thread worker (a few small files per run, never
`results.jsonl`) and reconciled into the table by row key: changed cells are updated in place, so
nothing flickers and the cursor stays where the user left it. Starting and resuming runs go through
the headless CLI in a subprocess, exactly as `expd start` and `expd resume` do; this screen never
imports `daemon`. Opening a run is the app's business: the screen posts `RunChosen`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import msgspec
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from shared.bakeoffs.paths import BakeoffPaths
from shared.listing import BakeoffListing, ProgramListing, UnreadableRun
from shared.paths import RepoPaths
from shared.runs import RunRef
from shared.status import StatusReport
from tui.messages import ProgramsListed
from tui.queue_source import QueueListed, QueueSource
from tui.reads import ListingSource
from tui.screens.home_delete import RunDeleted, ask_to_delete, ask_to_delete_program
from tui.screens.home_delete import report as report_deleted
from tui.screens.home_queue import QueueAdded, queue_program
from tui.screens.home_queue import report as report_queued
from tui.screens.home_rows import (
    BAKEOFF,
    BAKEOFF_RUN,
    COLUMNS,
    EMPTY,
    bakeoff_detail,
    bakeoff_rows,
    bakeoff_status,
    is_header,
    program_detail,
    rows_of,
    styled,
)
from tui.screens.new_program import NewProgram, NewProgramScreen
from tui.screens.new_run import NewRun, NewRunScreen
from tui.widgets.queue_panel import QueuePanel

REFRESH_S = 2.0


class HomeScreen(Screen[None]):
    """Programs, bakeoffs and runs; enter opens a run, n starts one, r resumes a dead one, d
    deletes one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run", "Open", show=True),
        Binding("n", "new_run", "New run"),
        Binding("r", "resume_run", "Resume"),
        Binding("i", "new_program", "New program"),
        Binding("d", "delete_run", "Delete"),
        Binding("e", "queue_program", "Queue"),
        Binding("q", "quit", "Quit"),
    ]

    class RunChosen(Message):
        """The user chose a run to watch (or started one): the app opens its dashboard."""

        def __init__(self, ref: RunRef) -> None:
            super().__init__()
            self.ref = ref

    class Launched(Message):
        """A `start`/`resume` subprocess finished (successfully or not)."""

        def __init__(
            self, what: str, code: int, stdout: str, stderr: str, kind: str = "program"
        ) -> None:
            super().__init__()
            self.what, self.code, self.stdout, self.stderr = what, code, stdout, stderr
            self.kind = kind

    def __init__(self, repo: Path) -> None:
        super().__init__()
        self.repo = repo
        self.source = ListingSource(repo)
        self.queue_source = QueueSource(repo)
        self._queue_problem = ""
        self.programs: dict[str, ProgramListing] = {}
        self.statuses: dict[str, StatusReport | UnreadableRun] = {}
        self.max_experiments: dict[str, int] = {}
        self.bakeoffs: dict[str, BakeoffListing] = {}
        self._cells: dict[str, tuple[str, ...]] = {}
        self._order: list[str] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(EMPTY, id="home-empty")
        table: DataTable[Text] = DataTable(id="home-runs", cursor_type="row")
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table
        yield QueuePanel(id="home-queue")
        yield Static("", id="home-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.repo)
        self.query_one("#home-empty").display = False
        self.refresh_listing()
        self.set_interval(REFRESH_S, self.refresh_listing)

    def on_screen_resume(self) -> None:
        self.refresh_listing()

    # ------------------------------------------------------------------ reading

    def refresh_listing(self) -> None:
        self.source.refresh(self)
        self.queue_source.refresh(self)

    def on_queue_listed(self, message: QueueListed) -> None:
        message.stop()
        self.query_one("#home-queue", QueuePanel).show(message.queue)
        if message.problem and message.problem != self._queue_problem:  # once, not every 2 s
            self.notify(f"queue: {message.problem}", severity="warning", timeout=8)
        self._queue_problem = message.problem

    def on_programs_listed(self, message: ProgramsListed) -> None:
        message.stop()
        self.loaded = True
        self.programs = {p.program: p for p in message.programs}
        self.statuses = {s.run_id: s for p in message.programs for s in p.runs}
        self.max_experiments = message.max_experiments
        self.bakeoffs = {b.bakeoff: b for b in message.bakeoffs}
        table = self.query_one("#home-runs", DataTable)
        anything = bool(message.programs or message.bakeoffs)
        self.query_one("#home-empty").display = not anything
        table.display = anything
        rows = rows_of(message.programs) + bakeoff_rows(message.bakeoffs)
        with self.app.batch_update():
            self._reconcile(table, rows)
        self._show_detail()

    def _reconcile(self, table: DataTable[Text], rows: list[tuple[str, tuple[str, ...]]]) -> None:
        """Same rows in the same order: update changed cells only. Else rebuild, keep the cursor."""
        keys = [key for key, _ in rows]
        if keys == self._order:
            for key, cells in rows:
                old = self._cells.get(key, ())
                for col, value in enumerate(cells):
                    if col >= len(old) or old[col] != value:
                        table.update_cell(key, COLUMNS[col], styled(col, value, is_header(key)))
        else:
            current = self.selected_key()
            table.clear()
            for key, cells in rows:
                header = is_header(key)
                table.add_row(*(styled(c, v, header) for c, v in enumerate(cells)), key=key)
            self._order = keys
            if current in keys:
                table.move_cursor(row=keys.index(current), animate=False)
            else:  # the newest run of the first program that has one
                runs = [i for i, key in enumerate(keys) if not is_header(key)]
                table.move_cursor(row=runs[0] if runs else 0, animate=False)
        self._cells = dict(rows)

    # ------------------------------------------------------------------ selection

    def selected_key(self) -> str | None:
        table = self.query_one("#home-runs", DataTable)
        if not self._order or not 0 <= table.cursor_row < len(self._order):
            return None
        return self._order[table.cursor_row]

    def selected_program(self) -> str | None:
        key = self.selected_key()
        if key is None or key.startswith((BAKEOFF, BAKEOFF_RUN)):
            return None
        return key.removeprefix("program:").partition("/")[0]

    def selected_bakeoff(self) -> str | None:
        key = self.selected_key()
        if key is None or not key.startswith((BAKEOFF, BAKEOFF_RUN)):
            return None
        return key.removeprefix(BAKEOFF).removeprefix(BAKEOFF_RUN).partition("/")[0]

    def selected_run(self) -> RunRef | None:
        key = self.selected_key()
        if key is None or is_header(key):
            return None
        if key.startswith(BAKEOFF_RUN):
            return self.ref_of(key.removeprefix(BAKEOFF_RUN), "bakeoff")
        return self.ref_of(key, "program")

    def ref_of(self, run_id: str, kind: str) -> RunRef:
        owner, _, stamp = run_id.partition("/")
        if kind == "bakeoff":
            paths = BakeoffPaths(self.repo, owner).run(stamp)
            return RunRef(owner, stamp, paths, self.repo, "bakeoff")
        return RunRef(owner, stamp, RepoPaths(self.repo).program(owner).run(stamp), self.repo)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        key = self.selected_key()
        detail = self.query_one("#home-detail", Static)
        if key is None:
            detail.update("")
        elif key.startswith((BAKEOFF, BAKEOFF_RUN)):
            detail.update(bakeoff_detail(key, self.bakeoffs))
        else:
            detail.update(program_detail(key, self.programs, self.statuses))

    # ------------------------------------------------------------------ actions

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        ref = self.selected_run()
        if ref is None:
            if self.selected_program():
                self.notify("select a run to open it, or press n to start one")
            return
        self.post_message(self.RunChosen(ref))

    def action_new_run(self) -> None:
        bakeoff = self.selected_bakeoff()
        if bakeoff is not None:
            self._new_bakeoff_run(bakeoff)
            return
        name = self.selected_program()
        if name is None or name not in self.programs:
            self.notify("no program selected (create one with: expd init NAME …)")
            return
        p = self.programs[name]
        if p.error:
            self.notify(f"{name} is invalid: {p.error}", severity="error", timeout=8)
            return
        screen = NewRunScreen(name, self.max_experiments.get(name) or 20, p.agent or "command")
        self.app.push_screen(screen, self._new_run_chosen)

    def _new_run_chosen(self, choice: NewRun | None) -> None:
        if choice is None:
            return
        argv = ["start", choice.program, "--json", "--max-experiments", str(choice.max_experiments)]
        self._launch(f"starting a run of {choice.program}", [*argv, "--agent", choice.agent])

    def _new_bakeoff_run(self, name: str) -> None:
        b = self.bakeoffs.get(name)
        if b is not None and b.error:
            self.notify(f"{name} is invalid: {b.error}", severity="error", timeout=8)
            return
        self._launch(f"starting a run of bakeoff {name}", ["bakeoff", "start", name, "--json"])

    def action_resume_run(self) -> None:
        ref = self.selected_run()
        if ref is None:
            self.notify("select a run to resume")
            return
        status = (
            bakeoff_status(ref.run_id, self.bakeoffs)
            if ref.is_bakeoff
            else self.statuses.get(ref.run_id)
        )
        daemon = None if isinstance(status, UnreadableRun | None) else status.daemon
        if daemon != "dead":
            self.notify(f"{ref.run_id} is {daemon}: only a dead run can be resumed")
            return
        argv = ["resume", ref.run_id, "--json"]
        self._launch(f"resuming {ref.run_id}", ["bakeoff", *argv] if ref.is_bakeoff else argv)

    def action_delete_run(self) -> None:
        ref = self.selected_run()
        program = self.selected_program()
        if ref is None and program in self.programs:
            runs = self.programs[program].runs
            ask_to_delete_program(self, self.repo, program, runs)
            return
        status = None
        if ref is not None:
            status = (
                bakeoff_status(ref.run_id, self.bakeoffs)
                if ref.is_bakeoff
                else self.statuses.get(ref.run_id)
            )
        ask_to_delete(self, self.repo, ref, status)

    def action_queue_program(self) -> None:
        name = self.selected_program()
        if name is None or name not in self.programs:
            self.notify("select a program to queue a run of it")
            return
        if self.programs[name].error:
            self.notify(f"{name} is invalid: {self.programs[name].error}", severity="error")
            return
        queue_program(self, self.repo, name)

    def on_queue_added(self, message: QueueAdded) -> None:
        message.stop()
        report_queued(self, message.result)
        self.refresh_listing()

    def on_run_deleted(self, message: RunDeleted) -> None:
        message.stop()
        report_deleted(self, message)
        self.refresh_listing()

    def action_new_program(self) -> None:
        self.app.push_screen(NewProgramScreen(self.repo), self._new_program_made)

    def _new_program_made(self, made: NewProgram | None) -> None:
        self.refresh_listing()
        if made is not None and made.start:
            self._launch(f"starting a run of {made.name}", ["start", made.name, "--json"])

    def action_quit(self) -> None:
        self.app.exit()

    # ------------------------------------------------------------------ launching

    def _launch(self, what: str, argv: list[str]) -> None:
        self.notify(f"{what}…")
        kind = "bakeoff" if argv[0] == "bakeoff" else "program"
        self.run_worker(
            lambda: self._launch_blocking(what, argv, kind),
            thread=True,
            group="home-launch",
            exit_on_error=False,
        )

    def _launch_blocking(self, what: str, argv: list[str], kind: str) -> None:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "shared.cli.main", *argv],
                cwd=self.repo,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            self.post_message(self.Launched(what, proc.returncode, proc.stdout, proc.stderr, kind))
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.post_message(self.Launched(what, -1, "", str(exc), kind))

    def on_home_screen_launched(self, message: Launched) -> None:
        self.refresh_listing()
        if message.code != 0:
            error = (message.stderr.strip().splitlines() or [f"exit {message.code}"])[-1]
            self.notify(f"{message.what} failed: {error}", severity="error", timeout=10)
            return
        try:
            run_id = str(msgspec.json.decode(message.stdout)["run_id"])
        except (msgspec.DecodeError, KeyError, TypeError):
            self.notify(f"{message.what}: unexpected output", severity="error")
            return
        self.notify(f"run {run_id} started")
        self.post_message(self.RunChosen(self.ref_of(run_id, message.kind)))
