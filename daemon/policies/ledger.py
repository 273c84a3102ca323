"""The incumbent's books: the pool a decision leaves, and the honest headline.

Why: the number read in the morning, "baseline → best, N % better", must not be a lucky sample.
The runs that made a change the incumbent were selected because they looked good, so they neither
stay its pool (the next session re-measures it) nor count towards its value. `best` is estimated
from the incumbent's other runs (measured after its keep, interleaved in later decisions) and
`baseline` from every run of the base commit, both with a 95 % interval; until a new incumbent has
runs of its own, the headline is the keep's shrunk estimate (`evidence.effect`) on top of the
previous one. The first keep was decided against the base commit's runs, so it takes their share
of its luck back from them (`_deselect`). Pure functions on `RunState`: the daemon's recorder and the simulation in
`benchmarks/decisions.py` keep the books with the same code.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from daemon.policies.base import Decision
from daemon.policies.stats import Z95, huber, noise_scale
from shared.evidence import (
    AnyEvidence,
    BaselineEvidence,
    FixedEvidence,
    SequentialEvidence,
    value_or,
)
from shared.schema import RunState

KEEP_SAMPLES = 100
"""At most this many runs per side are kept in the state (the most recent): beyond it the interval
hardly narrows, and state.json is rewritten on every change."""


def pool_left(decision: Decision, pool: list[float]) -> list[float]:
    """The incumbent pool after `decision` (the policy's word; a keep without one leaves none)."""
    if decision.pool is not None:
        return list(decision.pool)
    return [] if decision.status == "keep" else list(pool)


@dataclass(frozen=True)
class Headline:
    """Both sides' estimates and the improvement (a fraction, positive = better)."""

    baseline: float
    best: float
    best_ci: tuple[float, float] | None
    improvement: float | None
    improvement_ci: tuple[float, float] | None


def estimate(base: list[float], inc: list[float], direction: str) -> Headline:
    """Robust locations of both sides and their difference, with 95 % intervals.

    Log scale when every value is positive (the improvement is then a ratio), raw otherwise; σ is
    pooled from both sides' run-to-run differences (stats.noise_scale)."""
    log = all(v > 0 for v in (*base, *inc))
    sign = 1.0 if direction == "higher" else -1.0

    def y(v: float) -> float:
        return sign * (math.log(v) if log else v)

    def back(t: float) -> float:
        return math.exp(sign * t) if log else sign * t

    yb, yi = [y(v) for v in base], [y(v) for v in inc]
    sigma = noise_scale([yb, yi])
    spread = sigma if sigma < math.inf else 0.0
    mb, mi = huber(yb, spread), huber(yi, spread)
    d = mi - mb
    finite = sigma < math.inf
    half_i = Z95 * sigma / math.sqrt(len(yi)) if finite else math.inf
    half_d = Z95 * sigma * math.sqrt(1 / len(yi) + 1 / len(yb)) if finite else math.inf

    def rel(t: float) -> float | None:
        if log:
            return math.expm1(t) if sign > 0 else -math.expm1(-t)
        return t / abs(mb) if mb != 0 else None

    ends = sorted((back(mi - half_i), back(mi + half_i)))
    lo, hi = (rel(d - half_d), rel(d + half_d)) if finite else (None, None)
    return Headline(
        baseline=back(mb),
        best=back(mi),
        best_ci=(ends[0], ends[1]) if finite else None,
        improvement=rel(d),
        improvement_ci=(lo, hi) if lo is not None and hi is not None else None,
    )


def follow(state: RunState, status: str, samples: list[float], ev: AnyEvidence | None) -> None:
    """Count one recorded result into the pool and the headline (`state` is changed; `keeps`
    already counts it). A result without a recorded pool (an older one) leaves the pool alone,
    except that a baseline or a keep makes its samples the pool, as it used to; a run whose
    baseline predates the estimates keeps `baseline` and `best` as the loop set them."""
    s = state
    pool = value_or(ev.pool, None) if ev is not None else None
    if pool is not None:
        s.pool = list(pool)
    elif status in ("baseline", "keep"):
        s.pool = list(samples)
    if status == "baseline":
        s.estimates = isinstance(ev, BaselineEvidence) and ev.estimates is True
        s.baseline_samples = list(samples)[-KEEP_SAMPLES:]
        s.incumbent_samples = list(samples)[-KEEP_SAMPLES:]
        _measured(s)
    elif not s.estimates:
        return
    elif status == "keep":
        if s.keeps == 1 and isinstance(ev, SequentialEvidence):
            _deselect(s, ev)
        s.incumbent_samples = []
        _carry(s, ev, samples)
    elif isinstance(ev, (SequentialEvidence, FixedEvidence)):
        fresh = list(value_or(ev.fresh_incumbent_samples, []))
        if fresh and value_or(ev.drift, ""):
            _drifted(s, ev)
            s.incumbent_samples = []
        if fresh:
            s.incumbent_samples = (s.incumbent_samples + fresh)[-KEEP_SAMPLES:]
            if s.keeps == 0:
                s.baseline_samples = list(s.incumbent_samples)
            _measured(s)


def _drifted(s: RunState, ev: SequentialEvidence | FixedEvidence) -> None:
    """The machine moved (the policy confirmed it on fresh incumbent runs): the base commit
    would measure differently now too, so its runs move by the same shift."""
    shift = value_or(getattr(ev, "drift_shift", None), None)
    if shift is None:
        return
    if value_or(getattr(ev, "scale", "log"), "log") == "log":
        s.baseline_samples = [v * (1 + shift) for v in s.baseline_samples]
    else:
        s.baseline_samples = [v + shift for v in s.baseline_samples]


def _deselect(s: RunState, ev: SequentialEvidence) -> None:
    """The first keep was decided against the base commit's runs, so they are selected: a keep is
    likelier when they happened to look bad. Given the keep's measured difference d and its shrunk
    estimate θ̂ (the evidence's `measured_effect` and `effect`), the excess d − θ̂ is the two sides'
    luck; the incumbent side's share of it, in proportion to its variance (n_c / (n_c + n_i)), is
    how much too bad its runs looked. The base commit's runs move back by that much (diluted by
    base runs the decision did not use), so the headline does not count the luck as a gain.
    Log-scale decisions only (a raw-scale one has no common unit to carry it in)."""
    measured, shrunk = value_or(ev.measured_effect, None), value_or(ev.effect, None)
    cand, inc = value_or(ev.candidate_samples, []), value_or(ev.incumbent_samples, [])
    if (
        measured is None
        or shrunk is None
        or value_or(ev.scale, "log") != "log"
        or not cand
        or not inc
        or not s.baseline_samples
        or max(measured, shrunk) >= 1
    ):
        return
    higher = s.direction == "higher"

    def y(rel: float) -> float:  # a relative effect back on the log scale (positive = better)
        return math.log1p(rel) if higher else -math.log1p(-rel)

    excess = y(measured) - y(shrunk)
    if excess <= 0:
        return
    share = len(cand) / (len(cand) + len(inc)) * min(1.0, len(inc) / len(s.baseline_samples))
    factor = math.exp(share * excess if higher else -share * excess)
    s.baseline_samples = [v * factor for v in s.baseline_samples]
    if s.baseline is not None:  # a location on the log scale moves with its runs
        s.baseline *= factor


def _measured(s: RunState) -> None:
    """The headline from the runs: both sides' estimates; no change while the base is kept."""
    if not s.estimates or not s.baseline_samples or not s.incumbent_samples:
        return
    h = estimate(s.baseline_samples, s.incumbent_samples, s.direction)
    s.baseline = h.baseline
    if s.keeps == 0:  # the incumbent is the base commit: the same runs, no improvement
        s.best, s.best_ci = h.baseline, _pair(h.best_ci)
        s.improvement_pct, s.improvement_ci = 0.0, [0.0, 0.0]
    else:
        s.best, s.best_ci = h.best, _pair(h.best_ci)
        s.improvement_pct = None if h.improvement is None else h.improvement * 100
        s.improvement_ci = _pair(h.improvement_ci, 100)
    s.best_runs = len(s.incumbent_samples)


def _carry(s: RunState, ev: AnyEvidence | None, samples: list[float]) -> None:
    """A new incumbent without runs of its own: the previous estimate times the keep's effect
    (the shrunk one the evidence reports), its interval widened by the keep's."""
    s.best_runs = 0
    effect = value_or(ev.effect, None) if ev is not None else None
    if s.baseline is None or effect is None or s.improvement_pct is None:
        s.best, s.best_ci = (statistics.median(samples) if samples else s.best), None
        s.improvement_pct = s.improvement_ci = None  # the status computes it from the values
        return
    before = s.improvement_pct / 100
    after = (
        1 - (1 - before) * (1 - effect)
        if s.direction == "lower"
        else (1 + before) * (1 + effect) - 1
    )
    s.improvement_pct = after * 100
    sign = -1.0 if s.direction == "lower" else 1.0  # improvement_pct is relative to |baseline|
    s.best = s.baseline + sign * after * abs(s.baseline)
    s.best_ci = None
    interval = value_or(getattr(ev, "interval", None), None)
    if (
        interval is not None
        and interval.low is not None
        and interval.high is not None
        and s.improvement_ci
    ):
        lo_prev, hi_prev = (v / 100 for v in s.improvement_ci)
        down = math.hypot(before - lo_prev, effect - interval.low)
        up = math.hypot(hi_prev - before, interval.high - effect)
        s.improvement_ci = [(after - down) * 100, (after + up) * 100]
    else:
        s.improvement_ci = None


def _pair(pair: tuple[float, float] | None, scale: float = 1.0) -> list[float] | None:
    return None if pair is None else [pair[0] * scale, pair[1] * scale]
