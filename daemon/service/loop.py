"""The experiment loop: baseline, then agent → commit → measure → decide → keep or revert."""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec

from daemon.agents.base import Agent, AgentEvent, AgentOutcome, AgentTask, Usage, render
from daemon.ops.git import Worktree
from daemon.ops.measure import Measurer, Sample
from daemon.ops.sandbox import UNCONFINED, Sandbox
from daemon.policies.base import ChangeInfo, Decision, Measure, Policy, medians
from daemon.policies.noise import baseline_evidence
from daemon.policies.registry import make_policy
from daemon.service import faults
from daemon.service.context import build_prompt
from daemon.service.packet import note_ideas, notify_end, packet_extras
from daemon.service.recovery import restore_pool, tally
from daemon.service.retry import GiveUp, RetryPolicy
from daemon.service.store import RunStore
from shared.display import drift_line
from shared.paths import ProgramPaths, RunPaths
from shared.programs import changed_files, parse_duration
from shared.schema import InFlight, ProgramConfig, ResultRecord, RunManifest, RunState


class ProviderFailed(Exception):
    """The agent's provider failed (auth, quota, rate limit, …): retry the same experiment."""

    def __init__(self, outcome: AgentOutcome) -> None:
        super().__init__(outcome.error or outcome.error_class)
        self.outcome = outcome


class AgentGaveUp(Exception):
    """The provider cannot serve this run any more: it ends `agent_unavailable`."""


