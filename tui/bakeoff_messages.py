"""What the bakeoff source tells the bakeoff dashboard. The screen only reacts to these (and to
`tui.messages.LivenessChanged` and `SourceProblem`, which mean the same for both kinds of run).

Attempt records arrive graded (the newest record per attempt, manual marks applied), so a fake
source in a test posts exactly what the real one would.
"""

from __future__ import annotations

from textual.message import Message

from shared.bakeoffs.schema import AttemptRecord, BakeoffManifest, BakeoffState


class BakeoffOpened(Message):
    """The first full read of a bakeoff run: its manifest, state and every attempt so far."""

    def __init__(
        self, manifest: BakeoffManifest, state: BakeoffState | None, records: list[AttemptRecord]
    ) -> None:
        super().__init__()
        self.manifest = manifest
        self.state = state
        self.records = records


class BakeoffStateChanged(Message):
    """state.json was replaced. Only the newest matters, so a burst collapses to one."""

    def __init__(self, state: BakeoffState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BakeoffStateChanged)


class AttemptsUpdated(Message):
    """Attempts whose verdict is new or changed (a record appended, a manual mark), graded; each
    replaces whatever was shown for its key."""

    def __init__(self, records: list[AttemptRecord]) -> None:
        super().__init__()
        self.records = records


class AttemptLogAppended(Message):
    """New complete lines of the followed attempt's agent.log; `reset`: start over (another
    attempt is followed, or its log began again)."""

    def __init__(self, key: str, lines: list[str], *, reset: bool = False) -> None:
        super().__init__()
        self.key = key
        self.lines = lines
        self.reset = reset


class AttemptFilesLoaded(Message):
    """One attempt's files, read on request: the head of its patch and the tail of its criteria
    log (None: the file does not exist)."""

    def __init__(self, key: str, patch: str | None, criteria_log: list[str] | None) -> None:
        super().__init__()
        self.key = key
        self.patch = patch
        self.criteria_log = criteria_log
