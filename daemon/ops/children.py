"""Child processes in their own process group, so a timeout or an abort kills the whole tree.

`run` is the one way expd starts an agent's or a measurement's processes: it applies the agent's
sandbox, and once the main process exits it ends whatever it left (its group, then the daemon's
sweep of orphans that called `setsid`), so nothing outlives its turn. A child still holding the
output pipes does not keep a finished process "running": reading stops a moment after it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from daemon.ops import reaper
from daemon.ops.sandbox import UNCONFINED, Sandbox

LineHandler = Callable[[str, str], Awaitable[None] | None]
"""Called with (stream name, line without newline) for each line of stdout/stderr."""

KILL_GRACE_S = 1.0
MAX_LINE = 1 << 20
"""A line longer than this (characters) is delivered cut, with `LINE_CUT`; its rest is skipped."""
LINE_CUT = " …[line cut by expd]"
MAX_TAIL_LINE = 2000
"""Each kept stderr line, at most (the last 20 are kept for error messages)."""
DRAIN_S = 0.5
"""How long output is still read after the main process exited, before its leftovers are killed."""
MARK_ENV = "EXPD_CHILD_MARK"
"""A token in each child's environment, which its orphans keep: while it runs, the sweep after
another child (a bakeoff runs several at once) leaves them alone."""

_running: dict[str, int | None] = {}
"""The token of every child starting or running now → its main process (None while it starts:
its environment already carries the token once it exists)."""


@dataclass
class ProcessResult:
    returncode: int | None
    timed_out: bool
    duration: float
    stdout: str
    stderr_tail: str


class BoundedTail:
    """The last lines of a stream that fit in `limit` characters: a measurement prints its metrics
    last, so a chatty one must not push them out (nor grow the daemon's memory)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: deque[str] = deque()
        self.size = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1
        while self.size > self.limit and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()) + 1

    def text(self) -> str:
        return "\n".join(self.lines)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _terminate(process: Process) -> None:
    """SIGTERM the group, then SIGKILL it if it is still there after a short grace."""
    pgid = process.pid
    kill_group(pgid, signal.SIGTERM)
    with anyio.move_on_after(KILL_GRACE_S):
        await process.wait()
    kill_group(pgid, signal.SIGKILL)
    with anyio.move_on_after(KILL_GRACE_S):
        await process.wait()


async def run(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: bytes | None = None,
    on_line: LineHandler | None = None,
    on_start: Callable[[int], None] | None = None,
    keep_stdout: bool = True,
    max_stdout: int = 1 << 20,
    sandbox: Sandbox = UNCONFINED,
) -> ProcessResult:
    """Run a shell command (confined by `sandbox`) with a timeout; cancellation kills its process
    group, and every way out ends what it left behind, before returning."""
    started = time.monotonic()
    stdout_tail = BoundedTail(max_stdout)
    stderr_tail: deque[str] = deque(maxlen=20)
    pumping = [2]  # stdout and stderr: `drained` once both reached their end
    drained = anyio.Event()

    async def pump(stream: anyio.abc.ByteReceiveStream | None, name: str) -> None:
        try:
            if stream is None:
                return
            buffer = ""
            dropping = False  # inside an over-long line: its rest is skipped up to the newline
            async for chunk in TextReceiveStream(stream, errors="replace"):
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if dropping:
                        dropping = False
                        continue
                    await _deliver(name, line)
                if len(buffer) > MAX_LINE and not dropping:
                    await _deliver(name, buffer[:MAX_LINE] + LINE_CUT)
                    dropping = True
                if dropping:
                    buffer = ""
            if buffer and not dropping:
                await _deliver(name, buffer)
        finally:
            pumping[0] -= 1
            if not pumping[0]:
                drained.set()

    async def _deliver(name: str, line: str) -> None:
        if name == "stdout" and keep_stdout:
            stdout_tail.add(line)
        elif name == "stderr":
            stderr_tail.append(line[:MAX_TAIL_LINE])
        if on_line is not None:
            result = on_line(name, line)
            if result is not None:
                await result

    async def feed(process: Process) -> None:
        if stdin is None or process.stdin is None:
            return
        try:
            await process.stdin.send(stdin)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            await process.stdin.aclose()

    tmp = Path(tempfile.mkdtemp(prefix="expd-agent-tmp-")) if sandbox.confined else None
    argv = ["/bin/bash", "-c", command]
    mark = uuid.uuid4().hex
    env = {**env, MARK_ENV: mark}
    _running[mark] = None
    if tmp is not None:
        argv, env = sandbox.wrap(argv, cwd=cwd, tmp=tmp), sandbox.environment(env, tmp)
    try:
        process = await anyio.open_process(
            argv,
            cwd=str(cwd),
            env=dict(env),
            stdin=None if stdin is None else -1,
            start_new_session=True,
        )
    except BaseException:
        _running.pop(mark, None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    since = reaper.start_time(process.pid)
    _running[mark] = process.pid
    if on_start is not None:
        on_start(process.pid)
    exited = False
    try:
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, process.stdout, "stdout")
                tg.start_soon(pump, process.stderr, "stderr")
                tg.start_soon(feed, process)
                await process.wait()
                exited = True
                with anyio.move_on_after(DRAIN_S):
                    await drained.wait()
                if not drained.is_set():
                    # A leftover holds the pipes: the main process is done, end the rest.
                    _end_leftovers(process.pid, since)
                    with anyio.move_on_after(KILL_GRACE_S):
                        await drained.wait()
                tg.cancel_scope.cancel()
        if scope.cancelled_caught and not exited:
            with anyio.CancelScope(shield=True):
                await _terminate(process)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _terminate(process)
        raise
    finally:
        _running.pop(mark, None)
        _end_leftovers(process.pid, since)
        # Close the pipes now, not at garbage collection (possibly after the event loop is gone).
        with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_S):
            await process.aclose()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    timed_out = not exited
    return ProcessResult(
        returncode=None if timed_out else process.returncode,
        timed_out=timed_out,
        duration=time.monotonic() - started,
        stdout=stdout_tail.text(),
        stderr_tail="\n".join(stderr_tail),
    )


def _end_leftovers(pgid: int, since: int | None) -> None:
    """Kill what is left in the child's process group, then (in the daemon) every orphan since,
    sparing the children still running beside it."""
    kill_group(pgid, signal.SIGKILL)
    spare = [pid for pid in _running.values() if pid is not None]
    marks = [f"{MARK_ENV}={token}".encode() for token in _running]
    starting = len(spare) < len(marks)
    reaper.sweep(since, exclude=pgid, spare=spare, marks=marks, reap=not starting)
