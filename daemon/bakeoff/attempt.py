"""One attempt: a variant's agent on a task, in its slot's fresh tree, then the task's criteria.

The agent runs confined in the slot's tree, made afresh at the task's base. Whatever it left is
captured as one commit and pinned under the attempt's ref in the user's repository before anything
is cleaned up (a timed-out or failed attempt's work included); the criteria then judge that commit
(the base when nothing changed) in the slot's criteria tree, never in the agent's. The record is
appended durably, shielded from cancellation; an abort cancels the attempt and records it
`cancelled`.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec

from daemon.agents.base import AgentEvent, AgentOutcome, AgentTask, AgentUnavailable, Text, Usage
from daemon.agents.base import render as render_event
from daemon.agents.registry import make_agent
from daemon.bakeoff.controls import Controls
from daemon.bakeoff.criteria import CriteriaContext, evaluate
from daemon.bakeoff.plan import Job
from daemon.bakeoff.slots import Slot
from daemon.bakeoff.store import BakeoffStore
from daemon.ops.git.store import TreeError
from daemon.ops.sandbox import Sandbox, SandboxUnavailable
from daemon.service.guards import added_secret
from shared.bakeoffs.grading import verdict
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths, attempt_ref
from shared.bakeoffs.schema import FINISHED, AttemptRecord, BakeoffManifest, RunningAttempt
from shared.schema import AgentConfig, ProgramConfig

ANSWER_LINES = 50
ANSWER_MAX = 4096
"""The final answer `contains:` looks in: the agent's description, else its last stdout lines."""
MESSAGE_MAX = 1000
"""The commit message of an attempt's work (the agent's description), at most."""


class Failed(Exception):
    """The attempt ends as an `error` before its agent ran (its tree, agent or sandbox)."""


