"""Lanes: several agent turns at once in one run (`[lanes] count` > 1).

Each lane is a worker that takes the next experiment number (unique, increasing, never reused),
resets its own tree to the incumbent at that moment, runs its agent (its arm chosen as without
lanes), captures the candidate, pinned under its ref, and hands it to the measurement queue
(daemon/service/lane_queue.py), which decides one candidate at a time. The daemon stays the one
writer: lanes and slots are tasks of its event loop, and only the queue's `conclude` records.

A lane whose agent fails repeatedly pauses and the run goes on with the others: its retry policy
gave up (or the agent said it cannot run any more; with arms that pauses the arm instead, as
without lanes), or its turns crashed `CRASHES_TO_PAUSE` times in a row. With every lane paused the
run ends `agent_unavailable`. A stop lets running turns and queued measurements finish and be
recorded; an abort cancels every turn and the measurement, each recorded `crash` "aborted".
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

import anyio
from msgspec.structs import replace

from daemon.agents.base import Agent, Usage
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.store import TreeError
from daemon.service import faults
from daemon.service.arms import ArmAgents
from daemon.service.lane_queue import Queue, Queued, Slot, aborted_record
from daemon.service.loop import Loop, RunFailed
from daemon.service.packet import write_prompt
from daemon.service.turn import AgentGaveUp, AgentTurn, ProviderFailed, gave_up
from shared.schema import InFlight, LaneState, ResultRecord

CRASHES_TO_PAUSE = 3
"""A lane whose agent's turns crash this many times in a row pauses."""
SAVE_WINDOW_S = 0.2
"""While lanes run, state.json is rewritten at most this often for phase changes; an experiment
begun is saved at once, and results.jsonl (fsynced) stays the record."""


@dataclass
class Lane:
    """One lane: its tree, its agent (or arms) and the turn that runs them."""

    state: LaneState
    tree: AgentTree
    agent: Agent
    arms: ArmAgents | None
    turn: AgentTurn
    crashes: int = 0


