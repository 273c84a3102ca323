"""The `fixed` policy: median of `repeats` candidate runs against the incumbent's median.

The incumbent's median comes from runs that did not select it: after a keep the pool is empty, and
the next session measures the incumbent `repeats` times too, interleaved with the candidate (C I C
I …), so a lucky median never becomes the reference every later change is compared with.
"""

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
    fresh: list[float] = field(default_factory=list)
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
                pool=self.incumbent,
            )
        remeasure = not self.incumbent and len(self.fresh) < self.policy.repeats
        if remeasure and len(self.fresh) < len(self.runs):
            return Measure("incumbent")
        if len(self.runs) < self.policy.repeats:
            return Measure("candidate")
        if remeasure:
            return Measure("incumbent")
        return self._decide()

    def observe(self, side: Side, metrics: dict[str, float] | None) -> None:
        value = math.nan if metrics is None else metrics.get(self.policy.metric, math.nan)
        if side == "incumbent":
            if not math.isfinite(value):
                self.failure = f"incumbent measurement {len(self.fresh) + 1} failed"
            else:
                self.fresh.append(value)
            return
        if metrics is None or not math.isfinite(value):
            self.failure = f"measurement {len(self.runs) + 1}/{self.policy.repeats} failed"
            return
        self.runs.append(metrics)

    def _values(self) -> list[float]:
        return [r[self.policy.metric] for r in self.runs]

    def _decide(self) -> Decision:
        p = self.policy
        values = self._values()
        reference = self.incumbent or self.fresh
        cand = statistics.median(values)
        inc = statistics.median(reference)
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
            incumbent_samples=list(reference),
            effect=effect,
            threshold=p.min_effect,
            relative=inc != 0,
            runs=len(values),
            gates=breaches,
            **({"fresh_incumbent_samples": list(self.fresh)} if self.fresh else {}),
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
            pool=[] if keep else list(reference),
        )
