"""Queue tools: the functions `expd queue add`, `list`, `remove`, `clear` and `resume` call, so an
entry added here chains exactly like one added from a shell.

Listing reads `.expd/queue.json` only; starting an entry imports the daemon's starter inside the
call that needs it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from pydantic import Field

from shared import queue
from shared.cli.mcp_server.registry import tool
from shared.cli.mcp_server.tools_control import AgentKind, Fresh, MaxExperiments, Model
from shared.cli.mcp_server.tools_programs import ProgramName
from shared.paths import find_repo_root
from shared.queue import QueueEntry, QueueFile, QueueOptions


class QueueStarted(msgspec.Struct, kw_only=True):
    """What the queue's starter did right after a change: `action` (started, busy, waiting,
    paused, empty), a sentence for people, the run it started, the entries it gave up on."""

    action: str
    message: str
    run_id: str | None = None
    given_up: list[QueueEntry] = msgspec.field(default_factory=list)


class QueueAdded(msgspec.Struct, kw_only=True):
    """`expd queue add --json`: the entry as it stands after the starter ran, and what it did."""

    added: QueueEntry
    start: QueueStarted


class QueueRemoved(msgspec.Struct, kw_only=True):
    """The entries taken out of the queue."""

    removed: list[QueueEntry]


def _start(root: Any, *, unpause: bool = False) -> QueueStarted:
    from daemon.commands.queue_runner import resume_queue

    outcome = resume_queue(root, unpause=unpause)
    return QueueStarted(
        action=outcome.action,
        message=outcome.message,
        run_id=outcome.run_id,
        given_up=outcome.given_up,
    )


@tool(QueueAdded)
def add_to_queue(
    program: ProgramName,
    max_experiments: MaxExperiments = None,
    agent: AgentKind = None,
    model: Model = None,
    fresh: Fresh = False,
    continue_on_abort: Annotated[
        bool, Field(description="if this run is aborted, the queue still goes on")
    ] = False,
) -> QueueAdded:
    """Queue a run of a program (`expd queue add`): runs start one after another, each when the
    previous daemon has finished (also after a stop; an abort pauses the queue). If nothing is
    running, the entry starts now. Validate the program first, as for start_run."""
    root = find_repo_root()
    options = QueueOptions(
        max_experiments=max_experiments,
        agent=agent,
        model=model,
        fresh=fresh,
        continue_on_abort=continue_on_abort,
    )
    entry = queue.add(root, program, options)
    started = _start(root)
    return QueueAdded(added=queue.read_queue(root).find(entry.id) or entry, start=started)


@tool(QueueFile, read_only=True)
def list_queue() -> QueueFile:
    """The repository's queue (`expd queue list --json`): entries in order with their state
    (queued, starting, running, done, failed, skipped), run id, attempts and reason; `paused`
    says why the queue is held (empty when it is not)."""
    return queue.list_queue(find_repo_root())


@tool(QueueRemoved, destructive=True)
def remove_from_queue(
    entry_id: Annotated[int, Field(ge=1, description="the entry's id (list_queue)")],
) -> QueueRemoved:
    """Take one entry out of the queue (`expd queue remove ID`); a run it already started goes
    on (stop it with stop_run)."""
    return QueueRemoved(removed=[queue.remove(find_repo_root(), entry_id)])


@tool(QueueRemoved, destructive=True)
def clear_queue() -> QueueRemoved:
    """Remove every entry that has not started (`expd queue clear`)."""
    return QueueRemoved(removed=queue.clear(find_repo_root()))


@tool(QueueStarted)
def resume_queue() -> QueueStarted:
    """Start the queue's next entry if nothing is running (`expd queue resume`); lifts the pause
    an abort left and gives up on an entry whose daemon died."""
    return _start(find_repo_root(), unpause=True)
