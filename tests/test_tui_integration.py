"""The whole app with the real RunSource and the real dashboard: results written as the daemon
writes them (and by a real daemon) appear in the results table; home and dashboard link up."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.runs import RunRef
from tests.fake_runs import FakeRun, make_run, result
from tests.repos import make_repo, start, wait_finished
from tests.tui_util import until
from tui.app import ExpdApp
from tui.screens.home import HomeScreen
from tui.screens.run import RunScreen
from tui.widgets.results_table import ResultsTable


def ref_of(run: FakeRun) -> RunRef:
    return RunRef(run.program, run.stamp, run.paths, run.repo)


def rows(app: ExpdApp) -> set[str]:
    if not isinstance(app.screen, RunScreen):
        return set()
    return set(app.screen.query_one(ResultsTable).row_keys)


async def test_appended_result_appears_and_home_links_up(tmp_path: Path) -> None:
    run = make_run(tmp_path / "repo", live=True, experiment=2, baseline=5.0, best=4.0)
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: rows(app) == {"0", "1"})
            run.add_results(result(2, "discard", 4.4))
            await until(pilot, lambda: "2" in rows(app), what="row 2")

            # h goes to the home screen underneath (the repo is found from the run directory)...
            assert app.repo == (tmp_path / "repo").resolve()
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, HomeScreen))
            home = app.screen
            assert isinstance(home, HomeScreen)
            await until(pilot, lambda: home.loaded)
            assert home.selected_key() == run.run_id
            # ...and enter opens the run again, with a fresh source.
            await pilot.press("enter")
            await until(pilot, lambda: rows(app) == {"0", "1", "2"})
            assert app.last_run is not None and app.last_run.run_id == run.run_id
    finally:
        run.die()


@pytest.mark.timeout(90)
async def test_a_real_daemon_run_fills_the_table(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=3)
    paths = start(repo)
    ref = RunRef("p", paths.dir.name, paths, repo)
    app = ExpdApp(run=ref)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: {"0", "1", "2", "3"} <= rows(app), timeout=60, what="4 rows")
    assert wait_finished(paths).phase == "complete"
