"""A run dashboard fed by hand: a source that posts nothing by itself, fixed data and a frozen clock.

Tests post the same messages `tui.source.RunSource` would (`screen.post_message(...)`), so the
screen is exercised exactly as in real use, without a daemon or file watching. Files read on
request (an experiment's patch and log) are read as the real source reads them.
"""

from __future__ import annotations

import signal
from pathlib import Path

from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump

from shared.liveness import Probe
from shared.paths import RunPaths
from shared.runs import RunRef
from shared.schema import DiffStat, InFlight, ResultRecord, RunManifest, RunState
from tui.messages import LivenessChanged, LogAppended, RunOpened
from tui.reads import RunFiles
from tui.screens.run import RunScreen

APP_TCSS = Path(__file__).resolve().parent.parent / "tui" / "app.tcss"
NOW = 1_700_003_600.0
"""The frozen clock: one hour after the run started."""
STARTED = 1_700_000_000.0
RUN_ID = "prog/20260101-120000"
PID = 4242


class FakeSource(RunFiles):
    """Satisfies the Source protocol; records attach/detach and can post later messages."""

    def __init__(self, paths: RunPaths, *messages: Message) -> None:
        self.paths = paths
        self.messages = list(messages)
        self.target: MessagePump | None = None
        self.detached = False

    def attach(self, target: MessagePump) -> None:
        self.target = target
        for message in self.messages:
            target.post_message(message)

    def detach(self) -> None:
        self.detached = True


class Kills:
    """Stands in for os.kill: the tests' daemon pid is never a real process to signal."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, pid: int, sig: int) -> None:
        self.calls.append((pid, sig))

    @property
    def sigkilled(self) -> list[int]:
        return [pid for pid, sig in self.calls if sig == signal.SIGKILL]


class RunApp(App[None]):
    """What ExpdApp does for `expd attach`: push one RunScreen; styled by the real app.tcss."""

    CSS_PATH = str(APP_TCSS)

    def __init__(self, screen: RunScreen) -> None:
        super().__init__()
        self.run_screen = screen

    def on_mount(self) -> None:
        self.push_screen(self.run_screen)


def run_dir(tmp_path: Path) -> RunPaths:
    """A run directory with a patch and an agent log for experiment 2 (what selection reads)."""
    paths = RunPaths(tmp_path / "prog" / "runs" / "20260101-120000")
    paths.agent_dir.mkdir(parents=True)
    paths.patches_dir.mkdir()
    paths.agent_log(2).write_text("reading src/parse.py\nedited src/parse.py: cache the regex\n")
    paths.patch(2).write_text(
        "diff --git a/src/parse.py b/src/parse.py\n"
        "--- a/src/parse.py\n+++ b/src/parse.py\n@@ -1,2 +1,2 @@\n"
        "-PATTERN = None\n+PATTERN = re.compile(r'\\d+')\n"
    )
    return paths


def record(n: int, status: str, metric: float | None, description: str = "") -> ResultRecord:
    return ResultRecord(
        experiment=n,
        status=status,
        commit=f"{n:040x}",
        metric=metric,
        samples=[] if metric is None else [metric, metric * 1.01, metric * 0.99],
        description=description or ("baseline" if status == "baseline" else f"change {n}"),
        diff=DiffStat(files=["src/parse.py"], added=n, removed=1),
        agent_s=300.0,
        measure_s=60.0,
        cost_usd=0.05,
        tokens=2000,
        started_at=STARTED + 400 * n,
        finished_at=STARTED + 400 * n + 360,
        reason=f"median {metric} vs 10: reason {n}",
        evidence={"policy": "fixed", "candidate_samples": [metric or 0.0], "threshold": 0.02},
    )


RESULTS = [
    record(0, "baseline", 10.0),
    record(1, "keep", 9.0, "inline the hot loop"),
    record(2, "discard", 9.5, "cache the parsed regex"),
    record(3, "crash", None, "rewrite the tokenizer"),
    record(4, "measurement_failure", None, "switch to orjson"),
    record(5, "keep", 8.0, "avoid a copy in the reader"),
]


def state(**fields: object) -> RunState:
    base: dict[str, object] = {
        "run_id": RUN_ID,
        "program": "prog",
        "phase": "agent_running",
        "detail": "agent: editing src/parse.py",
        "experiment": 6,
        "max_experiments": 20,
        "keeps": 2,
        "discards": 1,
        "crashes": 1,
        "measurement_failures": 1,
        "metric": "runtime_s",
        "direction": "lower",
        "baseline": 10.0,
        "best": 8.0,
        "best_experiment": 5,
        "cost_usd": 0.25,
        "tokens": 10_000,
        "started_at": STARTED,
        "updated_at": NOW - 5,
        "in_flight": InFlight(experiment=6, started_at=NOW - 60, stage="agent"),
    }
    base.update(fields)
    return RunState(**base)  # type: ignore[arg-type]


def opened(results: list[ResultRecord] | None = None, **fields: object) -> RunOpened:
    manifest = RunManifest(run_id=RUN_ID, program="prog", max_experiments=20, created_at=STARTED)
    return RunOpened(manifest, state(**fields), list(RESULTS if results is None else results))


def standard_messages() -> list[Message]:
    """A healthy run in its sixth experiment, with a few lines of the agent's live stream."""
    return [
        opened(),
        LivenessChanged(Probe("running", PID, 1.0)),
        LogAppended(
            6, ["planning: the reader copies every line", "", "editing src/parse.py"], reset=True
        ),
    ]


def make_app(
    tmp_path: Path,
    *messages: Message,
    abort_timeout: float = 5.0,
    kills: Kills | None = None,
) -> tuple[RunApp, FakeSource, RunPaths]:
    paths = run_dir(tmp_path)
    source = FakeSource(paths, *(messages or standard_messages()))
    screen = RunScreen(
        RunRef("prog", "20260101-120000", paths),
        source,
        clock=lambda: NOW,
        abort_timeout=abort_timeout,
        kill=kills or Kills(),
    )
    return RunApp(screen), source, paths
