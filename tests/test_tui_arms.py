"""Arms on the run dashboard: the arms panel (per-arm numbers and share bars, live from state.json),
the arm column of the results table and the arm in the experiment's evidence — and none of it in
a run without arms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from shared import codec
from shared.atomic import write_atomic
from shared.display import DASH
from shared.runs import RunRef
from shared.schema import ArmStats, ResultRecord, RunManifest
from tests.fake_runs import FakeRun, make_run, result
from tests.tui_fakes import RESULTS, make_app, opened, record, state
from tests.tui_util import until
from tui.app import ExpdApp
from tui.messages import ResultsAppended, RunOpened, StateChanged
from tui.screens.run import RunScreen
from tui.widgets import AgentLog, ArmsPanel, ResultsTable
from tui.widgets.arms_panel import BAR_MIN, LEGEND, bar

SnapCompare = Callable[..., bool]
SMALL = (80, 24)
REASON = "provider unavailable: quota exhausted"
STATS = [
    ArmStats(id="fast", experiments=6, keeps=3, cost_usd=0.3, agent_s=60.0, tokens=600),
    ArmStats(id="careful", experiments=3, keeps=1, cost_usd=0.9, agent_s=90.0, tokens=900),
    ArmStats(id="broken", experiments=1, errors=1, agent_s=5.0, paused=REASON),
]
CONFIG = {
    "metric": "score",
    "direction": "lower",
    "arms": [{"id": "fast", "model": "m-small"}, {"id": "careful"}, {"id": "broken"}],
    "arms_policy": {"allocation": "thompson", "min_share": 0.1},
}


def armed(n: int, status: str, metric: float | None, arm: str | None) -> ResultRecord:
    rec = result(n, status, metric)
    rec.arm = arm
    return rec


def arms_run(tmp_path: Path, **fields: object) -> FakeRun:
    """A live run of three arms (one paused) with a baseline and two experiments."""
    run = make_run(tmp_path / "repo", live=True, experiment=2, arm_stats=STATS, **fields)
    manifest = codec.read_optional(run.paths.run_json, RunManifest)
    assert manifest is not None
    manifest.config = CONFIG
    write_atomic(run.paths.run_json, codec.encode(manifest), durable=False)
    run.add_results(
        armed(0, "baseline", 5.0, None),
        armed(1, "keep", 4.0, "fast"),
        armed(2, "discard", 4.5, "careful"),
    )
    return run


def screen_of(app: ExpdApp) -> RunScreen:
    assert isinstance(app.screen, RunScreen)
    return app.screen


def panel_of(app: Any) -> ArmsPanel:
    return app.screen.query_one(ArmsPanel)


def panel_lines(app: Any) -> list[str]:
    return panel_of(app).render().plain.splitlines()


def filled(line: str) -> float:
    """How many cells of a line's share bar are filled (eighths count)."""
    blocks = " ▏▎▍▌▋▊▉█"
    return sum(blocks.index(c) / 8 for c in line if c in blocks[1:])


async def wait(pilot: Pilot[Any], predicate: Callable[[], object], what: str = "") -> None:
    """Until `predicate()` holds: file watching on a loaded machine may take a while."""
    await until(pilot, predicate, timeout=15.0, what=what)


def ref_of(run: FakeRun) -> RunRef:
    return RunRef(run.program, run.stamp, run.paths, run.repo)


# ---------------------------------------------------------------------------- the real source


