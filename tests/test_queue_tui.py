"""The run queue on the home screen: the real app on a real repository whose queue is edited
through `shared.queue` while the screen watches it."""

from __future__ import annotations

from pathlib import Path

from shared.queue import QueueOptions, QueuePaths, add, editing, remove
from tests.repos import make_repo
from tests.test_queue import add_program
from tests.tui_util import until
from tui.app import ExpdApp
from tui.screens.home import HomeScreen
from tui.widgets.queue_panel import QueuePanel


def panel(app: ExpdApp) -> QueuePanel:
    assert isinstance(app.screen, HomeScreen)
    return app.screen.query_one("#home-queue", QueuePanel)


async def test_home_shows_the_queue_and_follows_its_changes(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    add_program(root, "q")
    app = ExpdApp(repo=root)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen.loaded)
        assert not panel(app).display  # no queue: nothing shown
        add(root, "p", QueueOptions(max_experiments=4))
        add(root, "q")
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        screen.refresh_listing()
        await until(pilot, lambda: len(panel(app).rows) == 2, what="two entries")
        rows = panel(app).rows
        assert [(r.id, r.state, r.program) for r in rows] == [
            ("#1", "queued", "p --max-experiments 4"),
            ("#2", "queued", "q"),
        ]
        assert panel(app).display and panel(app).border_title == "queue · 2 waiting"
        rendered = str(panel(app).render())
        assert "p --max-experiments 4" in rendered and "#2" in rendered

        remove(root, 1)
        with editing(root) as queue:
            queue.paused = "run p/1 was aborted"
            queue.entries[0].reason = "waiting for run x/1 to finish"
        screen.refresh_listing()
        await until(pilot, lambda: len(panel(app).rows) == 1, what="the removal")
        assert panel(app).rows[0].reason == "waiting for run x/1 to finish"
        assert panel(app).border_title == "queue · 1 waiting · paused: run p/1 was aborted"

        # An unreadable queue file is a notice, not a crash; the panel empties.
        QueuePaths(root).file.write_text("{not json")
        screen.refresh_listing()
        await until(pilot, lambda: not panel(app).rows, what="the unreadable queue")
        assert not panel(app).display
        assert any("queue:" in str(n.message) for n in app._notifications)


async def test_e_queues_the_selected_program_and_the_panel_follows(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from shared.queue import read_queue
    from tests.repos import wait_finished
    from tests.test_queue import run_paths

    root = make_repo(tmp_path / "repo", max_experiments=0)  # a baseline only: quick to run
    add_program(root, "q")
    app = ExpdApp(repo=root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        await until(pilot, lambda: screen.loaded, timeout=30)
        table = screen.query_one("#home-runs", DataTable)
        table.move_cursor(row=screen._order.index("program:q"))
        await pilot.press("e")

        def notes() -> list[str]:
            return [str(n.message) for n in app._notifications]

        # An idle queue starts its entry at once: the user is told, and the panel shows it.
        await until(
            pilot,
            lambda: any(n.startswith("queued q (entry 1): started run q/") for n in notes()),
            timeout=60,
            what="the notice",
        )
        entry = read_queue(root).entries[0]
        assert entry.program == "q" and entry.run_id is not None
        assert wait_finished(run_paths(root, entry.run_id)).phase == "complete"
        screen.refresh_listing()
        await until(
            pilot,
            lambda: [(r.id, r.state) for r in panel(app).rows] == [("#1", "done")],
            timeout=60,
            what="the finished entry",
        )
