"""Recording a result: the one way an outcome enters the run, live and when a daemon resumes.

`Recorder.record` appends the result to results.jsonl (the durable record) and then `apply`s it to
the state: counters, best and incumbent, cost and token totals, the arm's statistics, the
incumbent pool, drift and the noise warning. A resumed daemon rebuilds its state by `replay`ing results.jsonl through the same
`apply`, so the live state and the rebuilt one cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from daemon.policies.base import Decision
from daemon.policies.ledger import follow, pool_left
from daemon.service import faults
from daemon.service.store import RunStore
from shared import evidence
from shared.display import drift_line
from shared.evidence import Evidence, value_or
from shared.schema import ResultRecord, RunState
from shared.status import improvement_pct


def decided_evidence(decision: Decision, pool: list[float]) -> Evidence:
    """The decision's evidence as recorded: with the pool it leaves and the drift it saw.

    `pool` is the incumbent pool the decision started from; it stays unless the decision says
    otherwise (a keep empties it: the next session re-measures the new incumbent).
    """
    left = pool_left(decision, pool)
    if decision.drift:
        return msgspec.structs.replace(decision.evidence, pool=left, drift=decision.drift)
    return msgspec.structs.replace(decision.evidence, pool=left)


@dataclass
class Seen:
    """What a result newly told the run, for the live daemon to announce (events, message)."""

    drift: str = ""
    noise: str = ""


class Recorder:
    """Counts results into `store.state`; `record` also appends them to results.jsonl."""

    def __init__(self, store: RunStore, base_commit: str) -> None:
        self.store = store
        self.base_commit = base_commit
        self.results: list[ResultRecord] = []
        self._cost = 0.0
        self._tokens = 0

    @property
    def state(self) -> RunState:
        return self.store.state

    def replay(self, results: list[ResultRecord]) -> None:
        """Rebuild the state from recorded results (a resumed daemon); nothing is written."""
        for record in results:
            self.apply(record)

    def record(self, record: ResultRecord, *, point: str | None = None) -> None:
        """Append `record` durably, then count it; `point` names the fault point in between."""
        self.store.append_result(record)
        if point is not None:
            faults.point(point, record.experiment)
        seen = self.apply(record)
        n = record.experiment
        if seen.drift:
            self.state.message = drift_line(seen.drift, n)
            self.store.event("drift", n, detail=seen.drift)
        if seen.noise:  # said once per run: in the state, the message and an event
            self.state.message = seen.noise
            self.store.event("noise", n, detail=seen.noise)

    def apply(self, r: ResultRecord) -> Seen:
        """Count one recorded result into the state: the same rule live and on resume."""
        s = self.state
        _count_arm(s, r)
        match r.status:
            case "baseline":
                s.baseline = s.best = r.metric
                s.best_experiment = r.experiment
                s.incumbent_commit = r.commit or self.base_commit
            case "keep":
                s.keeps += 1
                s.consecutive_non_keeps = 0
                s.best, s.best_experiment = r.metric, r.experiment
                s.incumbent_commit = r.commit or s.incumbent_commit
            case "discard":
                s.discards += 1
                s.consecutive_non_keeps += 1
            case "crash":
                s.crashes += 1
                s.consecutive_non_keeps += 1
            case "measurement_failure":
                s.measurement_failures += 1
                s.consecutive_non_keeps += 1
        s.experiment = max(s.experiment, r.experiment)
        self.results.append(r)
        s.results_count = len(self.results)
        self._cost += r.cost_usd
        self._tokens += r.tokens
        s.cost_usd, s.tokens = self._cost, self._tokens
        return self._evidence(r)

    def _evidence(self, r: ResultRecord) -> Seen:
        """The pool, the headline, drift and the noise warning the result's evidence carries
        (`ledger.follow` keeps the pool and the headline)."""
        s = self.state
        seen = Seen()
        ev = evidence.of(r)
        follow(s, r.status, r.samples, ev)
        drift = value_or(ev.drift, "") if isinstance(ev, Evidence) else ""
        if drift:
            s.drift, s.drift_at_experiment = drift, r.experiment
            seen.drift = drift
        note = evidence.hides_gains(ev)
        if note and not s.noise:
            s.noise = seen.noise = note
        return seen


def _count_arm(s: RunState, r: ResultRecord) -> None:
    """Count `r` into its arm's statistics, before `s.best` moves: a keep's gain is relative to
    the best it beat (positive: better, as `improvement_pct` signs it)."""
    arm = next((a for a in s.arm_stats if r.arm is not None and a.id == r.arm), None)
    if arm is None or r.status == "baseline":
        return
    arm.experiments += 1
    if r.status == "keep":
        arm.keeps += 1
        arm.improvement_pct += improvement_pct(s.best, r.metric, s.direction) or 0.0
    elif r.status == "crash":
        arm.errors += 1
    arm.cost_usd += r.cost_usd
    arm.tokens += r.tokens
    arm.agent_s += r.agent_s
