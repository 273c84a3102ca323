"""The lanes' measurement queue: candidates wait here for a slot, are replayed onto the incumbent
that moved while their agent worked, measured, and decided one at a time.

Decisions are sequential and always against the current incumbent, with the run's one policy and
pool: a candidate made against an older incumbent is cherry-picked onto the current one first (a
conflict makes it a `discard`, "stale: conflicts with #k", unmeasured), and a measurement whose
incumbent moved while it ran (only possible with several slots) goes back to the queue to be
replayed and measured again. Every result enters the record through `conclude`, under one lock, so
the order of lines in results.jsonl is the order of decisions.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from daemon.agents.base import Agent
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.replay import Conflict, applies, replay_one
from daemon.ops.git.store import TreeError
from daemon.policies.base import ChangeInfo
from daemon.service import faults
from daemon.service.guards import protected_change
from daemon.service.loop import Loop, RunFailed
from daemon.service.measuring import MeasurementLost, Measuring
from daemon.service.packet import note_ideas
from daemon.service.recorder import decided_evidence
from shared import evidence
from shared.programs import changed_files
from shared.schema import LaneState, ResultRecord


@dataclass
class Slot:
    """One exclusive measurement slot: its own tree and measurer."""

    index: int
    tree: EvalTree
    measuring: Measuring
    lane: LaneState | None = None
    """The lane whose candidate it measures now (its in-flight record gets the pgids)."""


@dataclass
class Queued:
    """A lane's candidate waiting for a slot."""

    lane: LaneState
    agent: Agent
    record: ResultRecord
    made_against: str
    """The incumbent the lane's turn started from."""
    base: str
    """The commit `record.commit` is now on (`made_against`, or where it was replayed to)."""
    done: anyio.Event = field(default_factory=anyio.Event)


def aborted_record(record: ResultRecord) -> ResultRecord:
    record.status, record.description = "crash", record.description or "aborted"
    record.reason = "aborted by request"
    return record


