"""The `fixed` policy: median of `repeats` candidate runs against the incumbent's median."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from daemon.policies.base import (
    ChangeInfo,
    Decision,
    Measure,
    Side,
    gate_breaches,
    medians,
    relative_effect,
)
from shared.evidence import FixedEvidence


@dataclass
class FixedRepeatsPolicy:
    """Median of `repeats` candidate runs against the incumbent's median, relative threshold."""

    metric: str
    direction: str
    min_effect: float = 0.02
    repeats: int = 3
    gates: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    name: str = "fixed"

    def baseline_runs(self) -> int:
        return self.repeats

    def begin(self, incumbent: list[float], *, change: ChangeInfo | None = None) -> FixedSession:
        return FixedSession(self, list(incumbent))


@dataclass
class FixedSession:
    policy: FixedRepeatsPolicy
    incumbent: list[float]
    runs: list[dict[str, float]] = field(default_factory=list)
    failure: str | None = None

    def next(self) -> Measure | Decision:
        if self.failure is not None:
            return Decision(
                keep=False,
                status="measurement_failure",
                reason=self.failure,
                metric=None,
                samples=self._values(),
                metrics=medians(self.runs),
                evidence=FixedEvidence(runs=len(self.runs)),
            )
        if len(self.runs) < self.policy.repeats:
            return Measure("candidate")
        return self._decide()

    def observe(self, side: Side, metrics: dict[str, float] | None) -> None:
        if side != "candidate":
            raise ValueError("the fixed policy only measures the candidate")
        if metrics is None or not math.isfinite(metrics.get(self.policy.metric, math.nan)):
            self.failure = f"measurement {len(self.runs) + 1}/{self.policy.repeats} failed"
            return
        self.runs.append(metrics)

    def _values(self) -> list[float]:
        return [r[self.policy.metric] for r in self.runs]

    def _decide(self) -> Decision:
        p = self.policy
        values = self._values()
        cand = statistics.median(values)
        inc = statistics.median(self.incumbent)
        effect = relative_effect(cand, inc, p.direction)
        all_medians = medians(self.runs)
        breaches = gate_breaches(p.gates, all_medians)
        unit = "" if inc == 0 else "%"
        shown = effect if inc == 0 else effect * 100
        threshold = p.min_effect if inc == 0 else p.min_effect * 100
        evidence = FixedEvidence(
            candidate_median=cand,
            incumbent_median=inc,
            candidate_samples=values,
            incumbent_samples=list(self.incumbent),
            effect=effect,
            threshold=p.min_effect,
            relative=inc != 0,
            runs=len(values),
            gates=breaches,
        )
        word = "better" if effect > 0 else "worse" if effect < 0 else "unchanged"
        change = f"median {cand:.6g} vs {inc:.6g}: {abs(shown):.2f}{unit} {word}"
        if breaches:
            keep, reason = False, f"{change}, but " + "; ".join(breaches)
        elif effect > p.min_effect:
            keep, reason = True, f"{change} (> {threshold:g}{unit})"
        else:
            keep, reason = False, f"{change} (needs > {threshold:g}{unit} better)"
        return Decision(
            keep=keep,
            status="keep" if keep else "discard",
            reason=reason,
            metric=cand,
            samples=values,
            metrics=all_medians,
            evidence=evidence,
        )
