"""Child processes in their own process group, so a timeout or an abort kills the whole tree."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

LineHandler = Callable[[str, str], Awaitable[None] | None]
"""Called with (stream name, line without newline) for each line of stdout/stderr."""

KILL_GRACE_S = 1.0


@dataclass
class ProcessResult:
    returncode: int | None
    timed_out: bool
    duration: float
    stdout: str
    stderr_tail: str


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
) -> ProcessResult:
    """Run a shell command with a timeout; cancellation kills its process group before returning."""
    started = time.monotonic()
    stdout_parts: list[str] = []
    stdout_size = 0
    stderr_tail: list[str] = []
    timed_out = False

    async def pump(stream: anyio.abc.ByteReceiveStream | None, name: str) -> None:
        nonlocal stdout_size
        if stream is None:
            return
        buffer = ""
        async for chunk in TextReceiveStream(stream, errors="replace"):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                await _deliver(name, line)
        if buffer:
            await _deliver(name, buffer)

    async def _deliver(name: str, line: str) -> None:
        nonlocal stdout_size
        if name == "stdout" and keep_stdout and stdout_size < max_stdout:
            stdout_parts.append(line)
            stdout_size += len(line) + 1
        elif name == "stderr":
            stderr_tail.append(line)
            del stderr_tail[:-20]
        if on_line is not None:
            result = on_line(name, line)
            if result is not None:
                await result

    process = await anyio.open_process(
        ["/bin/bash", "-c", command],
        cwd=str(cwd),
        env=dict(env),
        stdin=None if stdin is None else -1,
        start_new_session=True,
    )
    if on_start is not None:
        on_start(process.pid)
    try:
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, process.stdout, "stdout")
                tg.start_soon(pump, process.stderr, "stderr")
                if stdin is not None and process.stdin is not None:
                    try:
                        await process.stdin.send(stdin)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass
                    finally:
                        await process.stdin.aclose()
                await process.wait()
        if scope.cancelled_caught:
            timed_out = True
            with anyio.CancelScope(shield=True):
                await _terminate(process)
        else:
            # The shell exited; reap anything it left behind in its group.
            kill_group(process.pid, signal.SIGKILL)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _terminate(process)
        raise
    finally:
        # Close the pipes now, not at garbage collection (possibly after the event loop is gone).
        with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE_S):
            await process.aclose()
    return ProcessResult(
        returncode=None if timed_out else process.returncode,
        timed_out=timed_out,
        duration=time.monotonic() - started,
        stdout="\n".join(stdout_parts),
        stderr_tail="\n".join(stderr_tail),
    )
