"""The run dashboard, driven by a fake source posting the messages the real one would."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from rich.style import Style
from textual.pilot import Pilot
from textual.widgets import Input, Log, Static

from shared import codec
from shared.liveness import Probe
from shared.paths import RunPaths
from shared.schema import ControlFile, ControlRequest
from tests.tui_fakes import (
    PID,
    RESULTS,
    RUN_ID,
    Kills,
    RunApp,
    make_app,
    opened,
    record,
    state,
)
from tui.messages import (
    LivenessChanged,
    LogAppended,
    ResultsAppended,
    SourceProblem,
    StateChanged,
)
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.prompt import PromptScreen
from tui.screens.run import RunScreen
from tui.widgets import AgentLog, ExperimentDetail, PhaseBar, ResultsTable, StatsHeader
from tui.widgets.agent_log import MAX_LINES

WIDE = (130, 36)
SMALL = (80, 24)


def text_of(app: RunApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def header(app: RunApp) -> str:
    stats = app.run_screen.query_one(StatsHeader)
    return "\n".join(str(s.render()) for s in stats.query(Static))


def phase(app: RunApp) -> str:
    bar = app.run_screen.query_one(PhaseBar)
    return "\n".join(str(s.render()) for s in bar.query(Static))


def banner(app: RunApp) -> str | None:
    return app.run_screen.query_one(PhaseBar).banner_text


async def post(pilot: Pilot[None], *messages: object) -> None:
    screen = pilot.app.run_screen  # type: ignore[attr-defined]
    for message in messages:
        screen.post_message(message)
    await pilot.pause()


async def settle(pilot: Pilot[None]) -> None:
    """Let thread workers (control writes, file reads) finish and their callbacks run."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def requests(paths: RunPaths) -> list[ControlRequest]:
    found = codec.read_optional(paths.control, ControlFile)
    return found.requests if found is not None else []


# ---------------------------------------------------------------------------- what it shows


async def test_header_after_run_opened_and_state_changed(tmp_path: Path) -> None:
    app, source, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        assert source.target is app.run_screen
        text = header(app)
        assert RUN_ID in text
        assert "experiment 6/20" in text
        assert "keep 2" in text and "discard 1" in text and "crash 1" in text
        assert "measure-fail 1" in text
        assert "10 → 8 at #5 (20.0% better)" in text
        assert "$0.25" in text and "10.0k tokens" in text
        assert "elapsed 1h00m" in text
        # 15 experiments left × 6 min each, less the minute the current one has taken.
        assert "ETA ~1h29m" in text
        assert app.run_screen.query_one("#stats-sparkline").data == [10.0, 9.0, 9.5, 8.0]
        assert "agent_running — agent: editing src/parse.py" in phase(app)

        await post(pilot, StateChanged(state(phase="measuring", detail="measuring 3/5", keeps=3)))
        assert "measuring 3/5" in phase(app)
        assert "keep 3" in header(app)
    assert source.detached