class LaneRun:
    """The run's lanes and measurement slots, started after the baseline, until a stop reason."""

    def __init__(self, loop: Loop, lanes: list[Lane], slots: list[Slot]) -> None:
        self.loop = loop
        self.lanes = lanes
        self.slots = slots
        self.queue = Queue(loop, loop.config.lanes.overlap_measurement, self._phase)
        self.next_n = loop.next_number()
        self.reason: str | None = None
        node = socket.gethostname()
        for lane in lanes:
            lane.state.node = node
            lane.turn.flight = self._flight_of(lane.state)
        loop.state.lanes = [lane.state for lane in lanes]

    @staticmethod
    def _flight_of(state: LaneState):
        return lambda: state.in_flight

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = self.loop
        try:
            has_baseline = any(r.status == "baseline" for r in loop.results)
            if not has_baseline and not await loop.baseline():
                return
            loop.store.save()
            async with anyio.create_task_group() as saver:
                saver.start_soon(loop.store.coalesce, SAVE_WINDOW_S)
                async with anyio.create_task_group() as tg:
                    for slot in self.slots:
                        tg.start_soon(self.queue.serve, slot)
                    async with anyio.create_task_group() as lanes:
                        for lane in self.lanes:
                            lanes.start_soon(self._work, lane)
                    self.queue.closed = True
                    self.queue.changed()
                saver.cancel_scope.cancel()  # what is pending is written as it ends
            if self.queue.failed is not None:
                raise self.queue.failed
            await self._settle()
            reason = self.reason or loop.stop_reason() or "stopped"
            loop.finish(reason, self._message(reason))
        except RunFailed as exc:
            await self._settle()
            loop.finish("error", str(exc), phase="crashed")

    def _stop_reason(self) -> str | None:
        """Why no further turn may start (the first reason seen stays the run's)."""
        if self.reason is None:
            loop, s = self.loop, self.loop.state
            if loop.controls.abort:
                self.reason = "aborted"
            elif self.queue.failed is not None:
                self.reason = "error"
            elif all(lane.state.paused for lane in self.lanes) or self._arms_all_paused():
                self.reason = "agent_unavailable"
            elif loop.controls.stop:
                self.reason = "stopped"
            elif self.next_n > s.max_experiments:
                self.reason = "max_experiments"
            elif s.consecutive_non_keeps >= loop.config.loop.max_consecutive_discards:
                self.reason = "stagnation"
            elif (limit := loop.config.loop.max_cost_usd) is not None and s.cost_usd >= limit:
                self.reason = "budget"
        return self.reason

    def _arms_all_paused(self) -> bool:
        return any(lane.arms is not None and lane.arms.all_paused for lane in self.lanes)

    def _message(self, reason: str) -> str:
        if reason != "agent_unavailable":
            return ""
        arms = next((lane.arms for lane in self.lanes if lane.arms is not None), None)
        if arms is not None and arms.all_paused:
            return arms.paused_message()
        return (
            "every lane is paused ("
            + "; ".join(f"lane {lane.state.lane}: {lane.state.paused}" for lane in self.lanes)
            + ")"
        )

    async def _settle(self) -> None:
        """Every lane idle and its tree back at the incumbent; the run's tree on its branch."""
        s = self.loop.state
        for lane in self.lanes:
            if not lane.state.paused:
                lane.state.phase = "idle"
            lane.state.experiment, lane.state.in_flight = None, None
            with contextlib.suppress(TreeError):  # reset again on resume; the record is complete
                await lane.tree.reset(s.incumbent_commit)
        try:
            await self.loop.worktree.reset(s.incumbent_commit)
        except TreeError as exc:
            raise RunFailed(f"cannot restore the agent's tree: {exc}") from None

    def _phase(self) -> None:
        """The run's phase from its lanes: measuring, agents working, waiting, or idle."""
        q = self.queue
        if q.measuring:
            phase = "measuring"
        elif q.agents:
            phase = "agent_running"
        else:
            phase = "waiting" if q.waiting else "idle"
        detail = f"{q.agents} agent(s) working, {q.measuring} measuring, {len(q.waiting)} queued"
        self.loop.store.phase(phase, detail)

    # --- one lane -------------------------------------------------------------------------------

    async def _work(self, lane: Lane) -> None:
        while True:
            while not self.queue.may_start_turn() and self._stop_reason() is None:
                await self.queue.wait_change()
            if self._stop_reason() is not None or lane.state.paused:
                return
            n = self.next_n
            setup = lane.arms.select(n) if lane.arms is not None else None
            if lane.arms is not None and setup is None:
                continue  # every arm is paused: the stop reason says so next
            self.next_n += 1
            await self._experiment(lane, n, setup)

    async def _experiment(self, lane: Lane, n: int, setup) -> None:
        loop, s, st = self.loop, self.loop.state, lane.state
        arm = lane.turn.use(setup)
        base = s.incumbent_commit
        started = time.time()
        st.phase, st.experiment, st.since = "agent_running", n, started
        st.in_flight = InFlight(experiment=n, started_at=started, stage="agent", arm=arm)
        s.experiment = max(s.experiment, n)
        self.queue.agents += 1
        self.queue.changed()
        # At once (a resumed daemon must find it; a rename survives a kill), not fsynced: a power
        # cut loses the page cache of the agent's work too.
        loop.store.save(now=True)
        loop.store.event("agent_start", n, lane=st.lane, **({"arm": arm} if arm else {}))
        faults.point("agent_start", n)
        item = Queued(
            lane=st,
            agent=lane.agent,
            record=ResultRecord(experiment=n),
            made_against=base,
            base=base,
        )
        try:
            record, paused = await self._turn(lane, n, started, base, setup)
        finally:
            self.queue.agents -= 1
        record.arm = arm
        item.record = record
        if record.status:  # nothing to measure: decided at once
            st.phase = "idle"
            await self.queue.conclude(item, record)
        else:
            st.phase, st.since = "waiting", time.time()
            if st.in_flight:
                st.in_flight.stage = "waiting"
            self.queue.put(item)  # the run's phase is told after the lane's
            await item.done.wait()
        if not st.paused:
            st.phase = "idle"
        self._after(lane, record, paused)
        self.queue.changed()

    async def _turn(
        self,
        lane: Lane,
        n: int,
        started: float,
        base: str,
        setup,
    ) -> tuple[ResultRecord, str]:
        """The agent's turn with its retries; the record (crash, or a candidate) and, when its
        provider gave up, why."""
        loop, s, turn = self.loop, self.loop.state, lane.turn
        config = replace(loop.config, agent=setup.arm.agent) if setup else loop.config
        addendum = setup.arm.prompt_addendum if setup else ""
        turn.base = base
        turn.retry.new_experiment()
        carried, record, paused = Usage(), None, ""
        with anyio.CancelScope() as scope:
            loop.controls.scopes.add(scope)
            try:
                await lane.tree.reset(base)
                prompt, prompt_file = write_prompt(
                    n,
                    loop.paths,
                    loop.program,
                    loop.manifest,
                    config,
                    loop.store,
                    loop.results,
                    addendum=addendum,
                )
                while record is None:
                    try:
                        record = await turn.take(n, started, prompt, prompt_file)
                    except ProviderFailed as exc:
                        carried.cost_usd += exc.outcome.cost_usd
                        carried.tokens += exc.outcome.tokens
                        try:
                            if not await turn.wait_out(n, exc.outcome):
                                record = gave_up(
                                    s, n, started, "stopped while the agent's provider failed"
                                )
                        except AgentGaveUp as gave:
                            record, paused = gave_up(s, n, started, str(gave)), str(gave)
            except TreeError as exc:
                record = gave_up(s, n, started, f"cannot reset the lane's tree: {exc}")
                paused = str(exc)
        loop.controls.scopes.discard(scope)
        if record is None or scope.cancelled_caught:
            commit = lane.state.in_flight.commit if lane.state.in_flight else None
            record = aborted_record(ResultRecord(experiment=n, started_at=started, commit=commit))
        record.cost_usd += carried.cost_usd
        record.tokens += carried.tokens
        return record, paused

    def _after(self, lane: Lane, record: ResultRecord, paused: str) -> None:
        """Pause the lane (or its arm) whose agent keeps failing."""
        st, turn = lane.state, lane.turn
        gone = paused or turn.unavailable or ""
        turn.unavailable = None
        if gone and lane.arms is not None and record.arm is not None:
            lane.arms.pause(record.arm, gone, record.experiment)
            gone = ""
        agent_crash = record.status == "crash" and record.reason != "aborted by request"
        lane.crashes = lane.crashes + 1 if agent_crash and record.measure_s == 0 else 0
        if not gone and lane.crashes >= CRASHES_TO_PAUSE:
            gone = f"{lane.crashes} crashes in a row ({record.reason})"
        if gone:
            st.phase, st.paused = "paused", gone
            self.loop.store.event("lane_paused", record.experiment, lane=st.lane, reason=gone)
            self.loop.state.message = f"lane {st.lane} paused: {gone}"
            self.loop.store.save()
