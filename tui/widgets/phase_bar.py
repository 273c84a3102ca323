"""What the daemon is doing right now, and a banner with the way out when it is not doing it."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static

from shared.display import drift_line
from shared.liveness import Probe
from shared.schema import TERMINAL_PHASES, RunState

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPINNER_FPS = 4
"""Frames per second: the screen ticks every 0.25 s."""
BANNER_KINDS = ("error", "warning", "success")


@dataclass
class PhaseView:
    """Everything the bar shows; the screen keeps one and replaces fields as messages arrive."""

    run_id: str = ""
    state: RunState | None = None
    probe: Probe | None = None
    probe_at: float | None = None
    """When the probe arrived (by the screen's clock): a hung daemon's silence keeps growing."""
    requested: list[str] = field(default_factory=list)
    abort_unacked: bool = False
    problem: str | None = None
    newer_version: bool = False

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.phase in TERMINAL_PHASES

    @property
    def active(self) -> bool:
        """The daemon is working (the spinner turns)."""
        if self.finished or self.newer_version:
            return False
        return self.probe is None or self.probe.daemon in ("running", "starting")

    @property
    def hung(self) -> bool:
        return self.probe is not None and self.probe.daemon == "hung" and not self.finished

    @property
    def killable(self) -> bool:
        """Offer to SIGKILL the daemon: it stopped beating, or it ignored an abort."""
        return (self.hung or self.abort_unacked) and self.probe is not None

    def silence(self, now: float) -> float | None:
        if self.probe is None or self.probe.heartbeat_age is None:
            return None
        since = now - self.probe_at if self.probe_at is not None else 0.0
        return self.probe.heartbeat_age + max(since, 0.0)


def banner(view: PhaseView, now: float) -> tuple[str, str] | None:
    """(kind, text) of the most urgent thing to say, or None; the text alone says what to do."""
    resume = f"expd resume {view.run_id}"
    state, probe = view.state, view.probe
    if view.newer_version:
        return (
            "error",
            f"This run was written by a newer expd — upgrade expd to watch it. {view.problem or ''}".strip(),
        )
    if view.abort_unacked:
        pid = f" (pid {probe.pid})" if probe is not None and probe.pid else ""
        return "error", f"abort not acknowledged — press K to kill the daemon{pid}, then: {resume}"
    if probe is not None and probe.daemon == "dead" and not view.finished:
        return "error", f"daemon is dead — resume with: {resume}"
    if view.hung:
        silence = view.silence(now)
        age = f"{int(silence)}s" if silence is not None else "a while"
        return "error", f"no heartbeat for {age} — press K to kill it, then resume: {resume}"
    if state is not None and state.phase == "complete":
        note = f" — {state.message}" if state.message else ""
        return "success", f"run complete: {state.termination_reason or 'done'}{note}"
    if state is not None and state.phase == "crashed":
        why = state.message or state.termination_reason or "unknown reason"
        return "error", f"run crashed: {why} (see daemon.log)"
    if view.problem:
        return "warning", view.problem
    if state is not None and state.drift:
        return "warning", drift_line(state.drift, state.drift_at_experiment)
    return None


def phase_line(view: PhaseView, now: float) -> Content:
    state = view.state
    spin = SPINNER[int(now * SPINNER_FPS) % len(SPINNER)] if view.active else "•"
    if state is None:
        return Content.assemble((spin, "$text-primary"), " ", ("waiting for the daemon", "bold"))
    parts: list[str | tuple[str, str]] = [
        (spin, "$text-primary bold"),
        " ",
        (state.phase, "bold"),
    ]
    if state.detail:
        parts += [" — ", state.detail]
    if state.in_flight is not None and not view.finished:
        parts += ["   ", (f"#{state.in_flight.experiment}", "$text-muted")]
    if view.probe is not None and view.probe.daemon not in ("running", "finished"):
        style = "$text-error bold" if view.probe.daemon in ("dead", "hung") else "$text-warning"
        parts += ["   daemon ", (view.probe.daemon, style)]
    if state.sandbox == "none":
        parts += ["   ", ("UNCONFINED agent", "$text-error bold")]
    if state.measure_sandbox == "none":
        parts += ["   ", ("UNCONFINED measurement", "$text-error bold")]
    return Content.assemble(*parts)


class PhaseBar(Vertical):
    """One status line (spinner, phase, detail, pending requests) over an optional banner."""

    DEFAULT_CSS = """
    PhaseBar { height: auto; }
    PhaseBar > Horizontal { height: 1; padding: 0 1; }
    PhaseBar #phase-text { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    PhaseBar #phase-requests { width: auto; color: $text-warning; text-style: bold; }
    PhaseBar #phase-banner {
        display: none;
        height: auto;
        padding: 0 1;
        text-style: bold;
        color: $text;
    }
    PhaseBar.-error #phase-banner { display: block; background: $error-muted; border-left: outer $error; }
    PhaseBar.-warning #phase-banner { display: block; background: $warning-muted; border-left: outer $warning; }
    PhaseBar.-success #phase-banner { display: block; background: $success-muted; border-left: outer $success; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = PhaseView()
        self.banner_text: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(id="phase-text")
            yield Static(id="phase-requests")
        yield Static(id="phase-banner")

    def show(self, view: PhaseView, now: float) -> None:
        self.view = view
        requested = " · ".join(f"{label} requested…" for label in view.requested)
        self.query_one("#phase-requests", Static).update(requested)
        found = banner(view, now)
        kind, text = found if found is not None else (None, None)
        self.banner_text = text
        for name in BANNER_KINDS:
            self.set_class(kind == name, f"-{name}")
        self.query_one("#phase-banner", Static).update(text or "")
        self.tick(now)

    def tick(self, now: float) -> None:
        """Advance the spinner and the hung daemon's silence; nothing else moves between messages."""
        self.query_one("#phase-text", Static).update(phase_line(self.view, now))
        if self.view.hung:
            found = banner(self.view, now)
            if found is not None and found[1] != self.banner_text:
                self.banner_text = found[1]
                self.query_one("#phase-banner", Static).update(found[1])