async def test_rows_keyed_and_styled_by_status(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        table = app.run_screen.query_one(ResultsTable)
        assert table.row_keys == ["0", "1", "2", "3", "4", "5"]
        colours = app.theme_variables
        expected = {
            "0": ("baseline", colours["text-primary"]),
            "1": ("keep", colours["text-success"]),
            "3": ("crash", colours["text-error"]),
            "4": ("measure-fail", colours["text-warning"]),
        }
        for key, (word, colour) in expected.items():
            status = table.get_row(key)[1]
            assert status.plain == word  # the word itself, not only its colour
            assert Style.parse(str(status.style)).color.name.lower() == colour.lower()
        discard = table.get_row("2")[1]
        assert discard.plain == "discard" and Style.parse(str(discard.style)).dim
        assert table.get_row("1")[3].plain == "-10.0%"

        app.theme = "textual-light"  # colours follow the user's theme
        await pilot.pause()
        keep = table.get_row("1")[1]
        assert (
            Style.parse(str(keep.style)).color.name.lower()
            == app.theme_variables["text-success"].lower()
        )


async def test_appended_rows_keep_the_cursor_and_are_not_duplicated(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, opened(RESULTS[:3]))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        table = app.run_screen.query_one(ResultsTable)
        table.focus()
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await post(pilot, ResultsAppended(RESULTS[2:]))  # one already shown, three new
        assert table.row_count == 6
        assert table.cursor_row == 2
        assert table.get_row_at(2)[0].plain == "2"
        assert header(app).count("experiment 6/20") == 1
        await post(pilot, ResultsAppended([record(2, "keep", 9.5)]))  # a changed record
        assert table.get_row("2")[1].plain == "keep"
        assert table.row_count == 6 and table.cursor_row == 2


async def test_long_table_keys_mouse_and_appends_off_screen(tmp_path: Path) -> None:
    many = [record(0, "baseline", 10.0), *(record(n, "discard", 10.0 + n) for n in range(1, 300))]
    app, _, _ = make_app(tmp_path, opened(many))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        screen = app.run_screen
        table = screen.query_one(ResultsTable)
        assert app.focused is table
        page = table.page_rows
        await pilot.press("pagedown", "pagedown", "pageup")
        assert table.cursor_row == page
        await pilot.press("end")
        assert table.cursor_row == 299 and table.scroll_y == table.max_scroll_y
        assert table.render_line(table.page_rows).text.split()[0] == "299"  # the last line
        await pilot.press("up", "home")
        assert table.cursor_row == 0 and table.scroll_y == 0

        # border, header, rows 0 and 1: the fifth line of the widget is row 2
        await pilot.click(ResultsTable, offset=(3, 4))
        await settle(pilot)
        assert table.cursor_row == 2 and screen.query_one(ExperimentDetail).experiment == 2
        assert not screen.has_class("-detail")
        await pilot.click(ResultsTable, offset=(3, 1))  # the header is not a row
        assert table.cursor_row == 2 and not screen.has_class("-detail")
        await pilot.click(ResultsTable, offset=(3, 4))  # a click on the cursor row opens it
        await settle(pilot)
        assert screen.has_class("-detail") and screen.query_one(ExperimentDetail).display

        table.scroll_to(y=100, animate=False)
        await post(pilot, ResultsAppended([record(300, "keep", 5.0)]))
        assert table.row_count == 301 and table.has_row("300")
        assert table.cursor_row == 2 and table.scroll_y == 100  # nothing moved
        assert table.render_line(0).text.split()[:2] == ["#", "status"]  # the header stays
        assert table.render_line(1).text.split()[:2] == ["100", "discard"]


async def test_selection_shows_evidence_patch_and_log(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        await settle(pilot)
        detail = app.run_screen.query_one(ExperimentDetail)
        assert detail.experiment == 2
        evidence = text_of(app, "#detail-evidence")
        assert "#2 discard" in evidence and "reason 2" in evidence
        assert "samples  9.5, 9.595, 9.405" in evidence
        assert "candidate_samples" in evidence and "threshold" in evidence
        assert "+PATTERN = re.compile" in text_of(app, "#detail-patch")
        log = app.run_screen.query_one("#detail-log", Log)
        assert "edited src/parse.py: cache the regex" in log.lines

        await pilot.press("up", "up")  # the baseline has no patch and no log file
        await settle(pilot)
        assert "no patch" in text_of(app, "#detail-patch")
        assert app.run_screen.query_one("#detail-log", Log).lines[0] == "no agent log for #0"


async def test_narrow_enter_opens_the_experiment_and_escape_returns(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        screen = app.run_screen
        assert screen.has_class("-narrow")
        assert screen.query_one(AgentLog).display and not screen.query_one(ExperimentDetail).display
        await pilot.press("down", "enter")
        await settle(pilot)
        assert screen.query_one(ExperimentDetail).display
        assert not screen.query_one(AgentLog).display
        assert screen.query_one(ExperimentDetail).experiment == 1
        await pilot.press("escape")
        assert screen.query_one(AgentLog).display and not screen.query_one(ExperimentDetail).display


async def test_agent_log_is_bounded_and_follows_only_at_the_tail(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        log = app.run_screen.query_one(AgentLog)
        assert log.border_title == "agent · #6"
        assert list(log.lines) == [
            "planning: the reader copies every line",
            " ",
            "editing src/parse.py",
        ]
        await post(pilot, LogAppended(6, [f"line {i}" for i in range(MAX_LINES + 500)]))
        assert log.line_count <= MAX_LINES
        assert log.lines[-1] == f"line {MAX_LINES + 499}"
        assert log.is_vertical_scroll_end

        log.scroll_to(y=10, animate=False, immediate=True)
        await post(pilot, LogAppended(6, ["more", "and more"]))
        assert log.scroll_y == 10  # the user scrolled up: stay there

        await post(pilot, LogAppended(7, ["new experiment"], reset=True))
        assert list(log.lines) == ["new experiment"] and log.border_title == "agent · #7"


# ---------------------------------------------------------------------------- keys and control


async def test_stop_confirms_writes_a_request_and_shows_requested_until_acked(
    tmp_path: Path,
) -> None:
    app, _, paths = make_app(tmp_path)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert requests(paths) == []

        await pilot.press("s")
        await pilot.press("y")
        await settle(pilot)
        [request] = requests(paths)
        assert (request.action, request.source) == ("stop", "tui") and request.id
        assert "stop requested…" in phase(app)

        await post(pilot, StateChanged(state(acked=["other"])))
        assert "stop requested…" in phase(app)
        await post(pilot, StateChanged(state(acked=[request.id], message="stop requested")))
        assert "requested…" not in phase(app)
        assert any("acknowledged" in n.message for n in app._notifications)


async def test_abort_escalates_to_a_kill_offer_when_not_acknowledged(tmp_path: Path) -> None:
    kills = Kills()
    app, _, paths = make_app(tmp_path, abort_timeout=0.1, kills=kills)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        screen = app.run_screen
        assert screen.check_action("kill", ()) is False  # a healthy daemon is not offered
        await pilot.press("K")
        assert not isinstance(app.screen, ConfirmScreen)

        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        [request] = requests(paths)
        assert request.action == "abort"
        assert "abort requested…" in phase(app)
        for _ in range(50):  # the escalation timer (0.1 s) on a possibly busy machine
            if banner(app) is not None:
                break
            await pilot.pause(0.05)
        assert banner(app) is not None and "abort not acknowledged" in banner(app)
        assert f"press K to kill the daemon (pid {PID})" in banner(app)
        assert f"expd resume {RUN_ID}" in banner(app)
        assert screen.check_action("kill", ()) is True

        await pilot.press("K")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert kills.calls == [(PID, signal.SIGKILL)]
        assert banner(app) is None or "abort not acknowledged" not in banner(app)


async def test_acknowledged_abort_does_not_escalate(tmp_path: Path) -> None:
    app, _, paths = make_app(tmp_path, abort_timeout=0.2)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("a", "y")
        await settle(pilot)
        [request] = requests(paths)
        await post(pilot, StateChanged(state(acked=[request.id])))
        await pilot.pause(0.3)
        assert banner(app) is None
        assert app.run_screen.check_action("kill", ()) is False


async def test_guidance_sends_text_and_empty_clears(tmp_path: Path) -> None:
    app, _, paths = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("g")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "  try a trie "
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("g")
        await pilot.press("escape")  # cancel: nothing sent
        await pilot.press("g", "enter")  # empty: clear
        await settle(pilot)
        sent = [(r.action, r.key, r.value) for r in requests(paths)]
        assert sent == [("set", "guidance", "try a trie"), ("set", "guidance", "")]
        assert "guidance requested…" in phase(app)


async def test_max_experiments_is_validated_in_the_modal(tmp_path: Path) -> None:
    app, _, paths = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("m")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("x", "enter")
        assert isinstance(app.screen, PromptScreen)
        assert "whole number" in text_of(app, "#prompt-error")
        app.screen.query_one(Input).value = "-1"
        await pilot.press("enter")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "30"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        [request] = requests(paths)
        assert (request.action, request.key, request.value) == ("set", "max_experiments", 30)
        assert "max experiments 30 requested…" in phase(app)


async def test_q_detaches_and_help_opens_and_closes(tmp_path: Path) -> None:
    app, source, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")
        await pilot.pause()
        assert app._exit
    assert source.detached


async def test_command_palette_offers_the_actions(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        app.screen.query_one(Input).value = "stop the run"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)


async def test_footer_shows_the_keys(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause()
        shown = {
            b.binding.action
            for b in app.run_screen.active_bindings.values()
            if b.binding.show and b.enabled
        }
        assert {"stop", "abort", "guidance", "max_experiments", "help", "detach"} <= shown


# ---------------------------------------------------------------------------- the run's fate


async def test_completion_notifies_with_the_reason(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await pilot.pause()
        done = state(
            phase="complete", termination_reason="max_experiments", in_flight=None, detail=""
        )
        await post(pilot, StateChanged(done), LivenessChanged(Probe("finished", PID, 3.0)))
        messages = [n.message for n in app._notifications]
        assert any("ended: max_experiments" in m for m in messages)
        assert banner(app) == "run complete: max_experiments"
        assert app.run_screen.check_action("stop", ()) is None  # shown disabled
        await post(pilot, StateChanged(done))
        assert len([n for n in app._notifications if "ended" in n.message]) == 1


async def test_dead_daemon_banner_says_how_to_resume(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await post(pilot, LivenessChanged(Probe("dead", PID, 40.0)))
        assert banner(app) == f"daemon is dead — resume with: expd resume {RUN_ID}"
        assert app.run_screen.query_one(PhaseBar).has_class("-error")
        assert "daemon dead" in phase(app)


async def test_hung_daemon_banner_offers_kill(tmp_path: Path) -> None:
    kills = Kills()
    app, _, _ = make_app(tmp_path, kills=kills)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await post(pilot, LivenessChanged(Probe("hung", PID, 42.0)))
        assert banner(app) == (
            f"no heartbeat for 42s — press K to kill it, then resume: expd resume {RUN_ID}"
        )
        await pilot.press("K", "y")
        await settle(pilot)
        assert kills.sigkilled == [PID]


async def test_newer_version_is_explained_not_crashed_on(tmp_path: Path) -> None:
    app, _, paths = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        text = "this run was written by a newer expd (phase 'thinking'); upgrade expd to watch it"
        await post(pilot, SourceProblem(text, newer_version=True))
        assert "newer expd" in (banner(app) or "")
        await pilot.press("s")
        assert isinstance(app.screen, RunScreen)  # no requests to a daemon it cannot read
        assert not paths.control.exists()


async def test_unknown_phase_in_state_is_treated_as_newer(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await post(pilot, StateChanged(state(phase="thinking")))
        assert "newer expd" in (banner(app) or "")
        assert "agent_running" in phase(app)  # the last state it understood


async def test_problem_without_newer_version_is_a_warning(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await post(pilot, SourceProblem("results.jsonl: skipped 1 unreadable line(s)"))
        assert banner(app) == "results.jsonl: skipped 1 unreadable line(s)"
        assert app.run_screen.query_one(PhaseBar).has_class("-warning")


@pytest.mark.parametrize("size", [SMALL, (100, 30), (200, 60)])
async def test_layout_fits(tmp_path: Path, size: tuple[int, int]) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await post(pilot, LivenessChanged(Probe("hung", PID, 42.0)))
        screen = app.run_screen
        for widget in (
            screen.query_one(StatsHeader),
            screen.query_one(PhaseBar),
            screen.query_one(ResultsTable),
            screen.query_one(AgentLog),
        ):
            region = widget.region
            assert region.width > 0 and region.height > 0
            assert region.right <= size[0] and region.bottom <= size[1]
        assert screen.query_one(ResultsTable).region.height >= 6
        assert screen.query_one(AgentLog).region.height >= 5


async def test_before_the_daemon_writes_a_state(tmp_path: Path) -> None:
    first = opened()
    first.state = None
    app, _, _ = make_app(tmp_path, first)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        assert "waiting for the daemon" in phase(app)
        assert "experiment 0/20" in header(app)
        await post(pilot, ResultsAppended([record(0, "baseline", 3.0)]))
        assert app.run_screen.query_one(ResultsTable).row_count == 6


async def test_drift_shows_as_a_warning_line_and_nothing_when_absent(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        assert banner(app) is None
        drifted = state(drift="incumbent 4.1% slower in 3 fresh runs", drift_at_experiment=4)
        await post(pilot, StateChanged(drifted))
        assert banner(app) == "drift at #4: incumbent 4.1% slower in 3 fresh runs"
        assert app.run_screen.query_one(PhaseBar).has_class("-warning")


SEQUENTIAL_EVIDENCE = {
    "policy": "sequential",
    "candidate_samples": [9.1, 9.0, 9.2, 8.9],
    "incumbent_samples": [10.0, 10.1, 9.9, 10.2],
    "fresh_incumbent_samples": [10.2, 9.9],
    "runs": {"candidate": 4, "incumbent": 2},
    "gates": [],
    "secondary": {
        "size": {"direction": "lower", "candidate": 120.0, "incumbent": 118.0, "change": -0.0169}
    },
    "effect": 0.094,
    "interval": [0.061, 0.127],
    "llr": 3.2,
    "bounds": [-1.558, 2.773],
    "delta": 0.02,
    "noise": 0.011,
    "scale": "log",
    "note": "",
    "pool": [9.1, 9.0, 9.2, 8.9],
    "drift": "incumbent 3.0% faster in 3 fresh runs",
}


async def test_sequential_evidence_reads_as_sentences_at_80x24(tmp_path: Path) -> None:
    base = record(1, "keep", 9.05, "inline the hot loop")
    base.evidence = SEQUENTIAL_EVIDENCE
    app, _, _ = make_app(tmp_path, opened([RESULTS[0], base]))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        await settle(pilot)
        evidence = text_of(app, "#detail-evidence")
        assert "effect    +9.40%  [+6.10% … +12.70%]" in evidence
        assert "runs      4 candidate + 2 incumbent (2 fresh)" in evidence
        assert "llr       3.2 (bounds -1.558 … 2.773)" in evidence
        assert "noise     CV 1.1%" in evidence and "delta     2.00%" in evidence
        assert "gates     all passed" in evidence
        assert "secondary size: 120 vs 118 (1.7% worse)" in evidence
        assert "drift     incumbent 3.0% faster" in evidence
        assert "candidate_samples" in evidence and "pool" in evidence  # the raw rest follows
        assert evidence.count("llr") == 1  # summarised keys are not listed twice
        assert all(len(line) <= 80 for line in evidence.splitlines()[:12])
