"""Decision policies: pure objects with no I/O, so a simulation can drive them.

A policy opens a *session* per candidate. The caller loops::

    session = policy.begin(pool, change=ChangeInfo(lines_added, lines_removed))
    while isinstance(step := session.next(), Measure):
        session.observe(step.side, run_measurement(step.side))   # a dict of metrics, or None
    decision = step

`Measure.side` is "candidate" (the new commit) or "incumbent" (the current best commit). A failed
measurement is observed as None and ends the session as a measurement failure. `pool` is the
incumbent's recent primary-metric samples, kept by the caller across decisions: every `Decision`
says what the pool is afterwards (`Decision.pool`), so the policy alone decides how it is kept,
extended with interleaved incumbent runs, or refreshed after drift.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Side = Literal["candidate", "incumbent"]


@dataclass(frozen=True)
class Measure:
    side: Side


@dataclass(frozen=True)
class ChangeInfo:
    """What the candidate changed, for rules that look at the diff (keep simplifications)."""

    lines_added: int = 0
    lines_removed: int = 0


@dataclass(frozen=True)
class Decision:
    keep: bool
    status: Literal["keep", "discard", "measurement_failure"]
    reason: str
    metric: float | None
    samples: list[float]
    """The candidate's primary-metric samples."""
    metrics: dict[str, float]
    evidence: dict[str, Any] = field(default_factory=dict)
    pool: list[float] | None = None
    """The incumbent pool for the next decision (None: unchanged, or the candidate's samples
    after a keep)."""
    drift: str | None = None
    """Set when the incumbent's interleaved runs shifted significantly: what was seen."""


class Session(Protocol):
    def next(self) -> Measure | Decision: ...

    def observe(self, side: Side, metrics: dict[str, float] | None) -> None: ...


class Policy(Protocol):
    name: str

    def baseline_runs(self) -> int:
        """How many runs measure the baseline."""
        ...

    def begin(self, incumbent: list[float], *, change: ChangeInfo | None = None) -> Session: ...


def relative_effect(candidate: float, incumbent: float, direction: str) -> float:
    """Improvement as a fraction of |incumbent| (positive = better); absolute when it is zero."""
    diff = incumbent - candidate if direction == "lower" else candidate - incumbent
    return diff / abs(incumbent) if incumbent != 0 else diff


def gate_breaches(
    gates: dict[str, tuple[float | None, float | None]], values: dict[str, float]
) -> list[str]:
    out = []
    for name, (low, high) in gates.items():
        value = values.get(name)
        if value is None or not math.isfinite(value):
            out.append(f"gate {name}: not reported")
        elif low is not None and value < low:
            out.append(f"gate {name}: {value:g} < min {low:g}")
        elif high is not None and value > high:
            out.append(f"gate {name}: {value:g} > max {high:g}")
    return out


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    names = set().union(*samples) if samples else set()
    out = {}
    for name in sorted(names):
        values = [s[name] for s in samples if name in s and math.isfinite(s[name])]
        if values:
            out[name] = statistics.median(values)
    return out


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
                evidence={"policy": self.policy.name, "runs": len(self.runs)},
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
        evidence = {
            "policy": p.name,
            "candidate_median": cand,
            "incumbent_median": inc,
            "candidate_samples": values,
            "incumbent_samples": list(self.incumbent),
            "effect": effect,
            "threshold": p.min_effect,
            "relative": inc != 0,
            "runs": len(values),
            "gates": breaches,
        }
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


def make_policy(config: Any) -> Policy:
    """The policy a program asks for (config is a `ProgramConfig`)."""
    gates = {name: (g.min, g.max) for name, g in config.gates.items()}
    decide = config.decide
    if getattr(decide, "policy", "fixed") == "sequential":
        from daemon.policies.sequential import SequentialPolicy  # imports this module

        max_runs = getattr(decide, "max_runs", None)
        return SequentialPolicy(
            config.metric,
            config.direction,
            min_effect=decide.min_effect,
            min_runs=getattr(decide, "min_runs", 2),
            max_runs=12 if max_runs is None else max_runs,
            alpha=getattr(decide, "alpha", 0.05),
            beta=getattr(decide, "beta", 0.3),
            gates=gates,
            secondary=dict(getattr(config, "secondary", {}) or {}),
            keep_simplifications=getattr(config.loop, "keep_simplifications", False),
        )
    return FixedRepeatsPolicy(
        metric=config.metric,
        direction=config.direction,
        min_effect=decide.min_effect,
        repeats=decide.repeats,
        gates=gates,
    )