async def test_panel_shows_every_arm_and_follows_state_json(tmp_path: Path) -> None:
    run = arms_run(tmp_path)
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen) and panel_of(app).rows)
            panel = panel_of(app)
            # Rows are set before the next layout pass sizes the panel.
            await until(pilot, lambda: panel.region.height == 2 + 1 + 3, timeout=15.0)
            assert panel.display  # border, header, arms
            assert panel.border_title == "arms · thompson · floor 10%"
            fast, careful, broken = (
                panel.cells_of("fast"),
                panel.cells_of("careful"),
                panel.cells_of("broken"),
            )
            assert fast[:8] == ("fast", "", "6", "3", "50%", "$0.30", "10s", "60%")
            assert careful[:8] == ("careful", "", "3", "1", "33%", "$0.90", "30s", "30%")
            assert broken[:8] == ("broken", "paused", "1", "0", "0%", "$0.00", "5s", "10%")
            assert panel.tooltip == f"{LEGEND}\nbroken paused: {REASON}"

            header, *lines = panel_lines(app)
            assert header.split() == ["arm", "exp", "keeps", "keep%", "cost", "agent", "share"]
            assert [line.split()[0] for line in lines] == ["fast", "careful", "broken"]
            assert "paused" in lines[2] and "paused" not in lines[0] + lines[1]
            assert all(len(line) <= panel.size.width for line in lines)
            shares = [filled(line) for line in lines]  # bars in proportion 6 : 3 : 1
            width = round(shares[0] / 0.6)
            assert width >= BAR_MIN
            expected = (0.6, 0.3, 0.1)
            assert all(abs(s - e * width) <= 1 / 16 for s, e in zip(shares, expected, strict=True))

            grown = [
                ArmStats(id="fast", experiments=7, keeps=4, cost_usd=0.35, agent_s=70.0),
                ArmStats(id="careful", experiments=7, keeps=1, cost_usd=2.1, agent_s=210.0),
                ArmStats(id="broken", experiments=1, errors=1, agent_s=5.0),  # resumed
            ]
            run.write_state(phase="agent_running", experiment=15, arm_stats=grown)
            await wait(
                pilot, lambda: panel.cells_of("careful").experiments == "7", what="new state"
            )
            assert panel.cells_of("fast")[2:8] == ("7", "4", "57%", "$0.35", "10s", "47%")
            assert panel.cells_of("careful").share_text == "47%"
            assert panel.cells_of("broken").paused == "" and panel.tooltip == LEGEND
            lines = panel_lines(app)[1:]
            assert filled(lines[0]) == filled(lines[1]) > 7 * filled(lines[2]) - 1
    finally:
        run.die()


async def test_results_show_the_arm_and_the_detail_names_it(tmp_path: Path) -> None:
    run = arms_run(tmp_path)
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(140, 34)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen))
            table = screen_of(app).query_one(ResultsTable)
            await wait(pilot, lambda: table.row_count == 3, what="three rows")
            assert [c.label for c in table.columns][:4] == ["#", "status", "arm", "metric"]
            assert [table.get_row(k)[2].plain for k in ("0", "1", "2")] == [DASH, "fast", "careful"]
            assert table.render_line(0).text.split()[:4] == ["#", "status", "arm", "metric"]

            run.add_results(armed(3, "keep", 3.9, "careful"))
            await wait(pilot, lambda: table.has_row("3"), what="row 3")
            assert table.get_row("3")[2].plain == "careful"

            table.focus()
            await pilot.press("down")
            evidence = screen_of(app).query_one("#detail-evidence", Static)
            await wait(pilot, lambda: "#1 keep" in str(evidence.render()), what="detail")
            assert "arm      fast" in str(evidence.render())
            await pilot.press("up")
            await wait(pilot, lambda: "#0 baseline" in str(evidence.render()))
            assert "arm " not in str(evidence.render())  # the baseline belongs to no arm
    finally:
        run.die()


async def test_a_run_without_arms_has_no_panel_and_no_column(tmp_path: Path) -> None:
    run = make_run(tmp_path / "repo", live=True, experiment=1)
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    try:
        app = ExpdApp(run=ref_of(run))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, RunScreen))
            screen = screen_of(app)
            table = screen.query_one(ResultsTable)
            await wait(pilot, lambda: table.row_count == 2)
            panel = panel_of(app)
            assert not panel.display and panel.region.height == 0 and not panel.rows
            assert [c.label for c in table.columns] == [
                "#",
                "status",
                "metric",
                "Δ%",
                "change",
                "description",
            ]
            table.focus()
            await pilot.press("down")
            evidence = screen.query_one("#detail-evidence", Static)
            await wait(pilot, lambda: "#1 keep" in str(evidence.render()))
            assert "arm " not in str(evidence.render())
            run.write_state(phase="measuring", experiment=2)  # a later state: still no arms
            await wait(pilot, lambda: screen.header_state().phase == "measuring")
            assert not panel.display and not table.arms
    finally:
        run.die()


# ---------------------------------------------------------------------------- fed by hand


