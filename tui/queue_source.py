"""The home screen's view of the run queue: `queue.json` re-read on each `refresh` in a thread
worker of the target and posted as `QueueListed`, the way `ListingSource` reads the runs (a refresh
while one is under way is dropped). An unreadable file is posted as a problem, never raised."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump

from shared.errors import ContractError
from shared.queue import QueueFile, read_queue


class QueueListed(Message):
    """The queue as it is now (empty when the repository has none); `problem`: why it could not
    be read (then `queue` is empty)."""

    def __init__(self, queue: QueueFile, problem: str = "") -> None:
        super().__init__()
        self.queue = queue
        self.problem = problem


class QueueSource:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._busy = threading.Lock()

    def refresh(self, target: MessagePump) -> None:
        if not self._busy.acquire(blocking=False):
            return
        target.run_worker(  # type: ignore[attr-defined]
            partial(self._read, target),
            name="queue",
            group="home-queue",
            thread=True,
            exit_on_error=False,
        )

    def _read(self, target: MessagePump) -> None:
        try:
            try:
                message = QueueListed(read_queue(self.root))
            except (ContractError, OSError) as exc:
                message = QueueListed(QueueFile(), str(exc))
        finally:
            self._busy.release()
        target.post_message(message)
