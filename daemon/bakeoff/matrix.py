"""The matrix: a queue of attempts and `concurrency` workers, worker k running in slot k.

Workers take the next attempt in task-major order (replays first) until nothing is left. Once the
run has cost `max_cost_usd`, or a stop was asked for, nothing new starts and the running attempts
finish; an abort cancels them. A replay or retry request adds to the queue while the matrix runs
(idle workers wake for it); one that arrives after the last worker is done starts them again.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import anyio

from daemon.bakeoff.controls import Controls
from daemon.bakeoff.plan import Job, Rejected, new_replay, replay_job, retry_jobs
from daemon.bakeoff.slots import Slot
from daemon.bakeoff.store import BakeoffStore
from shared.bakeoffs.schema import BakeoffSpec


class Runner(Protocol):
    async def run(self, slot: Slot, job: Job) -> None: ...


class Matrix:
    def __init__(
        self,
        *,
        spec: BakeoffSpec,
        store: BakeoffStore,
        controls: Controls,
        slots: list[Slot],
        jobs: list[Job],
    ) -> None:
        self.spec = spec
        self.store = store
        self.controls = controls
        self.slots = slots
        self.queue: deque[Job] = deque(jobs)
        self.active: dict[int, Job] = {}
        self.budget_hit = False
        self._changed: anyio.Event | None = None

    # --- requests (control.json) ---------------------------------------------------------------

    def add_replay(self, value: object) -> str:
        state = self.store.state
        try:
            replay = new_replay(self.spec, self.store.latest, state.replays, value)
        except Rejected as exc:
            return f"rejected: {exc}"
        job = replay_job(self.spec, replay)
        if job is None:
            return f"rejected: task {replay.task!r} is not in this run"
        state.replays.append(replay)
        self.queue.appendleft(job)
        return f"replay of {replay.of} queued as {job.key}"

    def retry_errors(self) -> str:
        busy = {j.key for j in self.queue} | {j.key for j in self.active.values()}
        jobs = [j for j in retry_jobs(self.spec, self.store.latest) if j.key not in busy]
        self.queue.extend(jobs)
        return f"retrying {len(jobs)} attempt(s) that errored or timed out"

    def wake(self) -> None:
        """Idle workers look at the queue again (work was added, or a stop came)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        self._progress()

    # --- the workers ---------------------------------------------------------------------------

    def blocked(self) -> bool:
        """Nothing new may start: an abort, a stop, or the budget is spent."""
        limit = self.spec.max_cost_usd
        if limit is not None and self.store.state.cost_usd >= limit and self.queue:
            self.budget_hit = True
        return self.controls.abort or self.controls.stop or self.budget_hit

    def _take(self) -> Job | None:
        if not self.queue or self.blocked():
            return None
        return self.queue.popleft()

    async def run(self, runner: Runner) -> str:
        """Run until nothing is left or nothing may start; the termination reason."""
        self._progress()
        while True:
            async with anyio.create_task_group() as tg:
                for slot in self.slots:
                    tg.start_soon(self._worker, runner, slot)
            if not self.queue or self.blocked():
                break
        if self.controls.abort:
            return "aborted"
        if not self.queue:
            return "finished"
        return "stopped" if self.controls.stop else "budget"

    async def _worker(self, runner: Runner, slot: Slot) -> None:
        while True:
            job = self._take()
            if job is None:
                if not self.active or self.blocked():
                    return
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
                continue
            self.active[slot.number] = job
            self._progress()
            try:
                await runner.run(slot, job)
            finally:
                del self.active[slot.number]
                self.wake()

    def _progress(self) -> None:
        """The phase and detail `expd status` shows."""
        state = self.store.state
        if state.phase in ("complete", "crashed"):
            return
        running = len(self.active)
        detail = f"{running} running, {state.done}/{state.total} done"
        if self.blocked() and running:
            why = (
                "aborting"
                if self.controls.abort
                else "stopping"
                if self.controls.stop
                else "budget reached"
            )
            self.store.phase("stopping", f"{why}: {running} still running")
        elif state.phase != "stopping":
            self.store.phase("running", detail)
