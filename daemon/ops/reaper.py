"""Ending what an agent or a measurement left behind, whatever it did to detach.

A process group is escaped with `setsid`, a parent with a double fork. The daemon makes itself a
child subreaper, so every orphan of its children is re-parented to it rather than to init: after a
child's main process exits, `sweep` kills every descendant of the daemon that started since, walking
/proc by parent pid until none is left. Only those orphans are reaped here, each by its own pid,
never with `waitpid(-1)`, which would steal exit statuses from the children anyio waits for. (Under
bwrap the PID namespace already ended them all; the sweep then finds only the namespace's init,
orphaned to the daemon while the kernel tears the namespace down, and reaps it once it is a zombie.)

The daemon also makes itself non-dumpable: its `/proc/<pid>/environ` is then refused to any process
without CAP_SYS_PTRACE, such as a landlocked agent (which runs with no capabilities at all).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Collection
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SWEEP_LIMIT_S = 3.0
"""How long a sweep keeps killing (a fork bomb outruns it; SIGKILL in D state can take a while)."""
SETTLE_S = 0.2
"""How long the sweep waits for a process whose environment it cannot read yet (one a running
child just started is in the middle of `exec`); after that it is killed like any leftover."""
MAX_DEPTH = 64
"""How far up the sweep looks for the child a process belongs to."""
SWEEP_POLL_S = (0.0005, 0.01)
"""The first and the longest pause between passes: the leftover is usually a process already
exiting (bwrap's namespace init), a zombie within a millisecond or two; doubling up to 10 ms."""


def _prctl(option: int, value: int | ctypes.c_void_p) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0))


def harden_daemon() -> bool:
    """Become a child subreaper and non-dumpable; False where the kernel offers neither."""
    if not sys.platform.startswith("linux"):
        return False
    _prctl(PR_SET_DUMPABLE, 0)
    return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


def is_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        return False
    return flag.value != 0


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_zombie(pid: int) -> bool:
    """Whether `pid` exited and waits for its parent to reap it (still "alive" to a signal 0)."""
    fields = proc_stat(pid)
    return bool(fields and fields[0] == "Z")


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (comparable across processes)."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _children_of(pid: int) -> list[int]:
    """Direct children, from the kernel's per-thread lists (CONFIG_PROC_CHILDREN), else a scan."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        found: list[int] = []
        for task in tasks.iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        pass
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and len(fields) > 1 and fields[1] == str(pid):
                out.append(int(entry.name))
    return out


def descendants(root: int) -> list[int]:
    out: list[int] = []
    todo = [root]
    while todo:
        for child in _children_of(todo.pop()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def carries(pid: int, marks: Collection[bytes]) -> bool | None:
    """Whether `pid`'s environment holds one of `marks` (`NAME=value`); None when it cannot be
    told: unreadable, or empty (a process in the middle of `exec` shows none for a moment)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    if not environ:
        return None
    return any(m in environ.split(b"\0") for m in marks)


def _spared(pid: int, me: int, spare: Collection[int], marks: Collection[bytes]) -> bool | None:
    """Whether `pid` belongs to a child still running: it or a process above it (up to this one)
    is such a child's main process or carries its mark; None when an environment on the way
    could not be read. Looked up now, not from a list made before: the other child may have
    started a process since."""
    here = pid
    unsure = False
    for _ in range(MAX_DEPTH):
        if here in spare:
            return True
        found = carries(here, marks) if marks else False
        if found:
            return True
        unsure = unsure or found is None
        fields = proc_stat(here)
        if fields is None or len(fields) < 2 or int(fields[1]) in (me, 0, 1):
            break
        here = int(fields[1])
    return None if unsure else False


def sweep(
    since: int | None,
    exclude: int | None = None,
    *,
    spare: Collection[int] = (),
    marks: Collection[bytes] = (),
    reap: bool = True,
) -> int:
    """Kill every descendant of this process started at or after `since`; how many there were.

    Children still running beside the one that ended (a bakeoff runs several at once) are spared:
    their main processes `spare` with everything below them, and every process (an orphan of
    theirs included) whose environment, or an ancestor's, carries one of their `marks`. Their
    exit statuses are theirs: a zombie in `spare` is never reaped, and none is while `reap` is
    False (a child is starting, its pid not known yet).

    A no-op unless this process is a subreaper (the daemon): elsewhere orphans went to init, and
    the descendants left would be the caller's own children.
    """
    if since is None or not is_subreaper():
        return 0
    me = os.getpid()
    killed: set[int] = set()
    began = time.monotonic()
    deadline = began + SWEEP_LIMIT_S
    pause, longest = SWEEP_POLL_S
    while True:
        left = 0
        for pid in descendants(me):
            fields = proc_stat(pid)
            if pid == exclude or fields is None or len(fields) < 20 or int(fields[19]) < since:
                continue
            if (spare or marks) and fields[0] not in "ZX":
                spared = _spared(pid, me, spare, marks)
                if spared:
                    continue
                if spared is None and time.monotonic() - began < SETTLE_S:
                    left += 1  # look again on the next pass, once its `exec` is done
                    continue
            if fields[0] in "ZX":
                # An orphan adopted by us: its status is ours to take (never a running child's).
                if reap and pid not in spare and fields[1] == str(me):
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                continue
            left += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        if not left or time.monotonic() > deadline:
            return len(killed)
        time.sleep(pause)
        pause = min(pause * 2, longest)
