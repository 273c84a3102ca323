"""The real RunSource against a real run directory that the test writes exactly as the daemon does
(state.json replaced atomically, results appended line by line), inside a minimal Textual app."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from shared import codec
from shared.atomic import append_line
from tests.fake_runs import FakeRun, in_flight, make_run, result
from tests.tui_util import until
from tui.messages import (
    LivenessChanged,
    LogAppended,
    ResultsAppended,
    RunOpened,
    SourceProblem,
    StateChanged,
)
from tui.source import RunSource


class Recorder(Screen[None]):
    """Records every source message it receives, in order."""

    def __init__(self, source: RunSource) -> None:
        super().__init__()
        self.source = source
        self.got: list[Message] = []

    def compose(self) -> ComposeResult:
        yield Static("recorder")

    def on_mount(self) -> None:
        self.source.attach(self)

    def on_unmount(self) -> None:
        self.source.detach()

    def on_run_opened(self, m: RunOpened) -> None:
        self.got.append(m)

    def on_state_changed(self, m: StateChanged) -> None:
        self.got.append(m)

    def on_results_appended(self, m: ResultsAppended) -> None:
        self.got.append(m)

    def on_log_appended(self, m: LogAppended) -> None:
        self.got.append(m)

    def on_liveness_changed(self, m: LivenessChanged) -> None:
        self.got.append(m)

    def on_source_problem(self, m: SourceProblem) -> None:
        self.got.append(m)

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for m in self.got if isinstance(m, kind)]


class Harness(App[None]):
    def __init__(self, source: RunSource) -> None:
        super().__init__()
        self.recorder = Recorder(source)

    def on_mount(self) -> None:
        self.push_screen(self.recorder)


def _run(tmp_path: Path, **state: object) -> FakeRun:
    fields: dict[str, object] = {"experiment": 2, "baseline": 5.0, "best": 4.0}
    fields.update(state)
    run = make_run(tmp_path, **fields)  # type: ignore[arg-type]
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    return run


async def test_open_then_appends_and_state_changes(tmp_path: Path) -> None:
    run = _run(tmp_path, in_flight=in_flight(2))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(2).write_text("thinking\nediting f.py\n")
    app = Harness(RunSource(run.paths, liveness_poll_s=0.1))
    async with app.run_test() as pilot:
        rec = app.recorder
        await until(pilot, lambda: rec.of(LogAppended))
        opened = rec.got[0]
        assert isinstance(opened, RunOpened)
        assert opened.manifest.run_id == run.run_id
        assert opened.state is not None and opened.state.phase == "agent_running"
        assert [r.experiment for r in opened.results] == [0, 1]
        log = rec.of(LogAppended)[0]
        assert isinstance(log, LogAppended)
        assert (log.experiment, log.lines, log.reset) == (2, ["thinking", "editing f.py"], True)

        # A new result line appears as one ResultsAppended.
        run.add_results(result(2, "discard", 4.5))
        await until(pilot, lambda: rec.of(ResultsAppended))
        appended = rec.of(ResultsAppended)[0]
        assert isinstance(appended, ResultsAppended)
        assert [r.experiment for r in appended.results] == [2]

        # A half-written line is not delivered, even after a later change is seen...
        line = codec.encode_line(result(3, "keep", 3.0))
        with run.paths.results.open("ab") as f:
            f.write(line[:20])
        run.write_state(phase="measuring", experiment=3, in_flight=in_flight(3, "measure"))
        await until(pilot, lambda: rec.of(StateChanged))
        changed = rec.of(StateChanged)[-1]
        assert isinstance(changed, StateChanged) and changed.state.phase == "measuring"
        assert len(rec.of(ResultsAppended)) == 1
        # ...and arrives whole once the writer finishes it.
        with run.paths.results.open("ab") as f:
            f.write(line[20:])
        await until(pilot, lambda: len(rec.of(ResultsAppended)) == 2)
        last = rec.of(ResultsAppended)[1]
        assert isinstance(last, ResultsAppended)
        assert [(r.experiment, r.metric) for r in last.results] == [(3, 3.0)]

        # The experiment moved to 3: its log starts with a reset.
        await until(pilot, lambda: any(m.experiment == 3 for m in rec.of(LogAppended)))  # type: ignore[attr-defined]
        switched = [m for m in rec.of(LogAppended) if m.experiment == 3]  # type: ignore[attr-defined]
        assert isinstance(switched[0], LogAppended) and switched[0].reset
        append_line(run.paths.agent_log(3), b"new experiment", durable=False)
        await until(
            pilot,
            lambda: any(m.lines == ["new experiment"] for m in rec.of(LogAppended)),  # type: ignore[attr-defined]
        )
        assert not rec.of(SourceProblem)


async def test_a_long_log_is_opened_at_its_tail(tmp_path: Path) -> None:
    run = _run(tmp_path, in_flight=in_flight(2))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(2).write_text("".join(f"line {i}\n" for i in range(10_000)))
    app = Harness(RunSource(run.paths, liveness_poll_s=0.1))
    async with app.run_test() as pilot:
        rec = app.recorder
        await until(pilot, lambda: rec.of(LogAppended))
        log = rec.of(LogAppended)[0]
        assert isinstance(log, LogAppended)
        assert len(log.lines) == 2000 and log.lines[-1] == "line 9999"
        with run.paths.agent_log(2).open("a") as f:
            f.write("line 10000\n")
        await until(pilot, lambda: len(rec.of(LogAppended)) == 2)
        assert rec.of(LogAppended)[1].lines == ["line 10000"]  # type: ignore[attr-defined]


async def test_liveness_follows_the_daemon_lock(tmp_path: Path) -> None:
    run = _run(tmp_path, live=True)
    app = Harness(RunSource(run.paths, liveness_poll_s=0.1))
    try:
        async with app.run_test() as pilot:
            rec = app.recorder
            await until(pilot, lambda: rec.of(LivenessChanged))
            first = rec.of(LivenessChanged)[0]
            assert isinstance(first, LivenessChanged) and first.probe.daemon == "running"
            assert first.probe.pid == os.getpid()
            run.die()  # the kernel drops the flock when the daemon dies: no file event at all
            await until(pilot, lambda: len(rec.of(LivenessChanged)) == 2)
            dead = rec.of(LivenessChanged)[1]
            assert isinstance(dead, LivenessChanged) and dead.probe.daemon == "dead"
            run.write_state(phase="complete", termination_reason="max_experiments")
            await until(pilot, lambda: len(rec.of(LivenessChanged)) == 3)
            assert rec.of(LivenessChanged)[2].probe.daemon == "finished"  # type: ignore[attr-defined]
    finally:
        run.die()


async def test_a_newer_daemon_is_reported_not_crashed_on(tmp_path: Path) -> None:
    run = _run(tmp_path)
    app = Harness(RunSource(run.paths, liveness_poll_s=0.1))
    async with app.run_test() as pilot:
        rec = app.recorder
        await until(pilot, lambda: rec.of(RunOpened))
        run.write_state(phase="warping")
        await until(pilot, lambda: rec.of(SourceProblem))
        problem = rec.of(SourceProblem)[0]
        assert isinstance(problem, SourceProblem) and problem.newer_version
        assert "newer expd" in problem.text and "'warping'" in problem.text
        assert not rec.of(StateChanged)
        run.write_state(phase="idle")  # back to something known: shown again
        await until(pilot, lambda: rec.of(StateChanged))


async def test_a_newer_run_at_open(tmp_path: Path) -> None:
    run = _run(tmp_path, schema_version=99)
    app = Harness(RunSource(run.paths, liveness_poll_s=0.1))
    async with app.run_test() as pilot:
        rec = app.recorder
        await until(pilot, lambda: rec.of(SourceProblem))
        opened = rec.got[0]
        assert isinstance(opened, RunOpened) and opened.state is None
        assert len(opened.results) == 2
        assert rec.of(SourceProblem)[0].newer_version  # type: ignore[attr-defined]


async def test_detach_then_attach_starts_over(tmp_path: Path) -> None:
    run = _run(tmp_path)
    source = RunSource(run.paths, liveness_poll_s=0.1)
    app = Harness(source)
    async with app.run_test() as pilot:
        rec = app.recorder
        await until(pilot, lambda: rec.of(RunOpened))
        source.detach()
        run.add_results(result(2, "discard", 4.5))
        source.attach(rec)
        await until(pilot, lambda: len(rec.of(RunOpened)) == 2)
        again = rec.of(RunOpened)[1]
        assert isinstance(again, RunOpened)
        assert [r.experiment for r in again.results] == [0, 1, 2]
        assert not rec.of(ResultsAppended)  # the append arrived in the new RunOpened, once
