"""What the TUI reads on request rather than by watching: the home screen's listing (through its
listing source)."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from shared.atomic import write_atomic
from shared.listing import UnreadableRun
from shared.status import StatusReport
from tests.fake_runs import add_program, git_repo, make_run
from tests.tui_util import until
from tui.messages import ProgramsListed
from tui.reads import ListingSource


class Recorder(Screen[None]):
    """Keeps what the sources post to it."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Message] = []

    def compose(self) -> ComposeResult:
        yield Static("recorder")

    def on_programs_listed(self, m: ProgramsListed) -> None:
        self.got.append(m)


class Harness(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()

    def on_mount(self) -> None:
        self.push_screen(self.recorder)


async def test_listing_source_posts_typed_programs(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    add_program(repo, "empty")
    run = make_run(repo, "prog", "20260101-100000", experiment=4, baseline=10.0, best=8.0)
    broken = make_run(repo, "prog", "20260101-110000")
    write_atomic(broken.paths.state_json, b"{torn", durable=False)
    app = Harness()
    async with app.run_test() as pilot:
        ListingSource(repo).refresh(app.recorder)
        await until(pilot, lambda: app.recorder.got != [])
    (listed,) = app.recorder.got
    assert isinstance(listed, ProgramsListed)
    assert [p.program for p in listed.programs] == ["empty", "prog"]
    assert listed.max_experiments == {"empty": 20, "prog": 20}
    first, second = listed.programs[1].runs
    assert isinstance(first, StatusReport) and first.run_id == run.run_id and first.best == 8.0
    assert isinstance(second, UnreadableRun) and second.run_id == broken.run_id