class Queue:
    """The candidates waiting for a slot, the slots' work and the one way results are recorded."""

    def __init__(self, loop: Loop, overlap: bool, on_change: Callable[[], None]) -> None:
        self.loop = loop
        self.overlap = overlap
        self.on_change = on_change
        self.waiting: deque[Queued] = deque()
        self.measuring = 0
        self.agents = 0
        """Agent turns running now (the lanes count them)."""
        self.closed = False
        """No lane will queue anything more: slots leave once the queue is empty."""
        self.failed: RunFailed | None = None
        self.decide_lock = anyio.Lock()
        self._changed = anyio.Event()

    # --- waiting --------------------------------------------------------------------------------

    def changed(self) -> None:
        """Something a lane or a slot waits on changed: wake them all to look again."""
        self._changed.set()
        self._changed = anyio.Event()
        self.on_change()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def may_start_turn(self) -> bool:
        """`overlap_measurement = false`: no turn starts while a measurement runs or waits."""
        return self.overlap or (self.measuring == 0 and not self.waiting)

    def put(self, item: Queued) -> None:
        self.waiting.append(item)
        self.changed()

    async def _next(self) -> Queued | None:
        while True:
            if self.waiting and (self.overlap or self.agents == 0):
                return self.waiting.popleft()
            if self.closed and not self.waiting:
                return None
            await self.wait_change()

    async def serve(self, slot: Slot) -> None:
        """A slot's worker: measure and decide queued candidates until no lane will add more."""
        while (item := await self._next()) is not None:
            self.measuring += 1
            try:
                await self._one(slot, item)
            finally:
                self.measuring -= 1
                slot.lane = None
                self.changed()

    # --- one candidate --------------------------------------------------------------------------

    async def _one(self, slot: Slot, item: Queued) -> None:
        loop, s = self.loop, self.loop.state
        record, lane = item.record, item.lane
        n = record.experiment
        if loop.controls.abort or self.failed is not None:
            await self.conclude(item, aborted_record(record))
            return
        incumbent = s.incumbent_commit
        assert record.commit is not None
        if item.base != incumbent:
            stale = await self._replay(slot, item, incumbent)
            if stale:
                record.status, record.reason = "discard", stale
                loop.store.event("decision", n, status="discard", reason=stale, metric=None)
                await self.conclude(item, record)
                return
        candidate = record.commit
        repo = Path(loop.manifest.repo)
        if changed := changed_files(loop.program, loop.manifest.program_files):
            message = (
                f"program files changed during the run ({', '.join(changed)}): "
                "measurements would not be comparable; start a new run"
            )
            record.status, record.reason = "crash", message
            self.failed = RunFailed(message, record)
            await self.conclude(item, record)
            loop.controls.request_abort()
            return
        if reason := await protected_change(loop.protected, repo, incumbent, candidate):
            loop.store.event("decision", n, status="discard", reason=reason, metric=None)
            record.status, record.reason = "discard", reason
            await self.conclude(item, record)
            return
        slot.lane = lane
        lane.phase, lane.since, lane.node = "measuring", time.time(), lane.node
        if lane.in_flight:
            lane.in_flight.stage = "measuring"
        self.changed()
        loop.store.event("measure_start", n, lane=lane.lane, slot=slot.index)
        faults.point("measuring", n)
        started = time.monotonic()
        decision = None
        lost: MeasurementLost | None = None
        with anyio.CancelScope() as scope:
            loop.controls.scopes.add(scope)
            try:
                await slot.tree.checkout(candidate)
            except TreeError as exc:
                record.status, record.reason = "measurement_failure", str(exc)
            else:
                change = ChangeInfo(
                    lines_added=record.diff.added, lines_removed=record.diff.removed
                )
                session = loop.policy.begin(s.pool, change=change)
                try:
                    decision = await slot.measuring.decide(n, session, incumbent, candidate)
                except MeasurementLost as exc:
                    lost = exc
        loop.controls.scopes.discard(scope)
        if scope.cancelled_caught:
            await self.conclude(item, aborted_record(record))
            return
        record.measure_s = time.monotonic() - started
        if lost is not None:
            # Nothing was learnt about the candidate: an interrupted crash; the lane goes on.
            record.status, record.reason = "crash", lost.reason
            loop.store.event(
                "interrupted", n, lane=lane.lane, stage="measuring", detail=lost.detail
            )
            await self.conclude(item, record)
            return
        async with self.decide_lock:
            if s.incumbent_commit != incumbent:
                # Another slot's keep moved the incumbent meanwhile: decide against the new one.
                item.base = candidate
                self.waiting.appendleft(item)
                loop.store.event("requeued", n, lane=lane.lane, reason="the incumbent moved")
                return
            if decision is not None:
                loop.store.event(
                    "decision",
                    n,
                    status=decision.status,
                    reason=decision.reason,
                    metric=decision.metric,
                )
                decided = decided_evidence(decision, s.pool)
                faults.point("decided", n)
                record.status, record.reason = decision.status, decision.reason
                record.metric, record.samples = decision.metric, decision.samples
                record.metrics, record.evidence = decision.metrics, evidence.dump(decided)
            await self._record(item, record)

    async def _replay(self, slot: Slot, item: Queued, incumbent: str) -> str:
        """Put the candidate onto `incumbent`; the stale reason when it no longer applies."""
        loop, record = self.loop, item.record
        n = record.experiment
        assert record.commit is not None
        ref = f"refs/expd/{loop.manifest.run_id}/{n:04d}"
        replay = functools.partial(replay_one, slot.tree, record.commit, incumbent, ref)
        try:
            commit, patch, stat = await anyio.to_thread.run_sync(replay)
        except Conflict:
            k = await anyio.to_thread.run_sync(self._conflicting_keep, slot, item)
            return f"stale: conflicts with #{k}"
        loop.store.event("replayed", n, lane=item.lane.lane, onto=incumbent, commit=commit)
        record.commit, record.diff, item.base = commit, stat, incumbent
        if item.lane.in_flight:
            item.lane.in_flight.commit = commit
        loop.store.write_file(loop.paths.patch(n), patch)
        return ""

    def _conflicting_keep(self, slot: Slot, item: Queued) -> int:
        """The first keep since the candidate's base that it does not apply onto."""
        results = self.loop.results
        start = next(
            (i for i, r in enumerate(results) if r.commit == item.base and r.status == "keep"), 0
        )
        keeps = [r for r in results[start + 1 :] if r.status == "keep" and r.commit]
        assert item.record.commit is not None
        for keep in keeps:
            assert keep.commit is not None
            if not applies(slot.tree, item.record.commit, keep.commit):
                return keep.experiment
        return keeps[-1].experiment if keeps else 0

    # --- recording ------------------------------------------------------------------------------

    async def conclude(self, item: Queued, record: ResultRecord) -> None:
        async with self.decide_lock:
            await self._record(item, record)

    async def _record(self, item: Queued, record: ResultRecord) -> None:
        """Record a lane's result (the caller holds the decision lock). Never interrupted."""
        with anyio.CancelScope(shield=True):
            loop, s = self.loop, self.loop.state
            record.finished_at = time.time()
            record.parent = s.incumbent_commit
            if item.made_against != s.incumbent_commit:
                record.made_against = item.made_against
            record.lane = item.lane.lane
            if item.lane.in_flight:
                item.lane.in_flight.stage = "recording"
            loop.recorder.record(record, point="recorded")
            if record.status == "keep" and record.commit:
                await loop.worktree.keep(record.commit)  # the run's branch follows
            item.lane.in_flight = None
            item.lane.experiment = None
            item.done.set()
            loop.store.save()  # batched: the result is in results.jsonl, which resume reads first
            note_ideas(loop.paths, record)
            await item.agent.feedback(record)
