"""The Textual app: a home screen of programs, bakeoffs and runs, and a dashboard per run (a
bakeoff run gets the bakeoff dashboard).

The app only shows what the run files say. Leaving it never stops a run: the daemon is a separate,
detached process, and the CLI prints how to come back once `run()` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from shared.bakeoffs.paths import BakeoffRunPaths
from shared.paths import RunPaths
from shared.runs import RunRef
from tui.bakeoff_source import BakeoffSource, BakeoffSourceLike
from tui.screens.bakeoff import BakeoffScreen
from tui.screens.home import HomeScreen
from tui.screens.run import RunScreen
from tui.source import RunSource, Source

DASHBOARDS = (RunScreen, BakeoffScreen)


def repo_of(ref: RunRef) -> Path | None:
    """The repository a run belongs to: known, or `<repo>/.expd/programs/<p>/runs/<stamp>`
    (`bakeoffs/<name>/runs/<stamp>` for a bakeoff run)."""
    if ref.repo is not None:
        return ref.repo
    parts = ref.paths.dir.resolve().parents
    owners = parts[2].name if len(parts) > 2 else ""
    if len(parts) > 4 and owners in ("programs", "bakeoffs") and parts[3].name == ".expd":
        return parts[4]
    return None


class ExpdApp(App[None]):
    """`repo` opens the home screen; `run` opens that run's dashboard (home underneath it)."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "expd"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("h", "home", "Home"),
    ]

    def __init__(
        self,
        *,
        repo: Path | None = None,
        run: RunRef | None = None,
        source_factory: Callable[[RunPaths], Source] = RunSource,
        bakeoff_source_factory: Callable[[BakeoffRunPaths], BakeoffSourceLike] = BakeoffSource,
    ) -> None:
        super().__init__()
        self.repo = repo if repo is not None or run is None else repo_of(run)
        self.start_run = run
        self.source_factory = source_factory
        self.bakeoff_source_factory = bakeoff_source_factory
        self.last_run: RunRef | None = run
        """The run shown last: the CLI tells how to reattach to it after exit."""

    def on_mount(self) -> None:
        if self.repo is not None:
            self.push_screen(HomeScreen(self.repo))
        if self.start_run is not None:
            self.open_run(self.start_run)

    def open_run(self, ref: RunRef) -> None:
        """Show a run's dashboard, fed by a fresh source for its directory."""
        self.last_run = ref
        if ref.is_bakeoff:
            source = self.bakeoff_source_factory(BakeoffRunPaths(ref.paths.dir))
            self.push_screen(BakeoffScreen(ref, source))
        else:
            self.push_screen(RunScreen(ref, self.source_factory(ref.paths)))

    def on_home_screen_run_chosen(self, message: HomeScreen.RunChosen) -> None:
        self.open_run(message.ref)

    def _home_below(self) -> bool:
        """On a run dashboard with the home screen underneath it (h goes back there)."""
        stack = self.screen_stack
        on_dashboard = isinstance(self.screen, DASHBOARDS)
        return on_dashboard and any(isinstance(s, HomeScreen) for s in stack)

    def action_home(self) -> None:
        if self._home_below():
            while not isinstance(self.screen, HomeScreen):
                self.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "home":
            return self._home_below()
        return True
