"""What the sources tell the screens. Screens only react to these; they never read files.

All payloads are decoded contract structs, so a fake source in a test posts exactly what the real
one would.
"""

from __future__ import annotations

from textual.message import Message

from shared.listing import BakeoffListing, ProgramListing
from shared.liveness import Probe
from shared.schema import ResultRecord, RunManifest, RunState


class RunOpened(Message):
    """The first full read of a run: its manifest, state and every result so far."""

    def __init__(
        self, manifest: RunManifest, state: RunState | None, results: list[ResultRecord]
    ) -> None:
        super().__init__()
        self.manifest = manifest
        self.state = state
        self.results = results


class StateChanged(Message):
    """state.json was replaced. Only the newest matters, so a burst collapses to one."""

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateChanged)


class ResultsAppended(Message):
    """New complete lines of results.jsonl, oldest first."""

    def __init__(self, results: list[ResultRecord]) -> None:
        super().__init__()
        self.results = results


class LogAppended(Message):
    """New complete lines of `agent/NNNN.log`; `reset` means a new experiment's log began."""

    def __init__(self, experiment: int, lines: list[str], *, reset: bool = False) -> None:
        super().__init__()
        self.experiment = experiment
        self.lines = lines
        self.reset = reset


class LivenessChanged(Message):
    """The daemon's liveness (running, starting, hung, dead, finished) changed."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LivenessChanged)


class SourceProblem(Message):
    """The run cannot be shown as is (unreadable file, or written by a newer expd)."""

    def __init__(self, text: str, *, newer_version: bool = False) -> None:
        super().__init__()
        self.text = text
        self.newer_version = newer_version


class ExperimentLoaded(Message):
    """The files of one finished experiment, read on request: the head of its patch and the tail
    of its agent log (None: the file does not exist)."""

    def __init__(self, experiment: int, patch: str | None, log: list[str] | None) -> None:
        super().__init__()
        self.experiment = experiment
        self.patch = patch
        self.log = log


class ProgramsListed(Message):
    """The repository's programs and bakeoffs and their runs' statuses (`expd list`), and each
    valid program's default number of experiments."""

    def __init__(
        self,
        programs: list[ProgramListing],
        max_experiments: dict[str, int],
        bakeoffs: list[BakeoffListing] | None = None,
    ) -> None:
        super().__init__()
        self.programs = programs
        self.max_experiments = max_experiments
        self.bakeoffs = bakeoffs or []
