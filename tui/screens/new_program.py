"""The "new program" dialog: `expd init` from the home screen, by hand or drafted by an agent.

The work is the headless CLI's, in a subprocess run from a thread worker (`expd init NAME
--json`, with `--draft` when an agent drafts it), so the event loop never waits and the TUI never
imports the daemon. A draft is shown — its files and the validation's verdict — and the user
accepts it (optionally starting a run), keeps a failed one for editing, or discards it; accepting
and discarding are `shared.drafts`, the same as the CLI's, also off the event loop.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from shared import drafts
from shared.errors import UserError
from shared.evidence import NoiseStats
from shared.paths import RepoPaths
from shared.schema import AGENT_KINDS

DRAFT_KINDS = tuple(k for k in AGENT_KINDS if k != "tune")
SHOWN = ("program.md", "measure.sh", "build.sh", "program.toml")


@dataclass(frozen=True)
class NewProgram:
    """What the dialog made: a program, and whether to start a run of it now."""

    name: str
    start: bool = False


class NewProgramScreen(ModalScreen[NewProgram | None]):
    """Dismisses with the program made (and kept), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    NewProgramScreen { align: center middle; }
    #np-dialog { width: 80; max-width: 100%; height: 90%; padding: 0 2;
                 border: thick $primary; background: $surface; }
    #np-form { height: 1fr; }
    #np-form Input, #np-form Select, #np-form Checkbox { margin-bottom: 1; }
    #np-title { text-style: bold; }
    #np-error { color: $error; }
    #np-busy { color: $text-muted; }
    #np-files { height: 1fr; min-height: 8; border: round $primary-darken-2; }
    #np-verdict { height: auto; max-height: 10; margin: 1 0 0 0; }
    #np-error { height: auto; }
    #np-buttons { height: auto; align-horizontal: right; }
    #np-buttons Button { margin-left: 1; }
    """

    def __init__(self, repo: Path) -> None:
        super().__init__()
        self.repo = repo
        self.proc: subprocess.Popen[str] | None = None
        self.result: dict[str, Any] | None = None
        self.name_made = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="np-dialog"):
            yield Label("New program", id="np-title")
            with VerticalScroll(id="np-form"):
                yield Label("Name")
                yield Input(id="np-name", placeholder="e.g. speed")
                yield Checkbox(
                    "Draft with agent (it reads a read-only copy of HEAD)", id="np-draft"
                )
                yield Label("Measure command (for a draft: a suggestion)")
                yield Input(id="np-measure", placeholder="e.g. python bench.py")
                yield Label("Metric and direction (a draft may leave them to the agent)")
                yield Input(id="np-metric", placeholder="e.g. latency_ms")
                yield Select(
                    [("lower is better", "lower"), ("higher is better", "higher")],
                    prompt="direction",
                    id="np-direction",
                )
                yield Label("Agent")
                yield Select([(k, k) for k in DRAFT_KINDS], value="claude", id="np-agent")
                yield Input(id="np-command", placeholder="command agent: the drafting command")
            yield Static("", id="np-busy")
            yield VerticalScroll(Static("", id="np-files-text"), id="np-files")
            yield Static("", id="np-verdict")
            yield Label("", id="np-error")
            with Horizontal(id="np-buttons"):
                yield Button("Create", variant="primary", id="np-create")
                yield Button("Accept", variant="primary", id="np-accept")
                yield Button("Accept and start", id="np-accept-start")
                yield Button("Keep for editing", id="np-keep")
                yield Button("Discard", variant="error", id="np-discard")
                yield Button("Cancel", id="np-cancel")

    def on_mount(self) -> None:
        self._show("form")
        self.query_one("#np-name", Input).focus()

    def _show(self, stage: str) -> None:
        """`form`, `busy` (the subprocess runs) or `review` (a draft and its verdict)."""
        usable = bool(self.result and self.result["validation"].get("usable"))
        self.query_one("#np-form").display = stage == "form"
        self.query_one("#np-busy").display = stage == "busy"
        self.query_one("#np-files").display = stage == "review"
        self.query_one("#np-verdict").display = stage == "review"
        shown = {
            "np-create": stage == "form",
            "np-accept": stage == "review" and usable,
            "np-accept-start": stage == "review" and usable,
            "np-keep": stage == "review" and not usable,
            "np-discard": stage == "review",
            "np-cancel": stage != "review",
        }
        for button, visible in shown.items():
            self.query_one(f"#{button}", Button).display = visible

    def _error(self, text: str) -> None:
        self.query_one("#np-error", Label).update(text)

    # ------------------------------------------------------------------ the form

    def argv(self) -> list[str] | None:
        """`expd init`'s arguments from the form, or None (and an error shown) when incomplete."""
        value = {k: self.query_one(f"#np-{k}", Input).value.strip() for k in
                 ("name", "measure", "metric", "command")}  # fmt: skip
        chosen = self.query_one("#np-direction", Select)
        direction = None if chosen.is_blank() else str(chosen.value)
        agent = str(self.query_one("#np-agent", Select).value)
        drafting = self.query_one("#np-draft", Checkbox).value
        if not value["name"]:
            self._error("a name is needed")
            return None
        argv = ["init", value["name"], "--json", "--agent", agent]
        if value["metric"]:
            argv += ["--metric", value["metric"]]
        if direction:
            argv += ["--direction", direction]
        if value["measure"]:
            argv += ["--measure", value["measure"]]
        if drafting:
            argv.append("--draft")
            if value["command"]:
                argv += ["--command", value["command"]]
        elif not value["metric"] or not direction:
            self._error("a metric and a direction are needed (or a draft)")
            return None
        return argv

    @on(Input.Submitted)
    @on(Button.Pressed, "#np-create")
    def action_create(self) -> None:
        if not self.query_one("#np-create", Button).display:
            return
        argv = self.argv()
        if argv is None:
            return
        self._error("")
        self.name_made = argv[1]
        drafting = "--draft" in argv
        busy = "the agent is drafting the program, then expd validates it…" if drafting else "…"
        self.query_one("#np-busy", Static).update(busy)
        self._show("busy")
        self.run_init(argv)

    @work(thread=True, exclusive=True, group="new-program", exit_on_error=False)
    def run_init(self, argv: list[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shared.cli.main", *argv],
                cwd=self.repo,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = self.proc.communicate()
            code = self.proc.returncode
        except OSError as exc:
            out, err, code = "", str(exc), -1
        self.app.call_from_thread(self.init_done, "--draft" in argv, code, out, err)

    def init_done(self, drafting: bool, code: int, out: str, err: str) -> None:
        self.proc = None
        if not self.is_attached:  # cancelled while the CLI ran: it was ended, nothing to show
            return
        try:
            doc = msgspec.json.decode(out) if out.strip() else None
        except msgspec.DecodeError:
            doc = None
        if not isinstance(doc, dict) or (drafting and "validation" not in doc):
            self._error((err.strip().splitlines() or [f"exit {code}"])[-1].removeprefix("expd: "))
            self._show("form")
            return
        if not drafting:
            self.app.notify(f"created program {self.name_made}: edit {doc['dir']}")
            self.dismiss(NewProgram(self.name_made))
            return
        self.result = doc
        self._review(doc)

    def _review(self, doc: dict[str, Any]) -> None:
        files = doc["files"]
        parts = [f"── {n}\n{drafts.printable(files[n].rstrip())}" for n in SHOWN if n in files]
        self.query_one("#np-files-text", Static).update(Text("\n\n".join(parts)))
        check = doc["validation"]
        noise = msgspec.convert(check.get("noise") or {}, NoiseStats)
        head = "validated" if check["usable"] else "failed validation"
        lines = [f"{head}: {check['reason']}"]
        if noise.runs:
            lines.append(f"CV {noise.decision_cv:.2%} over {noise.runs} runs")
        if check.get("suggested"):
            s = check["suggested"]
            lines.append(f"suggested [decide] min_effect = {s['min_effect']:g}, "
                         f"max_runs = {s['max_runs']}")  # fmt: skip
        lines += [f"warning: {w}" for w in doc.get("warnings", [])]
        lines.append(f"drafted by {doc['agent']} in {doc['agent_s']:.1f}s ({doc['sandbox']})")
        self.query_one("#np-verdict", Static).update(Text(drafts.printable("\n".join(lines))))
        self._show("review")

    # ------------------------------------------------------------------ the verdict

    @on(Button.Pressed, "#np-accept")
    def accept(self) -> None:
        self.settle("accept", start=False)

    @on(Button.Pressed, "#np-accept-start")
    def accept_and_start(self) -> None:
        self.settle("accept", start=True)

    @on(Button.Pressed, "#np-keep")
    def keep(self) -> None:
        self.app.notify(f"{self.name_made} kept for editing; `expd validate` it when fixed")
        self.dismiss(NewProgram(self.name_made))

    @on(Button.Pressed, "#np-discard")
    def discard(self) -> None:
        self.settle("discard", start=False)

    @work(thread=True, exclusive=True, group="new-program", exit_on_error=False)
    def settle(self, what: str, *, start: bool) -> None:
        program = RepoPaths(self.repo).program(self.name_made)
        try:
            (drafts.accept if what == "accept" else drafts.discard)(program)
        except (OSError, UserError) as exc:
            self.app.call_from_thread(self._error, str(exc))
            return
        chosen = NewProgram(self.name_made, start) if what == "accept" else None
        self.app.call_from_thread(self._close, chosen)

    def _close(self, chosen: NewProgram | None) -> None:
        self.dismiss(chosen)  # not awaited: the screen's own callback runs after it is gone

    @on(Button.Pressed, "#np-cancel")
    def action_cancel(self) -> None:
        if self.result is not None:  # a draft on show: escape keeps it, marked, for later
            self.keep()
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the CLI removes its temporary folders on SIGTERM
        self.dismiss(None)
