"""Lanes on the run dashboard: the lanes strip (one line per lane, live from state.json, its elapsed
times moving with the clock), the lane column of the results table and the lane and the incumbent
a change was made against in the experiment's evidence — and none of it in a run without lanes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from shared.display import DASH
from shared.runs import RunRef
from shared.schema import LaneState, ResultRecord, RunManifest
from tests.fake_runs import FakeRun, make_run, result
from tests.tui_fakes import (
    NOW,
    RESULTS,
    FakeSource,
    Kills,
    RunApp,
    make_app,
    opened,
    record,
    run_dir,
    state,
)
from tests.tui_util import until
from tui.app import ExpdApp
from tui.messages import ResultsAppended, RunOpened, StateChanged
from tui.screens.run import RunScreen
from tui.widgets import AgentLog, LanesStrip, ResultsTable
from tui.widgets.lanes_strip import row_of, strip_content, strip_title

SnapCompare = Callable[..., bool]
SMALL = (80, 24)
REASON = "agent failed 3 times in a row: exit 1"
INCUMBENT = "a" * 40
OLDER = "b" * 40


def lanes_at(now: float) -> list[LaneState]:
    """Four lanes: two agents, one measurement, one paused lane."""
    return [
        LaneState(lane=1, phase="agent_running", experiment=7, since=now - 65, node="gpu-box"),
        LaneState(lane=2, phase="measuring", experiment=6, since=now - 12, node="gpu-box"),
        LaneState(lane=3, phase="agent_running", experiment=8, since=now - 3, node="gpu-box"),
        LaneState(lane=4, phase="paused", since=now - 600, node="gpu-box", paused=REASON),
    ]


def laned(n: int, status: str, metric: float | None, lane: int | None) -> ResultRecord:
    rec = result(n, status, metric)
    rec.lane = lane
    if lane is not None:
        rec.parent = INCUMBENT
    return rec


def lanes_run(tmp_path: Path) -> FakeRun:
    """A live run of four lanes with a baseline and three experiments, one replayed onto a newer
    incumbent than the one its agent started from."""
    now = time.time()
    run = make_run(tmp_path / "repo", live=True, experiment=8, lanes=lanes_at(now))
    replayed = laned(3, "discard", 4.6, 2)
    replayed.made_against = OLDER
    run.add_results(
        laned(0, "baseline", 5.0, None),
        laned(1, "keep", 4.0, 1),
        laned(2, "keep", 4.5, 3),
        replayed,
    )
    return run


def ref_of(run: FakeRun) -> RunRef:
    return RunRef(run.program, run.stamp, run.paths, run.repo)


def strip_of(app: Any) -> LanesStrip:
    return app.screen.query_one(LanesStrip)


def strip_lines(app: Any) -> list[str]:
    return strip_of(app).render().plain.splitlines()


async def wait(pilot: Pilot[Any], predicate: Callable[[], object], what: str = "") -> None:
    """Until `predicate()` holds: file watching on a loaded machine may take a while."""
    await until(pilot, predicate, timeout=15.0, what=what)


async def post(pilot: Pilot[None], *messages: object) -> None:
    screen = pilot.app.run_screen  # type: ignore[attr-defined]
    for message in messages:
        screen.post_message(message)
    await pilot.pause()


# ---------------------------------------------------------------------------- the real source


async def test_the_strip_shows_every_lane_and_follows_state_json(tmp_path: Path) -> None:
    run = lanes_run(tmp_path)
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen) and strip_of(app).rows)
            strip = strip_of(app)
            # Rows are set before the next layout pass sizes the strip.
            await wait(pilot, lambda: strip.region.height == 2 + 4, "the strip laid out")
            assert strip.display  # border, four lanes
            assert strip.border_title == "lanes · 2 agent_running · 1 measuring · 1 paused"
            one, two, four = strip.cells_of(1), strip.cells_of(2), strip.cells_of(4)
            assert one[:3] == ("lane 1", "agent_running", "#7") and one.node == "gpu-box"
            assert re.fullmatch(r"1m[0-5]\ds", one.elapsed)  # 65 s ago, give or take a slow start
            assert two[:3] == ("lane 2", "measuring", "#6") and two.paused == ""
            assert four[:3] == ("lane 4", "paused", DASH) and four.reason == REASON
            assert strip.tooltip == f"lane 4 paused: {REASON}"
            lines = strip_lines(app)
            assert [line.split()[:3] for line in lines[:3]] == [
                ["lane", "1", "agent_running"],
                ["lane", "2", "measuring"],
                ["lane", "3", "agent_running"],
            ]
            assert lines[3].split()[:3] == ["lane", "4", "paused"] and lines[3].endswith(REASON)
            assert REASON not in "".join(lines[:3])
            assert all(len(line) <= strip.size.width for line in lines)

            now = time.time()
            moved = [
                LaneState(lane=1, phase="waiting", experiment=7, since=now, node="gpu-box"),
                LaneState(lane=2, phase="idle", since=now, node="gpu-box"),
                LaneState(lane=3, phase="measuring", experiment=8, since=now, node="gpu-box"),
                LaneState(lane=4, phase="agent_running", experiment=9, since=now, node="gpu-box"),
            ]
            run.write_state(phase="measuring", experiment=9, lanes=moved)
            await wait(pilot, lambda: strip.cells_of(4).experiment == "#9", what="new state")
            assert strip.cells_of(1).phase == "waiting" and strip.cells_of(2).experiment == DASH
            assert strip.cells_of(4).reason == "" and strip.tooltip is None
            assert (
                strip.border_title == "lanes · 1 agent_running · 1 waiting · 1 measuring · 1 idle"
            )
    finally:
        run.die()


async def test_results_show_the_lane_and_the_detail_names_it(tmp_path: Path) -> None:
    run = lanes_run(tmp_path)
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(140, 34)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen))
            table = app.screen.query_one(ResultsTable)
            await wait(pilot, lambda: table.row_count == 4, what="four rows")
            assert [c.label for c in table.columns][:4] == ["#", "status", "lane", "metric"]
            assert [table.get_row(k)[2].plain for k in "0123"] == [DASH, "1", "3", "2"]

            table.focus()
            evidence = app.screen.query_one("#detail-evidence", Static)
            await pilot.press("down")
            await wait(pilot, lambda: "#1 keep" in str(evidence.render()), what="detail #1")
            text = str(evidence.render())
            assert "lane     1\n" in text and "made against" not in text
            await pilot.press("down", "down")
            await wait(pilot, lambda: "#3 discard" in str(evidence.render()), what="detail #3")
            text = str(evidence.render())
            assert "lane         2\n" in text
            assert f"made against {OLDER[:12]} (replayed onto {INCUMBENT[:12]})" in text
            await pilot.press("home")
            await wait(pilot, lambda: "#0 baseline" in str(evidence.render()))
            assert "lane " not in str(evidence.render())  # the baseline belongs to no lane
    finally:
        run.die()


async def test_a_run_without_lanes_has_no_strip_and_no_column(tmp_path: Path) -> None:
    run = make_run(tmp_path / "repo", live=True, experiment=1)
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen))
            screen = app.screen
            assert isinstance(screen, RunScreen)
            table = screen.query_one(ResultsTable)
            await wait(pilot, lambda: table.row_count == 2)
            strip = strip_of(app)
            assert not strip.display and strip.region.height == 0 and not strip.rows
            assert "lane" not in [c.label for c in table.columns] and not table.lanes
            run.write_state(phase="measuring", experiment=2)  # a later state: still no lanes
            await wait(pilot, lambda: screen.header_state().phase == "measuring")
            assert not strip.display and not table.lanes
    finally:
        run.die()


# ---------------------------------------------------------------------------- fed by hand


def clocked_app(tmp_path: Path, clock: list[float], *messages: Any) -> RunApp:
    """A dashboard whose clock the test moves (`clock[0]`)."""
    paths = run_dir(tmp_path)
    screen = RunScreen(
        RunRef("prog", "20260101-120000", paths),
        FakeSource(paths, *messages),
        clock=lambda: clock[0],
        kill=Kills(),
    )
    return RunApp(screen)


async def test_elapsed_moves_with_the_clock_and_repaints_once_a_second(tmp_path: Path) -> None:
    clock = [NOW]
    app = clocked_app(tmp_path, clock, opened(lanes=lanes_at(NOW)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        strip = strip_of(app)
        screen = app.run_screen
        assert strip.cells_of(1).elapsed == "1m05s" and strip.cells_of(3).elapsed == "3s"
        repaints: list[bool] = []
        original = strip.refresh

        def counting(*args: Any, **kwargs: Any) -> Any:
            repaints.append(True)
            return original(*args, **kwargs)

        strip.refresh = counting  # type: ignore[method-assign]
        clock[0] = NOW + 0.25
        screen.tick()
        await post(pilot, StateChanged(state(detail="agent: reading", lanes=lanes_at(NOW))))
        await post(pilot, ResultsAppended([record(6, "discard", 9.7)]))
        assert repaints == []  # nothing shown changed
        clock[0] = NOW + 1.0
        screen.tick()
        assert repaints and strip.cells_of(1).elapsed == "1m06s"
        assert strip.cells_of(4).elapsed == "10m01s"

        done = state(phase="complete", updated_at=NOW + 2.0, lanes=lanes_at(NOW))
        await post(pilot, StateChanged(done))
        clock[0] = NOW + 100
        screen.tick()
        assert strip.cells_of(1).elapsed == "1m07s"  # the run ended: time stops with it


async def test_lanes_fit_at_80x24_and_many_lanes_are_counted(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(lanes=lanes_at(NOW)))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        screen = app.run_screen
        strip = strip_of(app)
        assert strip.region.height == 6 and strip.region.right <= SMALL[0]
        assert screen.query_one(ResultsTable).region.height >= 5
        assert screen.query_one(AgentLog).region.height >= 5
        lines = strip_lines(app)
        assert len(lines) == 4 and all(len(line) <= strip.size.width for line in lines)
        assert "agent failed" in lines[3]

        many = [
            LaneState(lane=n, phase="agent_running", experiment=10 + n, since=NOW, node="n")
            for n in range(1, 101)
        ]
        await post(pilot, StateChanged(state(lanes=many)))
        assert strip.region.height <= 6
        lines = strip_lines(app)
        assert lines[-1] == f"… {100 - (len(lines) - 1)} more lanes"
        assert strip.border_title == "lanes · 100 agent_running"
        assert screen.query_one(ResultsTable).region.height >= 5


async def test_the_lane_column_arrives_with_the_first_laned_result(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(RESULTS))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.run_screen.query_one(ResultsTable)
        assert not table.lanes and not strip_of(app).display
        table.focus()
        await pilot.press("down", "down")
        scroll = table.scroll_y
        lane_record = record(6, "keep", 7.5)
        lane_record.lane = 2
        lane_record.arm = "fast"
        await post(pilot, ResultsAppended([lane_record]))
        assert table.lanes and table.arms and table.row_count == 7
        assert table.cursor_row == 2 and table.scroll_y == scroll  # nothing moved
        assert [c.label for c in table.columns][:5] == ["#", "status", "arm", "lane", "metric"]
        assert [table.get_row("6")[i].plain for i in (2, 3)] == ["fast", "2"]
        assert [table.get_row("2")[i].plain for i in (1, 2, 3)] == ["discard", DASH, DASH]


def test_a_lane_paused_mid_measurement_is_marked_and_empty_nodes_take_no_room() -> None:
    lanes = [
        LaneState(lane=2, phase="measuring", experiment=5, since=NOW - 5, paused=REASON),
        LaneState(lane=1, phase="idle"),
    ]
    rows = tuple(row_of(lane, NOW) for lane in sorted(lanes, key=lambda lane: lane.lane))
    assert rows[0][:4] == ("lane 1", "idle", DASH, DASH) and rows[1].paused == "paused"
    lines = strip_content(rows, 80).plain.splitlines()
    assert lines == [
        "lane 1  idle        —   —",
        f"lane 2  measuring  #5  5s  paused: {REASON}",
    ]
    narrow = strip_content(rows, 40).plain.splitlines()  # no room for the reason: the marker stays
    assert narrow[1] == "lane 2  measuring  #5  5s  paused"
    assert strip_title(lanes) == "lanes · 1 measuring · 1 idle"


# ---------------------------------------------------------------------------- the look


def test_dashboard_with_lanes_100x30(snap_compare: SnapCompare, tmp_path: Path) -> None:
    results = [record(r.experiment, r.status, r.metric, r.description) for r in RESULTS]
    for rec, lane in zip(results, [None, 1, 2, 1, 3, 2], strict=True):
        rec.lane = lane
    manifest = RunManifest(run_id="prog/20260101-120000", program="prog", created_at=NOW - 3600)
    app, _, _ = make_app(
        tmp_path, RunOpened(manifest, state(in_flight=None, lanes=lanes_at(NOW)), results)
    )
    assert snap_compare(app, terminal_size=(100, 30))
