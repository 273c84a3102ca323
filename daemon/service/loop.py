"""The experiment loop: baseline, then agent → commit → measure → decide → keep or revert.

The parts live beside it: `turn` (the agent's turn), `measuring` (builds, measurements, the policy
session), `recorder` (a result into results.jsonl and the state). The named `faults.point`s mark
where the crash-safety tests kill the daemon.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from msgspec.structs import replace

from daemon.agents.base import Agent, AgentOutcome, Usage
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.store import TreeError
from daemon.ops.measure import Measurer, Sample
from daemon.ops.sandbox import UNCONFINED, Sandbox
from daemon.policies.base import ChangeInfo, Policy, medians
from daemon.policies.noise import baseline_evidence, start_note
from daemon.policies.registry import make_policy
from daemon.service import faults
from daemon.service.arms import ArmAgents
from daemon.service.controls import Controls
from daemon.service.guards import protected_change
from daemon.service.measuring import Measuring
from daemon.service.packet import note_ideas, notify_end, write_prompt
from daemon.service.recorder import Recorder, decided_evidence
from daemon.service.retry import RetryPolicy
from daemon.service.store import RunStore
from daemon.service.turn import AgentGaveUp, AgentTurn, ProviderFailed, aborted, gave_up
from shared import evidence
from shared.paths import ProgramPaths, RunPaths
from shared.programs import changed_files, parse_duration
from shared.protect import Protected
from shared.schema import InFlight, ProgramConfig, ResultRecord, RunManifest, RunState


class RunFailed(Exception):
    """The run cannot go on (e.g. the evaluator changed); it ends with reason `error`.

    `record` is the experiment it cut short, recorded (and reverted) before the run ends.
    """

    def __init__(self, message: str, record: ResultRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class Loop:
    paths: RunPaths
    manifest: RunManifest
    config: ProgramConfig
    program: ProgramPaths
    recorder: Recorder
    agent: Agent
    worktree: AgentTree
    measured: EvalTree
    measurer: Measurer
    controls: Controls
    env: dict[str, str]
    policy: Policy = field(init=False)
    sandbox: Sandbox = UNCONFINED
    """What confines the agent's processes (the measurement runs unconfined, in expd's tree)."""
    arms: ArmAgents | None = None
    """The program's arms (then `agent` is this too); None: one agent, as `[agent]` says."""
    turn: AgentTurn = field(init=False)
    measuring: Measuring = field(init=False)
    protected: Protected = field(init=False)

    def __post_init__(self) -> None:
        self.policy = make_policy(self.config)
        self.protected = Protected(self.config.measure.protect)
        self.turn = AgentTurn(
            paths=self.paths,
            run_id=self.manifest.run_id,
            store=self.store,
            agent=self.agent,
            worktree=self.worktree,
            retry=RetryPolicy.of(self.config.agent),
            controls=self.controls,
            timeout=parse_duration(self.config.agent.timeout),
            env=self.env,
            track=self._track,
            sandbox=self.sandbox,
        )
        self.measuring = Measuring(self.store, self.measurer, self.measured, self._track)

    @property
    def store(self) -> RunStore:
        return self.recorder.store

    @property
    def state(self) -> RunState:
        return self.store.state

    @property
    def results(self) -> list[ResultRecord]:
        return self.recorder.results

    # --- the run ---------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            has_baseline = any(r.status == "baseline" for r in self.results)
            if not has_baseline and not await self.baseline():
                return
            while (reason := self.stop_reason()) is None:
                await self.experiment(self.next_number())
            self.finish(reason)
        except AgentGaveUp as exc:
            self.finish("agent_unavailable", str(exc))
        except RunFailed as exc:
            self.finish("error", str(exc), phase="crashed")

    def next_number(self) -> int:
        return max((r.experiment for r in self.results), default=0) + 1

    def stop_reason(self) -> str | None:
        s = self.state
        if self.controls.abort:
            return "aborted"
        if self.turn.unavailable or (self.arms and self.arms.all_paused):
            return "agent_unavailable"
        if self.controls.stop:
            return "stopped"
        if self.next_number() > s.max_experiments:
            return "max_experiments"
        if s.consecutive_non_keeps >= self.config.loop.max_consecutive_discards:
            return "stagnation"
        limit = self.config.loop.max_cost_usd
        if limit is not None and s.cost_usd >= limit:
            return "budget"
        return None

    def finish(self, reason: str, message: str = "", *, phase: str = "complete") -> None:
        s = self.state
        s.termination_reason = reason
        s.in_flight = None
        if message:
            s.message = message
        elif reason == "agent_unavailable" and self.arms and self.arms.all_paused:
            s.message = self.arms.paused_message()
        elif reason == "agent_unavailable" and self.turn.unavailable:
            s.message = self.turn.unavailable
        self.store.phase(phase, "", durable=True)
        self.store.event("end", None, reason=reason, message=s.message)
        if self.config.loop.notify:
            notify_end(self.config.loop.notify, self.paths, self.manifest, self.store)

    # --- baseline --------------------------------------------------------------------------------

    async def baseline(self) -> bool:
        """Measure the base commit; False when the run ended instead (aborted, or it failed)."""
        s = self.state
        started = time.time()
        s.in_flight = InFlight(experiment=0, started_at=started, stage="baseline")
        self.store.phase("baseline", "starting", experiment=0, durable=True)
        faults.point("baseline_start", 0)
        if (note := start_note(self.config, self.manifest.calibration)) and not s.noise:
            s.noise = s.message = note  # heard before the baseline runs, not after
            self.store.event("noise", 0, detail=note)
        samples: list[Sample] = []
        failure: str | None = None
        with anyio.CancelScope() as scope:
            self.controls.scope = scope
            failure = await self.measuring.baseline(
                s.incumbent_commit, self.policy.baseline_runs(), samples
            )
        self.controls.scope = None
        if scope.cancelled_caught:
            self.finish("aborted", "aborted during the baseline")
            return False
        if failure:
            # Not recorded as experiment 0: a resumed run measures its baseline afresh.
            self.store.event("baseline_failed", 0, error=failure)
            self.finish("error", f"baseline measurement failed: {failure}", phase="crashed")
            return False
        values = [x.metrics[self.config.metric] for x in samples if x.ok]
        noise = baseline_evidence(self.config, self.policy.name, self.manifest.calibration, values)
        record = ResultRecord(
            experiment=0,
            status="baseline",
            commit=self.manifest.base_commit,
            metric=statistics.median(values),
            samples=values,
            metrics=medians([x.metrics for x in samples]),
            description="baseline",
            started_at=started,
            finished_at=time.time(),
            measure_s=sum(x.duration for x in samples),
            reason=f"median of {len(values)} run(s)",
            evidence=evidence.dump(noise),
        )
        self.recorder.record(record, point="baseline_recorded")
        s.in_flight = None
        self.store.phase("idle", "", durable=True)
        await self.agent.feedback(record)
        return True

    # --- one experiment ------------------------------------------------------------------------

    async def experiment(self, n: int) -> None:
        s = self.state
        setup = self.arms.select(n) if self.arms is not None else None
        if self.arms is not None and setup is None:
            return  # every arm is paused: the run ends
        arm = self.turn.use(setup)
        started = time.time()
        s.experiment = n
        s.in_flight = InFlight(experiment=n, started_at=started, stage="agent", arm=arm)
        prompt, prompt_file = write_prompt(
            n,
            self.paths,
            self.program,
            self.manifest,
            replace(self.config, agent=setup.arm.agent) if setup else self.config,
            self.store,
            self.results,
            addendum=setup.arm.prompt_addendum if setup else "",
        )
        kind = self.turn.agent.kind
        working = f"agent ({kind}, arm {arm}) working" if arm else f"agent ({kind}) working"
        self.store.phase("agent_running", working, experiment=n, durable=True)
        self.store.event("agent_start", n, kind=kind, **({"arm": arm} if arm else {}))
        faults.point("agent_start", n)
        record: ResultRecord | None = None
        failed: RunFailed | None = None
        paused = ""  # why this experiment's arm gets no more experiments
        self.turn.retry.new_experiment()
        carried = Usage()  # what failed attempts of this experiment spent: it still counts
        while record is None:
            provider: AgentOutcome | None = None
            with anyio.CancelScope() as scope:
                self.controls.scope = scope
                try:
                    record = await self._attempt(n, started, prompt, prompt_file)
                except RunFailed as exc:
                    failed, record = exc, exc.record
                except ProviderFailed as exc:
                    provider = exc.outcome
                    carried.cost_usd += provider.cost_usd
                    carried.tokens += provider.tokens
                if provider is not None:
                    try:
                        if not await self.turn.wait_out(n, provider):
                            return  # stopped while waiting: nothing recorded, number not used
                    except AgentGaveUp as exc:
                        if arm is None:
                            raise
                        record, paused = gave_up(s, n, started, str(exc)), str(exc)
                    continue
            self.controls.scope = None
            if scope.cancelled_caught:
                break
        self.controls.scope = None
        if record is None:
            record = aborted(s, n, started)
        record.cost_usd += carried.cost_usd
        record.tokens += carried.tokens
        record.arm = arm
        await self._conclude(record)
        if self.arms is not None and arm is not None and (paused or self.turn.unavailable):
            self.arms.pause(arm, paused or self.turn.unavailable or "", n)
            self.turn.unavailable = None  # the arm's, not the run's: the others go on
        if failed is not None:
            raise failed

    async def _attempt(
        self, n: int, started: float, prompt: str, prompt_file: Path
    ) -> ResultRecord:
        """The agent's turn, then (when it produced a change) the measurements and the decision."""
        s = self.state
        incumbent = s.incumbent_commit
        record = await self.turn.take(n, started, prompt, prompt_file)
        if record.status:
            return record  # nothing to measure
        changed = changed_files(self.program, self.manifest.program_files)
        if changed:
            message = (
                f"program files changed during the run ({', '.join(changed)}): "
                "measurements would not be comparable; start a new run"
            )
            record.status, record.reason = "crash", message
            raise RunFailed(message, record)
        candidate = record.commit or incumbent
        repo = Path(self.manifest.repo)  # where the candidate is pinned
        if reason := await protected_change(self.protected, repo, incumbent, candidate):
            self.store.event("decision", n, status="discard", reason=reason, metric=None)
            record.status, record.reason = "discard", reason
            return record  # unmeasured: the benchmark itself was changed
        if s.in_flight:
            s.in_flight.stage = "measuring"
        first = "building" if self.measurer.build_command else "measuring candidate run 1"
        self.store.phase("measuring", first, experiment=n)
        faults.point("measuring", n)
        try:
            await self.measured.checkout(candidate)  # expd's own work: not counted as measuring
        except TreeError as exc:
            record.status, record.reason = "measurement_failure", str(exc)
            return record
        measure_started = time.monotonic()
        change = ChangeInfo(lines_added=record.diff.added, lines_removed=record.diff.removed)
        session = self.policy.begin(s.pool, change=change)
        decision = await self.measuring.decide(n, session, incumbent, candidate)
        record.measure_s = time.monotonic() - measure_started
        self.store.event(
            "decision", n, status=decision.status, reason=decision.reason, metric=decision.metric
        )
        decided = decided_evidence(decision, s.pool)
        faults.point("decided", n)
        record.status, record.reason = decision.status, decision.reason
        record.metric, record.samples = decision.metric, decision.samples
        record.metrics, record.evidence = decision.metrics, evidence.dump(decided)
        return record

    async def _conclude(self, record: ResultRecord) -> None:
        """Record the outcome, then revert anything that is not a keep. Never interrupted."""
        with anyio.CancelScope(shield=True):
            s = self.state
            record.finished_at = time.time()
            if record.parent is None:
                record.parent = s.incumbent_commit
            if s.in_flight:
                s.in_flight.stage = "recording"
            self.recorder.record(record, point="recorded")
            if record.status == "keep" and record.commit:
                await self.worktree.keep(record.commit)
            if record.status != "keep":
                self.store.phase(
                    "reverting", "back to the last kept commit", experiment=record.experiment
                )
                faults.point("reverting", record.experiment)
                try:
                    await self.worktree.reset(s.incumbent_commit)
                except TreeError as exc:
                    raise RunFailed(f"cannot restore the agent's tree: {exc}") from None
                faults.point("reverted", record.experiment)
            s.in_flight = None
            self.store.phase("idle", "", durable=True)
            note_ideas(self.paths, record)
            await self.agent.feedback(record)

    def _track(self, pgid: int) -> None:
        """Remember the child's process group so a resumed daemon can kill leftovers."""
        if self.state.in_flight is not None:
            self.state.in_flight.pgid = pgid
            self.store.save()
