"""The home screen's `d` on real run directories: a confirmed delete goes through the CLI in a
worker and the run disappears; an active run is refused; a cleaned run shows as cleaned."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from shared import codec
from shared.housekeeping import CLEANED, CleanRecord
from tests.fake_runs import git_repo, make_run
from tests.tui_util import until
from tui.app import ExpdApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.home import HomeScreen

pytestmark = pytest.mark.timeout(60)


async def test_d_deletes_the_selected_run_after_a_confirmation(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    old = make_run(repo, "prog", "20260101-100000", phase="complete", experiment=3)
    (old.paths.dir / CLEANED).write_bytes(codec.encode(CleanRecord(cleaned_at=time.time())))
    live = make_run(repo, "prog", "20260101-110000", live=True, experiment=1)
    try:
        app = ExpdApp(repo=repo)
        async with app.run_test(size=(100, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, HomeScreen)
            await until(pilot, lambda: screen.loaded, timeout=30)
            table = screen.query_one("#home-runs", DataTable)
            assert str(table.get_row(old.run_id)[1]) == "complete · cleaned"

            # An active run: refused before anything is asked.
            table.move_cursor(row=screen._order.index(live.run_id))
            await pilot.press("d")
            await until(
                pilot, lambda: any("stop it first" in n.message for n in app._notifications), 30
            )
            assert isinstance(app.screen, HomeScreen)

            # No keeps it; yes deletes it.
            table.move_cursor(row=screen._order.index(old.run_id))
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30)
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, HomeScreen), timeout=30)
            assert old.paths.dir.is_dir()
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30)
            await pilot.press("y")
            await until(
                pilot, lambda: old.run_id not in screen._order, timeout=30, what="the delete"
            )
            assert not old.paths.dir.exists() and live.paths.dir.is_dir()
            assert any(f"deleted {old.run_id}" in n.message for n in app._notifications)
    finally:
        live.die()


async def test_d_on_a_program_deletes_it_with_its_runs(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    make_run(repo, "prog", "20260101-100000", phase="complete")
    make_run(repo, "other", "20260101-100000", phase="complete")
    app = ExpdApp(repo=repo)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        await until(pilot, lambda: screen.loaded, timeout=30)
        table = screen.query_one("#home-runs", DataTable)
        table.move_cursor(row=screen._order.index("program:prog"))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30)
        await pilot.press("y")
        await until(pilot, lambda: "program:prog" not in screen._order, timeout=30)
    assert not (repo / ".expd" / "programs" / "prog").exists()
    assert (repo / ".expd" / "programs" / "other" / "runs" / "20260101-100000").is_dir()


async def test_a_cleaned_bakeoff_run_shows_as_cleaned(tmp_path: Path) -> None:
    from tests import bakeoff_fakes as bf
    from tui.screens.home_rows import BAKEOFF_RUN

    repo = git_repo(tmp_path / "repo")
    paths = bf.make_run(repo, bf.spec(), phase="complete")
    run_id = f"bk/{paths.dir.name}"
    app = ExpdApp(repo=repo)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        await until(pilot, lambda: screen.loaded, timeout=30)
        table = screen.query_one("#home-runs", DataTable)
        assert str(table.get_row(BAKEOFF_RUN + run_id)[1]) == "complete"
        (paths.dir / CLEANED).write_bytes(codec.encode(CleanRecord(cleaned_at=time.time())))
        screen.refresh_listing()
        await until(
            pilot,
            lambda: str(table.get_row(BAKEOFF_RUN + run_id)[1]) == "complete · cleaned",
            timeout=30,
            what="the cleaned mark",
        )
