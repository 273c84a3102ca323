"""The run queue in plain text: `expd queue list`, and the queued entries under `status --all`."""

from __future__ import annotations

from shared.cli.render import table
from shared.display import DASH, fmt_time, truncate
from shared.queue import QueuedStatus, QueueEntry, QueueFile, describe

HEADER = ["ID", "STATE", "PROGRAM", "OPTIONS", "RUN", "TRIES", "ADDED", "REASON"]
QUEUED_HEADER = ["QUEUED", "PROGRAM", "OPTIONS", "WAITING", "REPO"]


def what(entry: QueueEntry) -> str:
    """`PROGRAM --option …`, as the entry would be started."""
    options = describe(entry)
    return f"{entry.program}{' ' + options if options else ''}"


def entry_row(entry: QueueEntry) -> list[str]:
    """One entry's line of `expd queue list`, in HEADER order."""
    return [
        str(entry.id),
        entry.state,
        entry.program,
        describe(entry) or DASH,
        entry.run_id or DASH,
        str(entry.attempts),
        fmt_time(entry.added_at),
        truncate(entry.reason, 70) if entry.reason else DASH,
    ]


def queue_text(queue: QueueFile) -> str:
    if not queue.entries:
        return "the queue is empty (add a run with: expd queue add PROGRAM)"
    text = table(HEADER, [entry_row(e) for e in queue.entries])
    return f"{text}\n\npaused: {queue.paused}" if queue.paused else text


def queued_table(items: list[QueuedStatus]) -> str:
    """`expd status --all`'s entries waiting in queues: `#1` starts next in its repository."""
    rows = [
        [
            f"#{q.position} (entry {q.queue_id})",
            q.program,
            describe(QueueEntry(id=q.queue_id, program=q.program, options=q.options)) or DASH,
            truncate(q.reason, 50) if q.reason else DASH,
            q.repo,
        ]
        for q in items
    ]
    return table(QUEUED_HEADER, rows)
