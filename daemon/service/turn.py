"""The agent's turn in one experiment: run it on the prompt, commit what it changed.

A provider failure (auth, quota, rate limit, …) is not the experiment's outcome: it raises
`ProviderFailed`, and `wait_out` decides with the retry policy whether the same experiment is tried
again (after a wait, perhaps on the fallback model) or the run ends `agent_unavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec

from daemon.agents.base import Agent, AgentEvent, AgentOutcome, AgentTask, Usage, render
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.store import TreeError
from daemon.ops.sandbox import UNCONFINED, Sandbox
from daemon.service import faults
from daemon.service.arms import Setup
from daemon.service.controls import Controls
from daemon.service.guards import added_secret
from daemon.service.retry import GiveUp, RetryPolicy
from daemon.service.store import RunStore
from shared.paths import RunPaths
from shared.schema import InFlight, ResultRecord, RunState


class ProviderFailed(Exception):
    """The agent's provider failed (auth, quota, rate limit, …): retry the same experiment."""

    def __init__(self, outcome: AgentOutcome) -> None:
        super().__init__(outcome.error or outcome.error_class)
        self.outcome = outcome


class AgentGaveUp(Exception):
    """The provider cannot serve this run any more: it ends `agent_unavailable` (with arms: the
    arm is paused, and the run goes on while another arm can run)."""


MAX_DESCRIPTION = 1000
"""An agent's description longer than this (characters) is cut: it becomes a commit message."""


