"""A run's arms as the daemon runs them: one agent, retry policy and sandbox per arm.

`ArmAgents` stands behind the one `Agent` the loop knows. Before each experiment the loop asks it
to `select` an arm (daemon/policies/allocation.py decides from the run's per-arm statistics);
the agent it then runs, tells the outcome and switches to a fallback model is that arm's. An arm
whose agent cannot be made, or whose provider is unavailable, is *paused*: it gets no further
experiments in this daemon's life (a resumed daemon tries it again), and the run ends
`agent_unavailable` only when every arm is paused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from daemon.agents.base import Agent, AgentOutcome, AgentTask, AgentUnavailable, Emit
from daemon.agents.registry import make_agent
from daemon.ops.sandbox import Sandbox, SandboxUnavailable
from daemon.policies.allocation import choose, rng_for
from daemon.service.retry import RetryPolicy
from daemon.service.store import RunStore
from shared.arms import Arm
from shared.programs import parse_duration
from shared.schema import ArmStats, ProgramConfig, ResultRecord, RunManifest


@dataclass(frozen=True)
class Setup:
    """What the agent's turn runs one arm's experiment with."""

    arm: Arm
    agent: Agent
    retry: RetryPolicy
    timeout: float
    sandbox: Sandbox


class ArmAgents:
    """Every arm's agent, made on first use, behind the `Agent` interface."""

    def __init__(
        self,
        arms: list[Arm],
        *,
        config: ProgramConfig,
        store: RunStore,
        run_dir: Path,
        seed: int | str,
        sandbox_for: Callable[[str], Sandbox],
    ) -> None:
        self.arms = {a.id: a for a in arms}
        self.config = config
        self.store = store
        self.run_dir = run_dir
        self.seed = seed
        """`[arms_policy] seed`, else the run's id: each experiment's draws depend on it and the
        experiment's number only, so a resume draws what the dead daemon would have."""
        self.sandbox_for = sandbox_for
        self.current: Setup | None = None
        self._setups: dict[str, Setup] = {}

    @property
    def kind(self) -> str:
        return self.current.agent.kind if self.current else "arms"

    @property
    def stats(self) -> list[ArmStats]:
        return self.store.state.arm_stats

    # --- choosing ---------------------------------------------------------------------------------

    def select(self, n: int) -> Setup | None:
        """The arm for experiment `n`, ready to run; None when every arm is paused."""
        while chosen := choose(self.stats, self.config.arms_policy, rng_for(self.seed, n)):
            try:
                self.current = self._setup(self.arms[chosen])
            except (AgentUnavailable, SandboxUnavailable) as exc:
                self.pause(chosen, str(exc), n)
                continue
            return self.current
        self.current = None
        return None

    def _setup(self, arm: Arm) -> Setup:
        if arm.id not in self._setups:
            config = msgspec.structs.replace(self.config, agent=arm.agent)
            agent = make_agent(
                config, kind=arm.agent.kind, model=arm.agent.model, run_dir=self.run_dir
            )
            self._setups[arm.id] = Setup(
                arm=arm,
                agent=agent,
                retry=RetryPolicy.of(arm.agent),
                timeout=parse_duration(arm.agent.timeout),
                sandbox=self.sandbox_for(arm.agent.sandbox),
            )
        return self._setups[arm.id]

    def pause(self, arm_id: str, reason: str, n: int | None = None) -> None:
        """Give `arm_id` no more experiments (until a resume); recorded in the state and events."""
        for stats in self.stats:
            if stats.id == arm_id:
                stats.paused = reason or "unavailable"
        self.store.state.message = f"arm {arm_id} paused: {reason}"
        self.store.event("arm_paused", n, arm=arm_id, reason=reason)
        self.store.save()

    @property
    def all_paused(self) -> bool:
        return bool(self.stats) and all(a.paused for a in self.stats)

    def paused_message(self) -> str:
        reasons = "; ".join(f"{a.id}: {a.paused}" for a in self.stats if a.paused)
        return f"every arm is paused ({reasons})"

    # --- the Agent interface ----------------------------------------------------------------------

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        assert self.current is not None, "select an arm first"
        return await self.current.agent.run(task, emit)

    async def feedback(self, record: ResultRecord) -> None:
        """Told to the arm that made the experiment (the baseline has none)."""
        setup = self._setups.get(record.arm or "")
        if setup is not None:
            await setup.agent.feedback(record)

    async def recover(self, interrupted: int) -> None:
        for setup in self._setups.values():
            await setup.agent.recover(interrupted)

    def switch_model(self, model: str) -> None:
        if self.current is not None:
            self.current.agent.switch_model(model)

    async def close(self) -> None:
        for setup in self._setups.values():
            await setup.agent.close()


def run_agent(
    manifest: RunManifest,
    config: ProgramConfig,
    arms: list[Arm],
    store: RunStore,
    run_dir: Path,
    sandbox_for: Callable[[str], Sandbox],
) -> tuple[Agent, ArmAgents | None]:
    """The agent a run's loop talks to: its arms', or the one `[agent]` (which raises
    AgentUnavailable when it cannot be made: that run cannot start)."""
    if not arms:
        kind, model = manifest.agent_kind, manifest.agent_model
        return make_agent(config, kind=kind, model=model, run_dir=run_dir), None
    seed = config.arms_policy.seed
    agents = ArmAgents(
        arms,
        config=config,
        store=store,
        run_dir=run_dir,
        seed=manifest.run_id if seed is None else seed,
        sandbox_for=sandbox_for,
    )
    return agents, agents