async def test_the_panel_repaints_only_when_a_cell_changes(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(arm_stats=STATS))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        panel = panel_of(app)
        assert len(panel.rows) == 3
        repaints: list[bool] = []
        original = panel.refresh

        def counting(*args: Any, **kwargs: Any) -> Any:
            repaints.append(True)
            return original(*args, **kwargs)

        panel.refresh = counting  # type: ignore[method-assign]
        same = [ArmStats(**codec.to_builtins(a)) for a in STATS]
        await post(pilot, StateChanged(state(detail="agent: reading", arm_stats=same)))
        await post(pilot, ResultsAppended([record(6, "discard", 9.7)]))
        assert repaints == []
        more = [*same[:2], ArmStats(id="broken", experiments=2, errors=2, agent_s=5.0)]
        await post(pilot, StateChanged(state(arm_stats=more)))
        assert repaints and panel.cells_of("broken").experiments == "2"


async def test_arms_fit_at_80x24_and_a_long_list_is_counted(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(arm_stats=STATS))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        screen = app.run_screen
        panel = panel_of(app)
        assert panel.region.height == 6 and panel.region.right <= SMALL[0]
        assert screen.query_one(ResultsTable).region.height >= 5
        assert screen.query_one(AgentLog).region.height >= 5
        lines = panel_lines(app)
        assert "paused" in lines[3] and all(len(line) <= panel.size.width for line in lines)

        many = [ArmStats(id=f"arm-{n}", experiments=n + 1) for n in range(9)]
        await post(pilot, StateChanged(state(arm_stats=many)))
        assert panel.region.height <= 7
        lines = panel_lines(app)
        assert lines[-1] == f"… {9 - (len(lines) - 2)} more arms"
        assert screen.query_one(ResultsTable).region.height >= 5


async def test_declared_arms_show_before_the_first_state(tmp_path: Path) -> None:
    manifest = RunManifest(run_id="prog/20260101-120000", program="prog", config=CONFIG)
    app, _, _ = make_app(tmp_path, RunOpened(manifest, None, [record(0, "baseline", 10.0)]))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        panel = panel_of(app)
        assert [row.id for row in panel.rows] == ["fast", "careful", "broken"]
        assert panel.cells_of("fast")[2:8] == ("0", "0", DASH, "$0.00", DASH, DASH)
        table = app.run_screen.query_one(ResultsTable)
        assert table.arms and table.get_row("0")[2].plain == DASH


async def test_the_arm_column_arrives_with_the_first_armed_result(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(RESULTS))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.run_screen.query_one(ResultsTable)
        assert not table.arms and not panel_of(app).display
        table.focus()
        await pilot.press("down", "down")
        scroll = table.scroll_y
        armed_record = record(6, "keep", 7.5)
        armed_record.arm = "fast"
        await post(pilot, ResultsAppended([armed_record]))
        assert table.arms and table.row_count == 7
        assert table.cursor_row == 2 and table.scroll_y == scroll  # nothing moved
        assert table.get_row("6")[2].plain == "fast" and table.get_row("2")[2].plain == DASH
        assert table.get_row("2")[1].plain == "discard"  # every row re-laid in the new columns
        assert table.column_widths[2] == len("fast")


async def post(pilot: Pilot[None], *messages: object) -> None:
    screen = pilot.app.run_screen  # type: ignore[attr-defined]
    for message in messages:
        screen.post_message(message)
    await pilot.pause()


def test_bar_is_proportional_in_eighths() -> None:
    assert bar(0.0, 8) == " " * 8
    assert bar(1.0, 8) == "█" * 8
    assert bar(0.5, 8) == "████    "
    assert bar(1 / 16, 8) == "▌       "
    assert bar(2.0, 4) == "████"  # never past its width


# ---------------------------------------------------------------------------- the look


def test_dashboard_with_arms_100x30(snap_compare: SnapCompare, tmp_path: Path) -> None:
    results = [record(r.experiment, r.status, r.metric, r.description) for r in RESULTS]
    for rec, arm in zip(results, [None, "fast", "careful", "broken", "fast", "fast"], strict=True):
        rec.arm = arm
    manifest = RunManifest(run_id="prog/20260101-120000", program="prog", config=CONFIG)
    app, _, _ = make_app(tmp_path, RunOpened(manifest, state(arm_stats=STATS), results))
    assert snap_compare(app, terminal_size=(100, 30))