def _short(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def gave_up(state: RunState, n: int, started: float, message: str) -> ResultRecord:
    """Experiment `n` of an arm whose provider gave up: a crash, recorded against the arm."""
    return ResultRecord(
        experiment=n,
        status="crash",
        parent=state.incumbent_commit,
        started_at=started,
        finished_at=time.time(),
        description="agent unavailable",
        reason=message,
    )


def aborted(state: RunState, n: int, started: float) -> ResultRecord:
    """Experiment `n` cut short by an abort: a crash, with whatever commit it got to."""
    return ResultRecord(
        experiment=n,
        status="crash",
        commit=state.in_flight.commit if state.in_flight else None,
        parent=state.incumbent_commit,
        started_at=started,
        finished_at=time.time(),
        description="aborted",
        reason="aborted by request",
    )


@dataclass
class AgentTurn:
    paths: RunPaths
    run_id: str
    store: RunStore
    agent: Agent
    worktree: AgentTree
    retry: RetryPolicy
    controls: Controls
    timeout: float
    env: dict[str, str]
    track: Callable[[int], None]
    """Told each child's process group, so a resumed daemon can kill leftovers."""
    sandbox: Sandbox = UNCONFINED
    """What confines the agent's processes."""
    unavailable: str | None = None
    """Set when the agent said it cannot run any more: the run stops after this experiment."""
    base: str | None = None
    """With lanes: the incumbent this lane's turn started from (None: the run's incumbent now)."""
    flight: Callable[[], InFlight | None] | None = None
    """With lanes: the lane's in-flight experiment (None: the run's `in_flight`)."""

    def _base(self) -> str:
        return self.base or self.store.state.incumbent_commit

    def _flight(self) -> InFlight | None:
        return self.flight() if self.flight is not None else self.store.state.in_flight

    def use(self, setup: Setup | None) -> str | None:
        """Run the next experiment with an arm's agent and settings (None: as before); its id."""
        if setup is None:
            return None
        self.agent, self.retry = setup.agent, setup.retry
        self.timeout, self.sandbox = setup.timeout, setup.sandbox
        return setup.arm.id

    async def take(self, n: int, started: float, prompt: str, prompt_file: Path) -> ResultRecord:
        """Experiment `n`'s record after the agent: a crash, or (status empty) a change to measure.

        The record has the candidate commit, its diff and the agent's time, cost and tokens.
        """
        s = self.store.state
        incumbent = self._base()
        agent_started = time.monotonic()
        usage = Usage()

        def emit(event: AgentEvent) -> None:
            self.store.agent_log(n, render(event))
            self.store.agent_event(n, msgspec.to_builtins(event))
            if isinstance(event, Usage):
                usage.cost_usd += event.cost_usd
                usage.tokens += event.tokens
                s.cost_usd += event.cost_usd
                s.tokens += event.tokens

        task = AgentTask(
            experiment=n,
            worktree=self.worktree.path,
            run_dir=self.paths.dir,
            prompt=prompt,
            prompt_file=prompt_file,
            timeout=self.timeout,
            env={**self.env, "EXPD_EXPERIMENT": str(n)},
            on_process_start=self.track,
            sandbox=self.sandbox,
        )
        try:
            outcome = await self.agent.run(task, emit)
        finally:
            self.store.close_agent_log(n)
        outcome.description = self.store.redact(_short(outcome.description))
        agent_s = time.monotonic() - agent_started
        self.store.event(
            "agent_end",
            n,
            error=outcome.error,
            description=outcome.description,
            seconds=round(agent_s, 3),
        )
        faults.point("agent_end", n)
        record = ResultRecord(
            experiment=n,
            parent=incumbent,
            started_at=started,
            agent_s=agent_s,
            cost_usd=outcome.cost_usd or usage.cost_usd,
            tokens=outcome.tokens or usage.tokens,
            session_id=outcome.session_id,
            description=outcome.description,
        )
        if outcome.error_class is not None:
            raise ProviderFailed(outcome)
        if outcome.unavailable:
            self.unavailable = outcome.error or "agent unavailable"
        captured = await self.worktree.capture(
            incumbent,
            description=outcome.description,
            fallback=f"expd experiment {n}",
            ref=f"refs/expd/{self.run_id}/{n:04d}",
            after_commit=lambda: faults.point("auto_commit", n),
            check=lambda candidate: added_secret(self.store.redactor, candidate),
        )
        if captured.refused:
            record.status, record.reason = "crash", captured.refused
            return record  # neither recorded nor pinned: the loop reverts it
        if captured.problem:
            record.status, record.reason = "crash", outcome.error or captured.problem
            return record
        if captured.commit != incumbent:
            record.commit = captured.commit
            if flight := self._flight():
                flight.commit = captured.commit
            record.description = record.description or captured.subject
            record.diff = captured.stat
            self.store.write_file(self.paths.patch(n), captured.patch)
        if outcome.error:
            record.status, record.reason = "crash", outcome.error
        elif captured.commit == incumbent or not record.diff.files:
            record.status, record.reason = "crash", "no change produced"
        return record

    async def wait_out(self, n: int, outcome: AgentOutcome) -> bool:
        """Handle a provider failure inside the experiment's cancel scope; False if stopped."""
        s = self.store.state
        try:
            await self.worktree.reset(self._base())
        except TreeError as exc:
            raise AgentGaveUp(f"cannot restore the agent's tree: {exc}") from None
        verdict = self.retry.decide(
            outcome.error_class or "other", outcome.error or "", outcome.retry_after, time.time()
        )
        self.store.event(
            "agent_error",
            n,
            error_class=outcome.error_class,
            error=outcome.error,
            verdict=type(verdict).__name__.lower(),
        )
        if isinstance(verdict, GiveUp):
            raise AgentGaveUp(verdict.message)  # the loop ends the run or records the experiment
        self.store.agent_log(n, f"[retry] {verdict.note}")
        self.store.close_agent_log(n)
        if verdict.switch_model:
            self.agent.switch_model(verdict.switch_model)
        self.store.detail(verdict.note)
        deadline = time.monotonic() + verdict.wait_s
        while time.monotonic() < deadline:
            if self.controls.stop:
                if self.flight is None:
                    s.in_flight = None
                    self.store.phase("idle", "", durable=True)
                return False
            await anyio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        self.store.detail(f"agent ({self.agent.kind}) working")
        return True
