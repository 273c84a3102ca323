"""The home screen's view of the run queue: `queue.json` re-read on each `refresh` in a thread
worker of the target and posted as `QueueListed`, the way `ListingSource` reads the runs (a refresh
while one is under way is dropped). An unreadable file is posted as a problem, never raised."""

from __future__ import annotations

from textual.message import Message

from shared.errors import ContractError
from shared.queue import QueueFile, read_queue
from tui.reads import RepoReader


class QueueListed(Message):
    """The queue as it is now (empty when the repository has none); `problem`: why it could not
    be read (then `queue` is empty)."""

    def __init__(self, queue: QueueFile, problem: str = "") -> None:
        super().__init__()
        self.queue = queue
        self.problem = problem


class QueueSource(RepoReader):
    name = "queue"

    def read(self) -> Message:
        try:
            return QueueListed(read_queue(self.root))
        except (ContractError, OSError) as exc:
            return QueueListed(QueueFile(), str(exc))
