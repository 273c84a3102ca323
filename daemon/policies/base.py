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
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.evidence import Evidence

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
    evidence: Evidence
    """What the decision was based on, as the result line stores it (`shared.evidence`)."""
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
