"""What every run-directory source shares: one thread worker of the target screen watching the
directory with watchfiles, superseded cleanly by a later attach, posting only from its own thread.

Subclasses give the reads (`_reset`, `_open`, `_sync`, `_check_liveness`); every wake-up re-checks
everything (a few stats and byte-offset reads), so an event missed between the first read and the
start of the watch is caught by the next wake-up.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from pathlib import Path

import watchfiles
from textual.message import Message
from textual.message_pump import MessagePump
from textual.worker import Worker, get_current_worker

from tui.messages import SourceProblem

IGNORED = frozenset({"events.jsonl", "daemon.log", "control.json", "control.lock"})
"""Files no screen shows: their writes need not wake the source."""


def watch_filter(_change: watchfiles.Change, path: str) -> bool:
    name = os.path.basename(path)
    return not (name.endswith(".tmp") or name in IGNORED)


def signature(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is replaced or rewritten (inode, size, mtime)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class DirectoryWatcher:
    """The thread-worker lifecycle of a source of one directory."""

    WORKER = "source"
    """The worker's group (and the start of its name)."""
    RECURSIVE = True

    def __init__(self, directory: Path, *, liveness_poll_s: float, timeout_s: float) -> None:
        self.directory = directory
        self.liveness_poll_s = liveness_poll_s
        self.timeout_s = timeout_s
        """How long the watch waits for a change before it wakes up anyway."""
        self.target: MessagePump | None = None
        self._stop = threading.Event()
        self._worker: Worker[None] | None = None
        self._thread: int | None = None
        """The worker thread allowed to post (a superseded one finds out and goes quiet)."""

    # --- hooks ----------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget what was read: every attach starts with a full first read."""

    def _open(self) -> None:
        """The first full read, posted as one message so the screen builds in one go."""

    def _sync(self) -> None:
        """What changed since the last wake-up."""

    def _check_liveness(self) -> None:
        """The daemon's liveness, every `liveness_poll_s` (and when a subclass asks)."""

    # --- the lifecycle --------------------------------------------------------------------------

    def attach(self, target: MessagePump) -> None:
        self.detach()
        self._reset()
        self._stop = threading.Event()
        self.target = target
        self._worker = target.run_worker(  # type: ignore[attr-defined]
            partial(self._watch, self._stop),
            name=f"{self.WORKER} {self.directory.name}",
            group=self.WORKER,
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def detach(self) -> None:
        self._stop.set()
        self.target = None
        self._thread = None

    def _post(self, message: Message) -> None:
        target = self.target
        if target is not None and self._thread == threading.get_ident():
            target.post_message(message)

    def _cancelled(self) -> bool:
        if self._stop.is_set() or self._thread != threading.get_ident():
            return True
        try:
            return get_current_worker().is_cancelled
        except Exception:  # not in a worker (direct call in a test)
            return False

    def _watch(self, stop: threading.Event) -> None:
        if stop is not self._stop:
            return  # superseded by a later attach before this thread even started
        self._thread = threading.get_ident()
        try:
            self._open()
            next_poll = time.monotonic() + self.liveness_poll_s
            for _changes in watchfiles.watch(
                self.directory,
                watch_filter=watch_filter,
                debounce=50,
                step=15,
                stop_event=stop,
                rust_timeout=max(20, int(self.timeout_s * 1000)),
                yield_on_timeout=True,
                raise_interrupt=False,
                recursive=self.RECURSIVE,
            ):
                if self._cancelled():
                    return
                self._sync()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.liveness_poll_s
                    self._check_liveness()
        except Exception as exc:  # the directory vanished, inotify ran out, ...: say so
            self._post(SourceProblem(f"stopped watching {self.directory}: {exc}"))
