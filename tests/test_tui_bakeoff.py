"""The bakeoff dashboard with the real BakeoffSource on synthetic run directories written as the
daemon writes them (records appended, state.json replaced atomically), inside the real app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.style import Style
from textual.app import App
from textual.widgets import Static, TabbedContent

from shared import codec
from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import (
    BakeoffState,
    Criterion,
    CriterionResult,
    Mark,
    Replay,
    RunningAttempt,
)
from shared.runs import ref_for_dir
from shared.schema import ControlFile, ControlRequest
from tests import bakeoff_fakes as bf
from tests.tui_fakes import APP_TCSS
from tests.tui_util import until
from tui.app import ExpdApp
from tui.bakeoff_source import BakeoffSource
from tui.screens.bakeoff import BakeoffScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.home import HomeScreen
from tui.widgets.attempt_detail import AttemptDetail
from tui.widgets.bakeoff_grid import BakeoffGrid
from tui.widgets.variant_progress import VariantProgressTable

SIZE = (130, 40)
PATCH = "diff --git a/src/m.py b/src/m.py\n--- a/src/m.py\n+++ b/src/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


class BakeoffApp(App[None]):
    """What ExpdApp does for `expd attach` on a bakeoff run: one BakeoffScreen, real source."""

    CSS_PATH = str(APP_TCSS)

    def __init__(self, paths: BakeoffRunPaths) -> None:
        super().__init__()
        self.screen_under_test = BakeoffScreen(ref_for_dir(paths.dir), BakeoffSource(paths))

    def on_mount(self) -> None:
        self.push_screen(self.screen_under_test)


def write_state(paths: BakeoffRunPaths, **fields: Any) -> None:
    base: dict[str, Any] = {"run_id": f"bk/{bf.STAMP}", "name": "bk", "phase": "running"}
    state = BakeoffState(**{**base, **fields})
    write_atomic(paths.state_json, codec.encode(state), durable=False)


def running(task: str, variant: str, attempt: int = 1) -> RunningAttempt:
    return RunningAttempt(
        task=task, variant=variant, attempt=attempt, started_at=time.time(), stage="agent"
    )


def parts(app: BakeoffApp) -> tuple[BakeoffScreen, BakeoffGrid, AttemptDetail]:
    screen = app.screen_under_test
    return screen, screen.query_one(BakeoffGrid), screen.query_one(AttemptDetail)


def text(widget: Static) -> str:
    return str(widget.render())


def opened(app: BakeoffApp, rows: int) -> bool:
    return (
        app.screen_under_test.opened
        and app.screen_under_test.query_one(BakeoffGrid).row_count == rows
    )


def three_by_two(tmp_path: Path) -> BakeoffRunPaths:
    """Every status of the grid in a 3 × 2 run: t002/b is running, nothing else is."""
    paths = bf.make_run(tmp_path / "repo", bf.spec(3, ("a", "b")))
    bf.append(
        paths,
        bf.record("t000", "a", "passed", patch_files=["src/m.py"]),
        bf.record("t000", "b", "failed"),
        bf.record("t001", "a", "error", error="agent crashed: exit 2", error_class="other"),
        bf.record("t001", "b", "timeout", error="timed out after 30m"),
        bf.record("t002", "a", "cancelled"),
    )
    write_state(paths, total=6, running=[running("t002", "b")])
    return paths


async def test_grid_shows_each_cells_glyph_and_status_colour(tmp_path: Path) -> None:
    app = BakeoffApp(three_by_two(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        _, grid, _ = parts(app)
        assert grid.row_keys == ["t000", "t001", "t002"] and grid.variants == ["a", "b"]
        expected = {
            ("t000", "a"): ("✓", "passed"),
            ("t000", "b"): ("✗", "failed"),
            ("t001", "a"): ("E", "error"),
            ("t001", "b"): ("T", "timeout"),
            ("t002", "a"): ("C", "cancelled"),
            ("t002", "b"): ("▶", "running"),
        }
        for (task, variant), (glyph, status) in expected.items():
            assert grid.glyphs(task, variant) == glyph
            assert grid.cell(task, variant) == (status,)
        colours = app.theme_variables
        line = grid.render_line(2)  # header, t000, t001: E (error) and T (timeout)
        assert "t001" in line.text
        styles = {seg.text: seg.style for seg in line if seg.text in ("E", "T")}
        for glyph, colour in (("E", "text-warning"), ("T", "text-warning")):
            style = styles[glyph]
            assert style is not None and style.color is not None
            assert Style.parse(str(style)).color.name.lower() == colours[colour].lower()  # type: ignore[union-attr]
        line = grid.render_line(1)
        passed = next(seg.style for seg in line if seg.text == "✗")
        assert passed is not None and passed.color is not None
        assert passed.color.name.lower() == colours["text-error"].lower()


async def test_an_appended_record_updates_only_its_cell(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        screen, grid, _ = parts(app)
        await pilot.press("down")
        assert grid.cursor == ("t001", "a", 1)
        changes: list[list[tuple[str, str]]] = []
        update = grid.update_cells

        def recording(cells: Any) -> list[tuple[str, str]]:
            changed = update(cells)
            changes.append(changed)
            return changed

        grid.update_cells = recording  # type: ignore[method-assign]
        bf.append(paths, bf.record("t002", "a", "passed"))  # the cancelled attempt, re-run
        await until(pilot, lambda: grid.glyphs("t002", "a") == "✓", timeout=10, what="the cell")
        assert [c for c in changes if c] == [[("t002", "a")]]
        assert grid.cursor == ("t001", "a", 1)  # the cursor stayed

        # The attempt in flight ends: the state drops it and its record arrives.
        bf.append(paths, bf.record("t002", "b", "passed"))
        write_state(paths, total=6, running=[])
        await until(pilot, lambda: grid.glyphs("t002", "b") == "✓", timeout=10, what="t002/b")
        header = screen.query_one("#bk-header", Static)
        await until(pilot, lambda: "attempts 6/6 · 0 running" in text(header), what="the header")
        assert {cell for c in changes for cell in c} == {("t002", "a"), ("t002", "b")}


async def test_a_manual_mark_regrades_the_cell(tmp_path: Path) -> None:
    question = CriterionResult(type="manual", target="Is it idiomatic?", passed=None)
    paths = bf.make_run(
        tmp_path / "repo",
        bf.spec(1, ("a",), criteria=[Criterion(type="manual", target="Is it idiomatic?")]),
    )
    bf.append(paths, bf.record("t000", "a", "passed", criteria=[question]))
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 1), what="the grid")
        _, grid, detail = parts(app)
        await until(pilot, lambda: detail.key == "t000/a/1")
        assert "not marked yet" in text(detail.query_one("#attempt-result", Static))
        bf.mark(paths, Mark(task="t000", variant="a", attempt=1, criterion=0, passed=False))
        await until(pilot, lambda: grid.glyphs("t000", "a") == "✗", timeout=10, what="the mark")
        assert "marked fail" in text(detail.query_one("#attempt-result", Static))


async def test_selecting_a_cell_shows_criteria_error_and_patch(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    bf.write_attempt_files(paths, "t000", "a", log="working\n", patch=PATCH)
    details = CriterionResult(
        type="test_pass", target="pytest -q", passed=False, details="1 failed: test_m"
    )
    bf.append(paths, bf.record("t000", "b", "failed", criteria=[details]))
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        _, _, detail = parts(app)
        result = detail.query_one("#attempt-result", Static)
        patch = detail.query_one("#attempt-patch", Static)
        await until(pilot, lambda: "+x = 2" in text(patch), timeout=10, what="the patch")
        assert detail.key == "t000/a/1" and detail.active_tab == "tab-attempt-result"
        assert "t000/a/1 ✓ passed" in text(result) and "pytest -q" in text(result)

        await pilot.press("right")  # on to variant b's attempt
        await until(pilot, lambda: detail.key == "t000/b/1")
        assert "✗ test_pass" in text(result) and "1 failed: test_m" in text(result)
        await until(pilot, lambda: "no patch" in text(patch), what="no patch")

        await pilot.press("down", "left")  # t001/a: an error
        await until(pilot, lambda: detail.key == "t001/a/1")
        assert "agent crashed: exit 2" in text(result) and "(other)" in text(result)


async def test_a_running_attempt_streams_its_agent_log(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    bf.write_attempt_files(paths, "t002", "b", log="reading the task\nplanning\n")
    log = paths.attempt("t002", "b", 1).agent_log
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        _, grid, detail = parts(app)
        grid.select("t002", "b")
        await until(pilot, lambda: detail.log_lines == ["reading the task", "planning"], timeout=10)
        assert detail.active_tab == "tab-attempt-agent"
        assert detail.query_one(TabbedContent).active == "tab-attempt-agent"
        with log.open("a") as f:
            f.write("editing src/m.py\n")
            f.flush()
            f.write("running the tests\n")
        await until(
            pilot, lambda: detail.log_lines[-1] == "running the tests", timeout=10, what="the tail"
        )
        assert detail.log_lines == [
            "reading the task",
            "planning",
            "editing src/m.py",
            "running the tests",
        ]
        # It ends: the verdict replaces the stream as the tab shown.
        bf.append(paths, bf.record("t002", "b", "passed"))
        write_state(paths, total=6, running=[])
        await until(pilot, lambda: detail.active_tab == "tab-attempt-result", timeout=10)


async def test_progress_table_numbers(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    bf.append(paths, bf.record("t002", "a", "passed", cost=0.5, duration=4.0))
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        table = app.screen_under_test.query_one(VariantProgressTable)
        # a: passed 2s, error 2s, passed 4s (the re-run of the cancelled one): 3/3 done.
        assert table.cells_of("a") == (
            "a", "3/3", "0", "2", "0", "1", "67%", "$0.52", "2s", "done",
        )  # fmt: skip
        # b: failed, timeout, and one running.
        assert table.cells_of("b")[:8] == ("b", "2/3", "1", "0", "1", "1", "0%", "$0.02")
        assert table.cells_of("b")[9].startswith("~")
        shown = text(table)
        assert "variant" in shown and "67%" in shown and "$0.52" in shown


async def test_replays_show_as_extra_attempts_and_columns(tmp_path: Path) -> None:
    paths = bf.make_run(tmp_path / "repo", bf.spec(2, ("a", "b")))
    bf.append(
        paths,
        bf.record("t000", "a", "failed"),
        bf.record("t000", "b", "passed", attempt=2, replay_of="t000/a/1"),
        bf.record("t000", "c", "passed", replay_of="t000/a/1"),  # a variant the run lacks
    )
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 2), what="the grid")
        screen, grid, _ = parts(app)
        assert grid.variants == ["a", "b", "c"]
        assert grid.glyphs("t000", "b") == "·✓" and grid.glyphs("t000", "c") == "✓"
        assert grid.glyphs("t001", "c") == "·"
        table = screen.query_one(VariantProgressTable)
        assert table.cells_of("b")[1] == "0/2"  # replays are not counted against the matrix
        await pilot.press("right", "right")
        assert grid.cursor == ("t000", "b", 2)

        bf.append(paths, bf.record("t001", "d", "error", replay_of="t001/a/1"))
        await until(pilot, lambda: grid.variants == ["a", "b", "c", "d"], timeout=10)
        assert grid.glyphs("t001", "d") == "E" and grid.cursor == ("t000", "b", 2)

        # A replay asked for shows as not started, then as running.
        asked = Replay(task="t001", variant="b", attempt=2, of="t001/a/1")
        write_state(paths, replays=[asked])
        await until(pilot, lambda: grid.glyphs("t001", "b") == "··", timeout=10, what="asked")
        write_state(paths, replays=[asked], running=[running("t001", "b", 2)])
        await until(pilot, lambda: grid.glyphs("t001", "b") == "·▶", timeout=10, what="running")


def requests(paths: BakeoffRunPaths) -> list[ControlRequest]:
    found = codec.read_optional(paths.control, ControlFile)
    return found.requests if found is not None else []


async def test_stop_asks_then_writes_a_request_until_acknowledged(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 3), what="the grid")
        screen = app.screen_under_test
        header = screen.query_one("#bk-header", Static)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert requests(paths) == []

        await pilot.press("s", "y")
        await until(pilot, lambda: len(requests(paths)) == 1, what="the request")
        [request] = requests(paths)
        assert (request.action, request.source) == ("stop", "tui")
        await until(pilot, lambda: "stop requested…" in text(header))

        write_state(paths, total=6, running=[running("t002", "b")], acked=[request.id])
        await until(pilot, lambda: "requested…" not in text(header), timeout=10, what="the ack")

        await pilot.press("a", "y")  # (control.json keeps only requests not acknowledged)
        await until(pilot, lambda: [r.action for r in requests(paths)] == ["abort"], what="abort")
        await until(pilot, lambda: "abort requested…" in text(header))


async def test_a_finished_run_offers_no_stop(tmp_path: Path) -> None:
    paths = bf.make_run(tmp_path / "repo", bf.spec(1, ("a",)), phase="complete")
    bf.append(paths, bf.record("t000", "a", "passed"))
    app = BakeoffApp(paths)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: opened(app, 1), what="the grid")
        await until(pilot, lambda: app.screen_under_test.probe is not None)
        assert app.screen_under_test.check_action("stop", ()) is None
        await pilot.press("s")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "ended: finished" in text(app.screen_under_test.query_one("#bk-header", Static))


async def test_a_200_task_run_opens_and_scrolls(tmp_path: Path) -> None:
    paths = bf.make_run(tmp_path / "repo", bf.spec(200, ("a", "b", "c"), attempts=2))
    bf.append(
        paths,
        *(
            bf.record(f"t{i:03d}", v, "passed" if i % 3 else "failed", attempt=n)
            for i in range(200)
            for v in "abc"
            for n in (1, 2)
        ),
    )
    app = BakeoffApp(paths)
    started = time.monotonic()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: opened(app, 200), timeout=10, what="200 rows")
        elapsed = time.monotonic() - started
        _, grid, _ = parts(app)
        assert grid.glyphs("t199", "c") == "✓✓" and grid.glyphs("t198", "a") == "✗✗"
        assert elapsed < 5, f"opening took {elapsed:.2f}s"  # the benchmark holds it to 1 s
        await pilot.press("end", "right", "right")
        assert grid.cursor == ("t199", "b", 1)
        assert grid.render_line(grid.page_rows).text.split()[0] == "t199"
        await pilot.press("home")
        assert grid.cursor == ("t000", "b", 1) and grid.scroll_y == 0


async def test_the_app_opens_bakeoff_runs_and_home_lists_them(tmp_path: Path) -> None:
    paths = three_by_two(tmp_path)
    app = ExpdApp(run=ref_for_dir(paths.dir))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BakeoffScreen), what="the dashboard")
        assert app.repo == (tmp_path / "repo").resolve()
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen))
        home = app.screen
        assert isinstance(home, HomeScreen)
        await until(pilot, lambda: home.loaded)
        run_key = f"bakeoff-run:bk/{bf.STAMP}"
        assert home._order == ["bakeoff:bk", run_key]
        assert home.selected_key() == run_key
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BakeoffScreen), what="reopened")
        assert app.last_run is not None and app.last_run.is_bakeoff