class RunFailed(Exception):
    """The run cannot go on (e.g. the evaluator changed); it ends with reason `error`.

    `record` is the experiment it cut short, recorded (and reverted) before the run ends.
    """

    def __init__(self, message: str, record: ResultRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class Controls:
    """Requests from control.json and signals, read by the loop at safe points."""

    stop: bool = False
    abort: bool = False
    scope: anyio.CancelScope | None = None

    def request_abort(self) -> None:
        self.abort = True
        if self.scope is not None:
            self.scope.cancel()


@dataclass
class Loop:
    paths: RunPaths
    manifest: RunManifest
    config: ProgramConfig
    program: ProgramPaths
    store: RunStore
    agent: Agent
    worktree: Worktree
    measurer: Measurer
    controls: Controls
    results: list[ResultRecord]
    env: dict[str, str]
    policy: Policy = field(init=False)
    retry: RetryPolicy = field(init=False)
    incumbent_samples: list[float] = field(default_factory=list)
    """The incumbent pool: its recent primary-metric samples, as the last decision left it."""
    agent_unavailable: str | None = None
    sandbox: Sandbox = UNCONFINED

    def __post_init__(self) -> None:
        self.policy = make_policy(self.config)
        agent = self.config.agent
        self.retry = RetryPolicy(
            fallback_model=agent.fallback_model,
            max_failures=agent.max_failures,
            window_s=parse_duration(agent.failure_window),
            base_wait_s=parse_duration(agent.retry_wait),
        )
        self.incumbent_samples = restore_pool(self.results)

    @property
    def state(self) -> RunState:
        return self.store.state

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
        if self.agent_unavailable:
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
        elif reason == "agent_unavailable" and self.agent_unavailable:
            s.message = self.agent_unavailable
        self.store.phase(phase, "", durable=True)
        self.store.event("end", None, reason=reason, message=s.message)
        if self.config.loop.notify:
            notify_end(self.config.loop.notify, self.paths, self.manifest, self.store)

    # --- baseline --------------------------------------------------------------------------------

    async def baseline(self) -> bool:
        s = self.state
        started = time.time()
        s.in_flight = InFlight(experiment=0, started_at=started, stage="baseline")
        self.store.phase("baseline", "starting", experiment=0, durable=True)
        faults.point("baseline_start", 0)
        samples: list[Sample] = []
        with anyio.CancelScope() as scope:
            self.controls.scope = scope
            failure = await self._build()
            runs = self.policy.baseline_runs()
            for i in range(runs):
                if failure:
                    break
                self.store.detail(f"measuring {i + 1}/{runs}")
                sample = await self.measurer.once(self._track)
                self.store.event(
                    "measurement",
                    0,
                    side="incumbent",
                    ok=sample.ok,
                    metrics=sample.metrics,
                    error=sample.error,
                )
                faults.point("baseline_measured", 0)
                if not sample.ok:
                    failure = sample.error
                samples.append(sample)
        self.controls.scope = None
        if scope.cancelled_caught:
            self.finish("aborted", "aborted during the baseline")
            return False
        values = [x.metrics[self.config.metric] for x in samples if x.ok]
        if failure:
            # Not recorded as experiment 0: a resumed run measures its baseline afresh.
            self.store.event("baseline_failed", 0, error=failure)
            self.finish("error", f"baseline measurement failed: {failure}", phase="crashed")
            return False
        metric = statistics.median(values)
        evidence = baseline_evidence(
            self.config, self.policy.name, self.manifest.calibration, values
        )
        record = ResultRecord(
            experiment=0,
            status="baseline",
            commit=self.manifest.base_commit,
            metric=metric,
            samples=values,
            metrics=medians([x.metrics for x in samples]),
            description="baseline",
            started_at=started,
            finished_at=time.time(),
            measure_s=sum(x.duration for x in samples),
            reason=f"median of {len(values)} run(s)",
            evidence=evidence,
        )
        self.store.append_result(record)
        faults.point("baseline_recorded", 0)
        self.results.append(record)
        self.incumbent_samples = values
        if evidence.get("note"):
            self._noise_note(0, str(evidence["note"]))
        s.baseline = s.best = metric
        s.best_experiment = 0
        s.incumbent_commit = self.manifest.base_commit
        s.in_flight = None
        self.store.phase("idle", "", durable=True)
        await self.agent.feedback(record)
        return True

    def _noise_note(self, n: int, note: str) -> None:
        """Say once per run that the noise hides small gains: in the state and as an event."""
        s = self.state
        if s.noise:
            return
        s.noise = note
        s.message = note
        self.store.event("noise", n, detail=note)

    def _after_decision(self, n: int, decision: Decision) -> dict[str, object]:
        """The decision's evidence plus the pool it leaves; drift and noise go to the state."""
        s = self.state
        evidence: dict[str, object] = dict(decision.evidence)
        if decision.pool is not None:
            pool = list(decision.pool)
        elif decision.status == "keep":
            pool = list(decision.samples)
        else:
            pool = list(self.incumbent_samples)
        evidence["pool"] = pool
        if decision.drift:
            evidence["drift"] = decision.drift
            s.drift, s.drift_at_experiment = decision.drift, n
            s.message = drift_line(decision.drift, n)
            self.store.event("drift", n, detail=decision.drift)
        note = decision.evidence.get("note")
        if note and "hides" in str(note):  # the policy also notes noise-free runs: no warning
            self._noise_note(n, str(note))
        return evidence

    # --- one experiment ------------------------------------------------------------------------

    async def experiment(self, n: int) -> None:
        s = self.state
        started = time.time()
        s.experiment = n
        s.in_flight = InFlight(experiment=n, started_at=started, stage="agent")
        prompt = build_prompt(
            experiment=n,
            program_md=self.program.md.read_text(errors="replace")
            if self.program.md.exists()
            else "",
            state=s,
            results=self.results,
            patches={r.experiment: self.paths.patch(r.experiment) for r in self.results[-20:]},
            budget=self.config.agent.context_chars,
            extras=packet_extras(self.paths, self.manifest, self.config, s),
        )
        prompt_file = self.paths.prompt(n)
        self.store.write_file(prompt_file, prompt)
        self.store.phase(
            "agent_running", f"agent ({self.agent.kind}) working", experiment=n, durable=True
        )
        self.store.event("agent_start", n, kind=self.agent.kind)
        faults.point("agent_start", n)
        record: ResultRecord | None = None
        failed: RunFailed | None = None
        self.retry.new_experiment()
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
                    if not await self._wait_out(n, provider):
                        return  # stopped while waiting: nothing recorded, the number is not used
                    continue
            self.controls.scope = None
            if scope.cancelled_caught:
                break
        self.controls.scope = None
        if record is None:
            record = ResultRecord(
                experiment=n,
                status="crash",
                commit=s.in_flight.commit if s.in_flight else None,
                parent=s.incumbent_commit,
                started_at=started,
                finished_at=time.time(),
                description="aborted",
                reason="aborted by request",
            )
        record.cost_usd += carried.cost_usd
        record.tokens += carried.tokens
        await self._conclude(record)
        if failed is not None:
            raise failed

    async def _wait_out(self, n: int, outcome: AgentOutcome) -> bool:
        """Handle a provider failure inside the experiment's cancel scope; False if stopped."""
        s = self.state
        await self.worktree.reset(s.incumbent_commit)
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
            s.in_flight = None
            self.store.phase("idle", "", durable=True)
            raise AgentGaveUp(verdict.message)
        self.store.agent_log(n, f"[retry] {verdict.note}")
        self.store.close_agent_log()
        if verdict.switch_model:
            self.agent.switch_model(verdict.switch_model)
        self.store.detail(verdict.note)
        deadline = time.monotonic() + verdict.wait_s
        while time.monotonic() < deadline:
            if self.controls.stop:
                s.in_flight = None
                self.store.phase("idle", "", durable=True)
                return False
            await anyio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        self.store.detail(f"agent ({self.agent.kind}) working")
        return True

    async def _attempt(
        self, n: int, started: float, prompt: str, prompt_file: Path
    ) -> ResultRecord:
        s = self.state
        incumbent = s.incumbent_commit
        agent_started = time.monotonic()
        usage = Usage()

        def emit(event: AgentEvent) -> None:
            self.store.agent_log(n, render(event))
            self.store.event("agent", n, **msgspec.to_builtins(event))
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
            timeout=parse_duration(self.config.agent.timeout),
            env={**self.env, "EXPD_EXPERIMENT": str(n)},
            on_process_start=self._track,
            sandbox=self.sandbox,
        )
        try:
            outcome = await self.agent.run(task, emit)
        finally:
            self.store.close_agent_log()
        agent_s = time.monotonic() - agent_started
        self.store.event(
            "agent_end",
            n,
            error=outcome.error,
            description=outcome.description,
            seconds=round(agent_s, 3),
        )
        faults.point("agent_end", n)
        base = ResultRecord(
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
            self.agent_unavailable = outcome.error or "agent unavailable"
        captured = await self.worktree.capture(
            incumbent,
            message=outcome.description or f"expd experiment {n}",
            ref=self._ref(n),
            want_subject=not outcome.description,
            after_commit=lambda: faults.point("auto_commit", n),
        )
        candidate = captured.commit
        if candidate != incumbent:
            base.commit = candidate
            if s.in_flight:
                s.in_flight.commit = candidate
            base.description = base.description or captured.subject
            base.diff = captured.stat
            self.store.write_file(self.paths.patch(n), captured.patch)
        if outcome.error:
            return self._with(base, status="crash", reason=outcome.error)
        if candidate == incumbent or not base.diff.files:
            return self._with(base, status="crash", reason="no change produced")
        changed = changed_files(self.program, self.manifest.program_files)
        if changed:
            message = (
                f"program files changed during the run ({', '.join(changed)}): "
                "measurements would not be comparable; start a new run"
            )
            raise RunFailed(message, self._with(base, status="crash", reason=message))
        if s.in_flight:
            s.in_flight.stage = "measuring"
        first = "building" if self.measurer.build_command else "measuring candidate run 1"
        self.store.phase("measuring", first, experiment=n)
        faults.point("measuring", n)
        measure_started = time.monotonic()
        change = ChangeInfo(lines_added=base.diff.added, lines_removed=base.diff.removed)
        decision = await self._measure(n, candidate, incumbent, change)
        base.measure_s = time.monotonic() - measure_started
        self.store.event(
            "decision", n, status=decision.status, reason=decision.reason, metric=decision.metric
        )
        evidence = self._after_decision(n, decision)
        faults.point("decided", n)
        return self._with(
            base,
            status=decision.status,
            metric=decision.metric,
            samples=decision.samples,
            metrics=decision.metrics,
            reason=decision.reason,
            evidence=evidence,
        )

    async def _measure(
        self, n: int, candidate: str, incumbent: str, change: ChangeInfo
    ) -> Decision:
        failure = await self._build()
        session = self.policy.begin(self.incumbent_samples, change=change)
        count = 0
        on_incumbent = False
        while isinstance(step := session.next(), Measure):
            if failure:
                session.observe(step.side, None)
                continue
            want_incumbent = step.side == "incumbent"
            if want_incumbent != on_incumbent:
                await self.worktree.checkout(incumbent if want_incumbent else self.manifest.branch)
                on_incumbent = want_incumbent
            count += 1
            if count > 1 or self.measurer.build_command:
                self.store.detail(f"measuring {step.side} run {count}")
            sample = await self.measurer.once(self._track)
            self.store.event(
                "measurement",
                n,
                side=step.side,
                ok=sample.ok,
                metrics=sample.metrics,
                error=sample.error,
            )
            faults.point("measured", n)
            if sample.ok:
                session.observe(step.side, sample.metrics)
            else:
                failure = sample.error
                session.observe(step.side, None)
        if on_incumbent:
            await self.worktree.checkout(self.manifest.branch)
        if step.status == "measurement_failure" and failure:
            return dataclasses.replace(step, keep=False, reason=failure, metric=None)
        return step

    async def _build(self) -> str | None:
        if self.measurer.build_command is None:
            return None
        self.store.detail("building")
        sample = await self.measurer.build(self._track)
        return None if sample.ok else sample.error

    async def _conclude(self, record: ResultRecord) -> None:
        """Record the outcome, then revert anything that is not a keep. Never interrupted."""
        with anyio.CancelScope(shield=True):
            s = self.state
            record.finished_at = time.time()
            if record.parent is None:
                record.parent = s.incumbent_commit
            if s.in_flight:
                s.in_flight.stage = "recording"
            self.store.append_result(record)
            faults.point("recorded", record.experiment)
            self.results.append(record)
            self._count(record)
            pool = record.evidence.get("pool")
            if isinstance(pool, list) and pool:
                self.incumbent_samples = [float(v) for v in pool]
            elif record.status == "keep":
                self.incumbent_samples = list(record.samples)
            if record.status != "keep":
                self.store.phase(
                    "reverting", "back to the last kept commit", experiment=record.experiment
                )
                faults.point("reverting", record.experiment)
                await self.worktree.reset(s.incumbent_commit)
                faults.point("reverted", record.experiment)
            s.in_flight = None
            self.store.phase("idle", "", durable=True)
            note_ideas(self.paths, record)
            await self.agent.feedback(record)

    def _count(self, record: ResultRecord) -> None:
        s = self.state
        tally(s, record, self.manifest.base_commit)
        s.cost_usd = sum(r.cost_usd for r in self.results)
        s.tokens = sum(r.tokens for r in self.results)

    def _track(self, pgid: int) -> None:
        """Remember the child's process group so a resumed daemon can kill leftovers."""
        if self.state.in_flight is not None:
            self.state.in_flight.pgid = pgid
            self.store.save()

    def _ref(self, n: int) -> str:
        return f"refs/expd/{self.manifest.run_id}/{n:04d}"

    @staticmethod
    def _with(record: ResultRecord, **changes: object) -> ResultRecord:
        for key, value in changes.items():
            setattr(record, key, value)
        return record