@dataclass
class Attempts:
    paths: BakeoffRunPaths
    manifest: BakeoffManifest
    bakeoff: BakeoffPaths
    store: BakeoffStore
    controls: Controls
    env: dict[str, str]
    """Added to every agent's environment (identity, run id, the run's mark for leftovers)."""
    criteria_env: dict[str, str]
    criteria_boxes: list[Sandbox]
    """Slot k's criteria sandbox."""
    private: tuple[Path, ...]
    """Hidden from every agent besides the user's repository (the bakeoff folder, the run)."""

    async def run(self, slot: Slot, job: Job) -> None:
        """Run `job` in `slot` and record it (also when cancelled)."""
        state = self.store.state
        started = time.time()
        running = RunningAttempt(
            task=job.task.id,
            variant=job.variant,
            attempt=job.attempt,
            started_at=started,
            stage="agent",
            slot=slot.number,
            replay_of=job.replay_of,
        )
        state.running.append(running)
        self.store.save(durable=True)
        self.store.event("attempt_start", key=job.key, slot=slot.number, replay_of=job.replay_of)
        record = AttemptRecord(
            task=job.task.id,
            variant=job.variant,
            attempt=job.attempt,
            base=job.task.base,
            started_at=started,
            replay_of=job.replay_of,
            reruns=state.interrupted.get(job.key, 0),
        )
        with anyio.CancelScope() as scope:
            self.controls.scopes.add(scope)
            try:
                await self._attempt(slot, job, running, record)
            except Failed as exc:
                record.status, record.error, record.score = "error", str(exc), 0.0
            finally:
                self.controls.scopes.discard(scope)
        if scope.cancelled_caught:
            record.status, record.score, record.error = "cancelled", None, "aborted by request"
            record.criteria = []
        self._conclude(record, running)

    async def _attempt(
        self, slot: Slot, job: Job, running: RunningAttempt, record: AttemptRecord
    ) -> None:
        files = self.store.attempt_files(job.task.id, job.variant, job.attempt)
        for stale in (files.patch, files.criteria_log):  # an interrupted or retried run's
            stale.unlink(missing_ok=True)
        prompt = self.store.redactor.text(job.prompt)
        self.store.write_file(files.prompt, prompt)
        base = job.task.base
        try:
            await anyio.to_thread.run_sync(slot.fresh_sync, base)
        except TreeError as exc:
            raise Failed(str(exc)) from None
        try:
            config = msgspec.convert(job.agent, AgentConfig)
            agent = make_agent(
                ProgramConfig(metric="score", direction="higher", agent=config),
                kind=config.kind,
                model=config.model,
                run_dir=slot.home,
            )
            sandbox = slot.agent_sandbox(config.sandbox, self.private, files.prompt)
        except (msgspec.ValidationError, AgentUnavailable, SandboxUnavailable) as exc:
            raise Failed(f"variant {job.variant!r}: {exc}") from None
        spec = self.manifest.spec
        tail: deque[str] = deque(maxlen=ANSWER_LINES)
        streamed = Usage()
        log = self.store.log(files.agent_log)

        def emit(event: AgentEvent) -> None:
            log.write(render_event(event))
            if isinstance(event, Text) and event.stream == "stdout":
                tail.append(event.text)
            elif isinstance(event, Usage):
                streamed.cost_usd += event.cost_usd
                streamed.tokens += event.tokens
                record.cost_usd, record.tokens = streamed.cost_usd, streamed.tokens
                self.store.state.cost_usd += event.cost_usd
                self.store.state.tokens += event.tokens

        def track(pgid: int) -> None:
            running.pgid = pgid
            self.store.save()

        task = AgentTask(
            experiment=job.attempt,
            worktree=slot.agent.path,
            run_dir=slot.home,
            prompt=prompt,
            prompt_file=files.prompt,
            purpose="task",
            title=f"bakeoff {job.task.id} {job.variant} #{job.attempt}",
            timeout=job.task.timeout_s or spec.timeout_s,
            env={
                **config.env,
                **self.env,
                "EXPD_TASK": job.task.id,
                "EXPD_VARIANT": job.variant,
                "EXPD_ATTEMPT": str(job.attempt),
                "EXPD_WORKTREE": str(slot.agent.path),
            },
            on_process_start=track,
            sandbox=sandbox,
        )
        clock = time.monotonic()
        try:
            outcome = await agent.run(task, emit)
        finally:
            record.duration_s = time.monotonic() - clock
            log.close()
            await agent.close()
        self._usage(record, outcome, streamed)
        description = self.store.redactor.text(outcome.description)
        record.answer = (description or "\n".join(tail))[-ANSWER_MAX:]
        self.store.event(
            "agent_end", key=job.key, error=outcome.error, seconds=round(record.duration_s, 3)
        )
        problem = await self._capture(slot, job, record, description[:MESSAGE_MAX])
        record.error_class = outcome.error_class
        if outcome.timed_out:
            record.status, record.error = "timeout", outcome.error
        elif outcome.error or outcome.error_class or problem:
            record.status = "error"
            record.error = outcome.error or problem or f"provider error ({outcome.error_class})"
        if record.status:
            record.score = 0.0
            return
        running.stage = "criteria"
        self.store.save()
        await self._criteria(slot, job, track, record)

    def _usage(self, record: AttemptRecord, outcome: AgentOutcome, streamed: Usage) -> None:
        """The attempt's cost: the agent's own total when it reports one (what it streamed was
        already counted into the run's)."""
        state = self.store.state
        record.cost_usd = outcome.cost_usd or streamed.cost_usd
        record.tokens = outcome.tokens or streamed.tokens
        state.cost_usd += max(0.0, record.cost_usd - streamed.cost_usd)
        state.tokens += max(0, record.tokens - streamed.tokens)

    async def _capture(self, slot: Slot, job: Job, record: AttemptRecord, message: str) -> str:
        """Pin what the agent left under the attempt's ref; why it could not be, or ""."""
        ref = attempt_ref(self.manifest.run_id, job.task.id, job.variant, job.attempt)
        redactor = self.store.redactor
        captured = await slot.agent.capture(
            job.task.base,
            description=message,
            fallback=f"expd bakeoff {self.manifest.run_id} {job.key}",
            ref=ref,
            check=functools.partial(added_secret, redactor),
        )
        if captured.refused or captured.problem:
            return captured.refused or captured.problem
        record.commit = captured.commit
        if captured.commit != job.task.base:
            record.changed, record.ref, record.diff = True, ref, captured.stat
            files = self.paths.attempt(job.task.id, job.variant, job.attempt)
            self.store.write_file(files.patch, captured.patch)
        return ""

    async def _criteria(
        self, slot: Slot, job: Job, track: Callable[[int], None], record: AttemptRecord
    ) -> None:
        files = self.paths.attempt(job.task.id, job.variant, job.attempt)
        log = self.store.log(files.criteria_log)
        context = CriteriaContext(
            tree=slot.criteria,
            commit=record.commit or job.task.base,
            answer=record.answer,
            sandbox=self.criteria_boxes[slot.number],
            env=self.criteria_env,
            default_timeout=self.manifest.spec.criteria_timeout_s,
            log=log.write,
            on_process_start=track,
            bakeoff_dir=self.bakeoff.dir,
        )
        clock = time.monotonic()
        try:
            record.criteria = await evaluate(job.task.criteria, context)
        finally:
            record.criteria_s = time.monotonic() - clock
            log.close()
        record.status, record.score = verdict(record.criteria)

    def _conclude(self, record: AttemptRecord, running: RunningAttempt) -> None:
        """Record the attempt, then take it off the running list (no await: never cut short)."""
        state = self.store.state
        record.finished_at = time.time()
        self.store.append(record)
        state.running = [r for r in state.running if r is not running]
        if record.replay_of is not None and record.status in FINISHED:
            state.replays = [
                r
                for r in state.replays
                if (r.task, r.variant, r.attempt) != (record.task, record.variant, record.attempt)
            ]
        self.store.save(durable=True)
        self.store.event(
            "attempt_end",
            key=record.key,
            status=record.status,
            score=record.score,
            seconds=round(record.duration_s + record.criteria_s, 3),
            error=record.error,
            replay_of=record.replay_of,
        )
