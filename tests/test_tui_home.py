"""The home screen on real repositories: hand-made run directories, and a real daemon run started
from the new-run dialog through the CLI subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from shared.runs import RunRef
from tests.fake_runs import add_program, git_repo, make_run
from tests.repos import make_repo, wait_finished
from tests.tui_util import until
from tui.app import ExpdApp
from tui.screens.home import HomeScreen
from tui.screens.new_run import NewRunScreen


class RecordingApp(ExpdApp):
    """The real app, except that opening a run is recorded instead of showing the dashboard."""

    def __init__(self, repo: Path) -> None:
        super().__init__(repo=repo)
        self.opened: list[RunRef] = []

    def open_run(self, ref: RunRef) -> None:
        self.last_run = ref
        self.opened.append(ref)


def home(app: ExpdApp) -> HomeScreen:
    assert isinstance(app.screen, HomeScreen)
    return app.screen


def cells(app: ExpdApp, key: str) -> list[str]:
    table = home(app).query_one("#home-runs", DataTable)
    return [str(c) for c in table.get_row(key)]


async def test_empty_repository_says_how_to_begin(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    app = RecordingApp(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: home(app).loaded)
        empty = home(app).query_one("#home-empty", Static)
        assert empty.display and "expd init NAME" in str(empty.render())
        assert not home(app).query_one("#home-runs").display
        await pilot.press("n")  # nothing to start: a hint, no crash
        assert isinstance(app.screen, HomeScreen)


async def test_runs_are_listed_and_reconciled_in_place(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    add_program(repo, "empty")
    dead = make_run(repo, "prog", "20260101-100000", experiment=4, baseline=10.0, best=8.0)
    live = make_run(repo, "prog", "20260101-110000", live=True, experiment=1, baseline=5.0)
    try:
        app = RecordingApp(repo)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = home(app)
            await until(pilot, lambda: screen.loaded)
            table = screen.query_one("#home-runs", DataTable)
            assert screen._order == [
                "program:empty",
                "program:prog",
                live.run_id,  # newest first
                dead.run_id,
            ]
            assert cells(app, dead.run_id)[1:] == ["agent_running", "dead", "4/20", "8", "+20.0%"]
            assert cells(app, live.run_id)[1:3] == ["agent_running", "running"]

            # Put the cursor on the dead run; a change of its state updates the cell in place.
            table.move_cursor(row=3)
            await pilot.pause()
            assert screen.selected_key() == dead.run_id
            dead.write_state(phase="idle", experiment=5, baseline=10.0, best=7.0)
            screen.refresh_listing()
            await until(pilot, lambda: cells(app, dead.run_id)[3] == "5/20")
            assert cells(app, dead.run_id)[4:] == ["7", "+30.0%"]
            assert screen.selected_key() == dead.run_id

            # A new run appears; the cursor stays on the same run.
            newer = make_run(repo, "prog", "20260101-120000", phase="baseline")
            screen.refresh_listing()
            await until(pilot, lambda: newer.run_id in screen._order)
            assert screen.selected_key() == dead.run_id
            assert screen._order.index(newer.run_id) == 2

            # Only a dead run can be resumed: on a running one, r explains why not.
            table.move_cursor(row=screen._order.index(live.run_id))
            await pilot.press("r")
            assert any("only a dead run" in n.message for n in app._notifications)

            # enter opens the selected run.
            await pilot.press("enter")
            assert [r.run_id for r in app.opened] == [live.run_id]
            assert app.opened[0].paths.dir == live.paths.dir
    finally:
        live.die()


async def test_new_run_dialog_validates_and_cancels(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    add_program(repo, "prog")
    app = RecordingApp(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: home(app).loaded)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        field = app.screen.query_one("#new-run-max", Input)
        assert field.value == "20"  # from program.toml's [loop] (the default)
        field.value = "0"
        await pilot.press("enter")
        assert isinstance(app.screen, NewRunScreen)
        assert "≥ 1" in str(app.screen.query_one("#new-run-error", Static).render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert app.opened == []


@pytest.mark.timeout(90)
async def test_new_run_starts_a_real_daemon(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", program="p", max_experiments=5)
    app = RecordingApp(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = home(app)
        await until(pilot, lambda: screen.loaded)
        assert screen.selected_program() == "p"
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        app.screen.query_one("#new-run-max", Input).value = "1"
        await pilot.press("enter")
        await until(pilot, lambda: app.opened, timeout=30, what="the run to start")
    ref = app.opened[0]
    assert ref.program == "p" and ref.paths.run_json.exists()
    final = wait_finished(ref.paths)
    assert final.phase == "complete" and final.max_experiments == 1
