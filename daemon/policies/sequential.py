"""The sequential policy: Wald's SPRT on log-metric samples against a pooled, interleaved incumbent.

Why: "median of N beats the incumbent by 2 %" keeps many non-improvements when the noise is a few
percent, and spends as many runs on obvious calls as on close ones. This policy measures until the
evidence is clear, compares against the incumbent's recent runs (a pool kept across decisions) plus
fresh incumbent runs interleaved with the candidate's (so slow drift cancels), and says why.

The test (docs/decisions.md explains it for users):
  y = ±log(metric), signed so that larger is better; the raw values when any metric is ≤ 0.
  σ = the pooled Shamos estimate: median |y_i − y_j| over pairs within one group (pool, fresh
      incumbent runs, candidate) / 0.954. Robust to outliers, defined from two runs per group.
  m_c, m_i = Huber M-estimates (k = 1.5σ) of the candidate and the incumbent (pool + fresh).
  d = m_c − m_i,  v = σ²(1/n_c + 1/n_i),  δ = max(min_effect, noise) on the y scale.
  LLR = δ/v · (d − δ/2): the log-likelihood ratio of "better by δ" against "no change" for the
  location-invariant statistic d. Keep when LLR ≥ log((1−β)/α) and the 95 % half-width 1.96√v ≤ δ;
  discard when LLR ≤ log(β/(1−α)), or at max_runs ("inconclusive") unless d ≥ δ/2 (a close call
  leaning towards a keep: measured on up to 3 × max_runs). σ is plugged in at each look.
  α shrinks by strict_beyond · min_effect / δ once δ exceeds strict_beyond × min_effect.
Early discards: with a pool of ≥ DRIFT_POOL runs a clear, not wild, loss ends after one candidate
  run; before a thin pool's refill is complete a clear loss ends too. A keep needs min_runs
  candidate runs and up to keep_reference incumbent runs (pool + fresh) behind it, as (σ/δ)² says.
Pool: the incumbent's recent unselected runs. A keep leaves it empty, because the kept candidate's
  runs won the selection and look better than the commit is; the next session measures the new
  incumbent first (up to 4 runs, fewer when the noise is well below δ).
Reported effect: the posterior mean under a Laplace(0, sd δ) prior (decide_stats.laplace_posterior),
  which undoes most of the optimism of stopping at a bound; the measured d is reported as well.
Drift: fresh incumbent runs against the pool, z = (m_fresh − m_pool)/(σ√(1/n_f + 1/n_p)); |z| > 3.5
  asks for incumbent runs, and confirmed on 3 of them, the candidate is compared with them alone.
Simplifications: with keep_simplifications, a change that removes more lines than it adds and is
  rejected as an improvement is kept if a second SPRT, "no worse" (θ = 0) against "worse by δ",
  accepts.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from daemon.policies.base import ChangeInfo, Decision, Measure, Side, gate_breaches, medians
from daemon.policies.stats import DRIFT_POOL, Estimate, estimate, secondary_changes
from shared.evidence import Bounds, Interval, RunCounts, SequentialEvidence

DRIFT_Z = 3.5
"""|z| of fresh incumbent runs against the pool that counts as drift (confirmed by 3 runs)."""
DRIFT_RUNS = 3
EARLY_WILD = 4.0
"""An early discard's one candidate run must be within this many standard errors of the pool: a
wilder one may be an outlier, which a second run outvotes."""


@dataclass
class SequentialPolicy:
    """Measure the candidate (and the incumbent, interleaved) until an SPRT is conclusive."""

    metric: str
    direction: str
    _: KW_ONLY
    min_effect: float = 0.02
    min_runs: int = 2
    max_runs: int = 12
    alpha: float = 0.05
    beta: float = 0.3
    gates: dict[str, tuple[float | None, float | None]] | None = None
    secondary: dict[str, str] | None = None
    keep_simplifications: bool = False
    pool_size: int = 24
    incumbent_every: int = 4
    """One fresh incumbent run per this many candidate runs (more while the pool is refilled)."""
    refill: int = 4
    """Fresh runs a thin pool (right after a keep: an empty one) gets before the usual ratio: this
    many when the noise is δ or more, fewer (down to 2) below, as (noise / δ)² says — a quiet
    metric needs fewer runs to be known."""
    close_runs: int | None = None
    """The cap for close calls (None: 3 × max_runs): a change still undecided at `max_runs` whose
    measured gain is at least `close_frac` × δ is measured on, up to this many candidate runs."""
    close_frac: float = 0.5
    noise_k: float = 1.0
    """δ = max(min_effect, noise_k · noise)."""
    keep_precision: float = 1.0
    """A keep also needs the 95 % interval's half-width ≤ this × δ: a lucky early crossing of the
    bound overstates the gain (the winner's curse), so a keep waits until the gain is measured."""
    keep_reference: int = 6
    """A keep needs at least this many incumbent runs (pool + fresh) behind it: right after a keep
    the pool is empty, and a few fresh runs misjudge both the noise and the incumbent's value, so
    a keep there would be twice as likely to be a false one; more are measured before it counts."""
    strict_beyond: float = 3.0
    """When the noise raises δ beyond this many times `min_effect`, α shrinks in proportion (at
    15 % noise and min_effect 2 %: α × 0.4). Gains as large as δ are then rarer than the gains
    asked for, so at the same α a keep is likelier luck — and a lucky keep of a harmful change is
    what leaves a run below its start. 0 turns it off."""
    early_discard: bool = True
    """A clear loss is discarded after one candidate run when the pool is full enough to know the
    noise (at least DRIFT_POOL runs) and the run is not wild (within EARLY_WILD standard errors):
    a keep always needs `min_runs`."""
    name: str = field(default="sequential", init=False)

    def baseline_runs(self) -> int:
        """Five runs: enough for a first noise estimate; later sessions add to the pool."""
        return 5

    def begin(
        self, incumbent: list[float], *, change: ChangeInfo | None = None
    ) -> SequentialSession:
        pool = [v for v in incumbent if math.isfinite(v)][-self.pool_size :]
        return SequentialSession(self, pool, change or ChangeInfo())

    @property
    def bounds(self) -> tuple[float, float]:
        """Wald's thresholds on the LLR: (discard at or below, keep at or above)."""
        return self.bounds_for(self.min_effect)

    def bounds_for(self, delta: float) -> tuple[float, float]:
        """The thresholds when the gain tested for is `delta` (relative): α shrinks in proportion
        once `delta` is more than `strict_beyond` × min_effect (see that field)."""
        alpha = self.alpha
        if self.strict_beyond > 0 and 0 < self.min_effect < delta < math.inf:
            alpha *= min(1.0, self.strict_beyond * self.min_effect / delta)
        return math.log(self.beta / (1 - alpha)), math.log((1 - self.beta) / alpha)


@dataclass
class SequentialSession:
    policy: SequentialPolicy
    pool: list[float]
    change: ChangeInfo
    cand: list[dict[str, float]] = field(default_factory=list)
    fresh: list[dict[str, float]] = field(default_factory=list)
    failure: str | None = None
    suspect_drift: bool = False
    refill_need: int = 2
    """Fresh incumbent runs a thin pool needs, from the last look's noise over δ."""

    def observe(self, side: Side, metrics: dict[str, float] | None) -> None:
        runs = self.cand if side == "candidate" else self.fresh
        if metrics is None or not math.isfinite(metrics.get(self.policy.metric, math.nan)):
            self.failure = f"{side} measurement {len(runs) + 1} failed"
            return
        runs.append(metrics)

    def next(self) -> Measure | Decision:
        p = self.policy
        if self.failure is not None:
            return self._decision(False, "measurement_failure", self.failure, None)
        n_c, n_f = len(self.cand), len(self.fresh)
        if n_f < self._incumbent_target(n_c):
            return Measure("incumbent")
        early = p.early_discard and 0 < n_c < p.min_runs and len(self.pool) >= DRIFT_POOL and n_f
        if (n_c >= p.min_runs and len(self.pool) + n_f >= 2) or early:
            est = self._estimate()
            ratio = est.sigma / est.delta_y if est.delta_y > 0 else 1.0
            self.refill_need = max(2, min(p.refill, math.ceil(p.refill * min(1.0, ratio) ** 2)))
            if n_f < self._incumbent_target(n_c):
                if p.early_discard and self._outcome(est, final=False) in ("gate", "reject"):
                    return self._verdict(est, final=False)  # a clear loss needs no refill
                return Measure("incumbent")  # a thin pool that the noise says needs more
            self.suspect_drift = est.drift_z is not None and abs(est.drift_z) > DRIFT_Z
            if self.suspect_drift and n_f < DRIFT_RUNS:
                return Measure("incumbent")  # an outlier or a shift: more incumbent runs tell
            if est.split_pair and n_c < p.max_runs:
                return Measure("candidate")  # a third run outvotes the outlier
            if n_c < p.min_runs:
                return self._early(est) or Measure("candidate")
            final = n_c >= self._cap(est)
            if len(self.pool) + n_f < self._keep_need(ratio) and self._outcome(
                est, final=final
            ) in (
                "accept",
                "simpler",
            ):
                return Measure("incumbent")  # a keep on a thin reference: know it better first
            decided = self._verdict(est, final=final)
            if decided is not None:
                return decided
        return Measure("candidate")

    # ------------------------------------------------------------------ internals

    def _values(self, runs: list[dict[str, float]]) -> list[float]:
        return [r[self.policy.metric] for r in runs]

    def _incumbent_target(self, n_c: int) -> int:
        """Interleave C I C C C C I … (one per `incumbent_every`); one to one when drift is
        suspected, and a thin pool (after a keep: empty) gets the fresh runs it lacks first."""
        p = self.policy
        if n_c == 0:
            return 0
        if self.suspect_drift:
            return n_c
        ratio = -(-n_c // max(1, p.incumbent_every))
        return max(ratio, self.refill_need - len(self.pool))

    def _keep_need(self, ratio: float) -> int:
        """Incumbent runs a keep needs behind it: `keep_reference` when the noise is δ or more,
        fewer below, as (noise / δ)² says — a quiet metric is known from fewer — but never under
        4: a thin pool that underestimates the noise would otherwise ask for too few."""
        p = self.policy
        scaled = math.ceil(p.keep_reference * min(1.0, ratio) ** 2)
        return max(min(4, p.keep_reference), min(p.keep_reference, scaled))

    def _cap(self, est: Estimate) -> int:
        """`max_runs`, or the close-call cap while the measured gain is still promising: the
        runs go where a decision is close, not to changes that are clearly no better."""
        p = self.policy
        close = p.close_runs if p.close_runs is not None else 3 * p.max_runs
        promising = est.d >= p.close_frac * est.delta_y and math.isfinite(est.se)
        return max(p.max_runs, close) if promising else p.max_runs

    def _estimate(self) -> Estimate:
        p = self.policy
        return estimate(
            self._values(self.cand),
            self.pool,
            self._values(self.fresh),
            higher=p.direction == "higher",
            min_effect=p.min_effect,
            noise_k=p.noise_k,
            drift_z=DRIFT_Z,
            drift_runs=DRIFT_RUNS,
        )

    def _outcome(self, est: Estimate, *, final: bool) -> str | None:
        """What the evidence says now: None to measure on."""
        p = self.policy
        lower, upper = self._bounds(est)
        if gate_breaches(p.gates or {}, medians(self.cand)):
            return "gate"
        if est.llr >= upper and (est.half_width <= p.keep_precision * est.delta_y or final):
            return "accept"
        simplification = (
            p.keep_simplifications and self.change.lines_removed > self.change.lines_added
        )
        if est.llr <= lower and not simplification:
            return "reject"
        if est.llr <= lower and est.llr_noninferior >= upper:
            return "simpler"
        if est.llr <= lower and est.llr_noninferior <= lower:
            return "reject"
        return "inconclusive" if final else None

    def _bounds(self, est: Estimate) -> tuple[float, float]:
        return self.policy.bounds_for(est.delta if est.relative else self.policy.min_effect)

    def _early(self, est: Estimate) -> Decision | None:
        """The one-run look: only a clear, not wild, loss (or a gate breach) ends here."""
        outcome = self._outcome(est, final=False)
        if outcome == "gate" or (outcome == "reject" and est.d >= -EARLY_WILD * est.se):
            return self._verdict(est, final=False)
        return None

    def _verdict(self, est: Estimate, *, final: bool) -> Decision | None:
        outcome = self._outcome(est, final=final)
        if outcome is None:
            return None
        effect, lo, hi = est.posterior()
        word = "better" if effect > 0 else "worse" if effect < 0 else "unchanged"
        size = "" if effect == 0 else f" by {est.fmt(abs(effect))}"
        detail = (
            f"{word}{size} (95 % interval {est.fmt(lo, sign=True)} to {est.fmt(hi, sign=True)})"
        )
        n = f"{len(self.cand)}+{len(self.fresh)} runs"
        d = est.fmt(est.delta)
        note = f" ({est.note})" if est.note else ""
        lines = f"−{self.change.lines_removed} +{self.change.lines_added} lines"
        keep, reason = {
            "gate": (False, f"{detail} after {n}, but " + "; ".join(self._breaches())),
            "accept": (True, f"{detail} after {n}; SPRT accepted improvement ≥ {d}"),
            "reject": (False, f"{detail} after {n}; SPRT rejected improvement ≥ {d}{note}"),
            "simpler": (
                True,
                f"kept as a simplification ({lines}): {detail} after {n}; not worse by {d}",
            ),
            "inconclusive": (
                False,
                f"inconclusive after {n}: {detail}; improvement ≥ {d} neither accepted nor rejected{note}",
            ),
        }[outcome]
        return self._decision(keep, "keep" if keep else "discard", reason, est, (effect, lo, hi))

    def _breaches(self) -> list[str]:
        return gate_breaches(self.policy.gates or {}, medians(self.cand)) if self.cand else []

    def _decision(
        self,
        keep: bool,
        status: Any,
        reason: str,
        est: Estimate | None,
        posterior: tuple[float, float, float] | None = None,
    ) -> Decision:
        p = self.policy
        cand, fresh = self._values(self.cand), self._values(self.fresh)
        drifted = est is not None and est.drifted
        if keep:
            pool = []  # the runs that won the selection are biased: the next session refills
        elif drifted:
            pool = fresh[-p.pool_size :]
        else:
            pool = (self.pool + fresh)[-p.pool_size :]
        tested: dict[str, Any] = {}
        if est is not None and posterior is not None:
            half = est.half_width
            tested = {
                "effect": posterior[0],
                "interval": Interval(*_finite([posterior[1], posterior[2]])),
                "measured_effect": est.to_rel(est.d),
                "measured_interval": Interval(
                    *_finite([est.to_rel(est.d - half), est.to_rel(est.d + half)])
                ),
                "llr": _finite([est.llr])[0],
                "bounds": Bounds(*self._bounds(est)),
                "delta": est.delta,
                "noise": _finite([est.noise])[0],
                "relative": est.relative,
                "scale": "log" if est.log_scale else "raw",
                "note": est.note,
                "noise_hides_gains": est.hides_gains,
            }
        if est is not None and drifted:
            tested["drift_shift"] = est.to_metric_change(est.drift_shift)
        evidence = SequentialEvidence(
            candidate_samples=cand,
            incumbent_samples=fresh if drifted else self.pool + fresh,
            fresh_incumbent_samples=fresh,
            runs=RunCounts(candidate=len(cand), incumbent=len(fresh)),
            gates=self._breaches(),
            secondary=secondary_changes(self.cand, self.fresh, p.secondary or {}),
            **tested,
        )
        return Decision(
            keep=keep,
            status=status,
            reason=reason,
            metric=statistics.median(cand) if cand else None,
            samples=cand,
            metrics=medians(self.cand),
            evidence=evidence,
            pool=pool,
            drift=est.drift_text(len(fresh), len(self.pool)) if est and drifted else None,
        )


def _finite(values: list[float]) -> list[float | None]:
    """JSON has no infinities: an exact (noise-free) or undefined value is written as null."""
    return [v if math.isfinite(v) else None for v in values]
