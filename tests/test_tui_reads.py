"""What the TUI reads on request rather than by watching: an experiment's files and the daemon's pid
(through the run source), and the home screen's listing (through its listing source)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from shared.atomic import write_atomic
from shared.listing import UnreadableRun
from shared.liveness import Probe
from shared.status import StatusReport
from tests.fake_runs import add_program, git_repo, make_run
from tests.tui_fakes import Kills, make_app, standard_messages
from tests.tui_util import until
from tui.messages import ExperimentLoaded, LivenessChanged, ProgramsListed
from tui.reads import ListingSource, read_daemon_pid
from tui.source import RunSource


class Recorder(Screen[None]):
    """Keeps what the sources post to it."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Message] = []

    def compose(self) -> ComposeResult:
        yield Static("recorder")

    def on_experiment_loaded(self, m: ExperimentLoaded) -> None:
        self.got.append(m)

    def on_programs_listed(self, m: ProgramsListed) -> None:
        self.got.append(m)


class Harness(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()

    def on_mount(self) -> None:
        self.push_screen(self.recorder)


async def test_experiment_files_come_as_a_message(tmp_path: Path) -> None:
    run = make_run(tmp_path, experiment=3)
    run.paths.agent_dir.mkdir()
    run.paths.patches_dir.mkdir()
    run.paths.agent_log(2).write_text("one\ntwo\n")
    run.paths.patch(2).write_text("+added\n")
    source = RunSource(run.paths)
    app = Harness()
    async with app.run_test() as pilot:
        source.load_experiment(2)  # not attached: nowhere to post, nothing read
        source.attach(app.recorder)
        source.load_experiment(2)
        await until(pilot, lambda: len(app.recorder.got) == 1)
        source.load_experiment(0)
        await until(pilot, lambda: len(app.recorder.got) == 2)
        source.detach()
    loaded = {m.experiment: m for m in app.recorder.got if isinstance(m, ExperimentLoaded)}
    assert (loaded[2].patch, loaded[2].log) == ("+added\n", ["one", "two"])
    assert (loaded[0].patch, loaded[0].log) == (None, None)  # the baseline has no files


def test_daemon_pid_from_daemon_json(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert read_daemon_pid(run.paths) is None  # no daemon.json yet
    run.go_live()
    assert RunSource(run.paths).daemon_pid() == os.getpid()
    run.die()
    write_atomic(run.paths.daemon_json, b"{not json", durable=False)
    assert read_daemon_pid(run.paths) is None


async def test_kill_without_a_known_pid_asks_the_source(tmp_path: Path) -> None:
    kills = Kills()
    app, _, paths = make_app(tmp_path, *standard_messages(), kills=kills)
    write_atomic(paths.daemon_json, b'{"pid": 31337, "heartbeat_at": 1.0}', durable=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.run_screen.post_message(LivenessChanged(Probe("hung", None, 42.0)))
        await pilot.pause()
        await pilot.press("K", "y")
        await until(pilot, lambda: kills.calls != [])
    assert kills.calls == [(31337, signal.SIGKILL)]


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
