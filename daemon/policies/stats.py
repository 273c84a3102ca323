"""The statistics behind the sequential policy (daemon/decide_sequential.py), kept apart to test.

Everything works on y, the metric signed so that larger is better: ±log(metric) when every value is
positive (effects are then ratios, and log-normal noise becomes additive), the raw value otherwise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from itertools import combinations

from daemon.policies.base import medians, relative_effect
from shared.evidence import SecondaryChange

NORMAL = statistics.NormalDist()
SHAMOS = 2**0.5 * NORMAL.inv_cdf(0.75)
"""median |X − Y| / σ for independent normal X, Y (≈ 0.954)."""
HUBER_K = 1.5
Z95 = NORMAL.inv_cdf(0.975)
DRIFT_POOL = 6
"""A smaller pool is mostly the last keep's few (luckily good) runs: no baseline for drift."""


def noise_scale(groups: list[list[float]]) -> float:
    """Pooled Shamos estimate of σ from the pairs within each group (location shifts between
    groups do not count as noise); math.inf when no group has two values."""
    diffs = [abs(a - b) for g in groups for a, b in combinations(g, 2)]
    if not diffs:
        return math.inf
    s = statistics.median(diffs) / SHAMOS
    if s == 0 and any(diffs):  # a quantized metric: most pairs equal, some not
        s = statistics.fmean(diffs) * math.sqrt(math.pi) / 2
    return s


def huber(ys: list[float], sigma: float, k: float = HUBER_K) -> float:
    """Huber M-estimate of location with a known scale: the mean, with far values pulled in."""
    m = statistics.median(ys)
    if len(ys) < 3 or not 0 < sigma < math.inf:
        return m
    c = k * sigma
    for _ in range(50):
        step = sum(max(-c, min(c, y - m)) for y in ys) / len(ys)
        m += step
        if abs(step) < 1e-9 * c:
            break
    return m


def laplace_posterior(d: float, se: float, sd: float) -> tuple[float, float, float]:
    """Mean and 95 % interval of θ given d ~ N(θ, se²) and a Laplace prior on θ (centre 0,
    standard deviation `sd`). Why: stopping when the evidence crosses a bound picks lucky
    estimates (the winner's curse). A prior peaked at 0 pulls small, uncertain gains toward 0 by
    up to se²·√2/sd and leaves large precise ones nearly alone, unlike a normal prior."""
    if not 0 < se < math.inf or sd <= 0:
        half = 0.0 if se == 0 else math.inf
        return d, d - half, d + half
    lam = math.sqrt(2) / sd
    mu_pos, mu_neg = d - se * se * lam, d + se * se * lam
    # Unnormalized masses of the θ > 0 and θ < 0 parts, in logs: each is a truncated normal.
    log_pos = -lam * d + _log_cdf(mu_pos / se)
    log_neg = lam * d + _log_cdf(-mu_neg / se)
    p_pos = 1 / (1 + math.exp(min(700.0, log_neg - log_pos)))

    def cdf(t: float) -> float:
        neg = (1 - p_pos) * _ratio(NORMAL.cdf((min(t, 0) - mu_neg) / se), -mu_neg / se)
        if t <= 0:
            return neg
        inside = NORMAL.cdf((t - mu_pos) / se) - NORMAL.cdf(-mu_pos / se)
        return (1 - p_pos) + p_pos * _ratio(inside, mu_pos / se)

    def quantile(q: float) -> float:
        lo, hi = min(mu_neg, 0.0) - 10 * se, max(mu_pos, 0.0) + 10 * se
        for _ in range(40):  # to 20 se / 2⁴⁰
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
        return (lo + hi) / 2

    mean = p_pos * mu_pos + (1 - p_pos) * mu_neg  # the truncation terms cancel
    return mean, quantile(0.025), quantile(0.975)


def _log_cdf(z: float) -> float:
    p = NORMAL.cdf(z)
    if p > 0:
        return math.log(p)
    return -0.5 * z * z - math.log(-z) - 0.5 * math.log(2 * math.pi)  # Mills ratio tail


def _ratio(num: float, z: float) -> float:
    den = NORMAL.cdf(z)
    return min(1.0, num / den) if den > 0 else 0.0


@dataclass(frozen=True)
class Estimate:
    """One look at the data: the test statistic on the y scale and how to report it."""

    log_scale: bool
    higher: bool
    scale: float
    """|incumbent location| in raw mode (1 when it is 0, or in log mode): effects are d / scale."""
    d: float
    se: float
    """Standard error of d: σ·√(1/n_c + 1/n_i); 0 when every run agrees, inf when no pair."""
    sigma: float
    delta_y: float
    noise_hides: bool
    """δ comes from the noise, not from min_effect: smaller gains cannot be told from noise."""
    llr: float
    llr_noninferior: float
    """LLR of "no worse" (θ = 0) against "worse by δ" (θ = −δ): the simplification rule's test."""
    drift_z: float | None
    drift_shift: float
    drifted: bool
    split_pair: bool
    """Two candidate runs more than 3 sd apart: one is an outlier, and two runs can't tell which."""

    raw_zero: bool = False
    """Raw mode with the incumbent at 0: effects are absolute differences."""

    @property
    def relative(self) -> bool:
        return not self.raw_zero

    def to_rel(self, y: float) -> float:
        """A difference on the y scale as a relative effect (positive = better)."""
        if not self.log_scale:
            return y / self.scale
        return math.expm1(y) if self.higher else -math.expm1(-y)

    def to_metric_change(self, y: float) -> float:
        """A shift on the y scale as a change of the metric itself: a fraction on the log scale
        (not signed by direction: +0.1 is 10 % larger), an absolute difference on the raw one."""
        sign = 1.0 if self.higher else -1.0
        return math.expm1(sign * y) if self.log_scale else sign * y

    def fmt(self, x: float, *, sign: bool = False) -> str:
        if not self.relative:
            return f"{x:+.4g}" if sign else f"{x:.4g}"
        return f"{x * 100:+.1f} %" if sign else f"{x * 100:.1f} %"

    @property
    def half_width(self) -> float:
        return Z95 * self.se

    def posterior(self) -> tuple[float, float, float]:
        """Effect, 95 % interval (relative): the Laplace posterior with sd δ (laplace_posterior)."""
        mean, lo, hi = laplace_posterior(self.d, self.se, self.delta_y)
        return self.to_rel(mean), self.to_rel(lo), self.to_rel(hi)

    @property
    def noise(self) -> float:
        return self.to_rel(self.sigma) if self.sigma < math.inf else math.inf

    @property
    def delta(self) -> float:
        return self.to_rel(self.delta_y)

    @property
    def hides_gains(self) -> bool:
        """The measured noise (not min_effect) set δ: smaller gains cannot be told from noise."""
        return self.noise_hides and 0 < self.sigma < math.inf

    @property
    def note(self) -> str:
        if self.sigma == 0:
            return "every run measured the same: no noise"
        if not self.hides_gains:
            return ""
        return f"noise {self.fmt(self.noise)} hides gains below {self.fmt(self.delta)}"

    def drift_text(self, fresh: int, pooled: int) -> str:
        shift = self.to_rel(self.drift_shift)
        return (
            f"the incumbent measured {self.fmt(abs(shift))} {'better' if shift > 0 else 'worse'} "
            f"than its pool (z = {self.drift_z or 0:.1f}, {fresh} fresh vs {pooled} pooled runs);"
            " pool refreshed"
        )


def estimate(
    cand: list[float],
    pool: list[float],
    fresh: list[float],
    *,
    higher: bool,
    min_effect: float,
    noise_k: float,
    drift_z: float,
    drift_runs: int,
) -> Estimate:
    """The test statistic and everything reported with it (module docstring of decide_sequential)."""
    log_scale = all(v > 0 for v in (*cand, *pool, *fresh))
    sign = 1.0 if higher else -1.0
    if log_scale:
        yc, yp, yf = ([sign * math.log(v) for v in g] for g in (cand, pool, fresh))
    else:
        yc, yp, yf = ([sign * v for v in g] for g in (cand, pool, fresh))
    sigma = noise_scale([yc, yp, yf])
    z, shift = None, 0.0
    if yf and len(yp) >= DRIFT_POOL and 0 < sigma < math.inf:
        shift = huber(yf, sigma) - huber(yp, sigma)
        z = shift / (sigma * math.sqrt(1 / len(yf) + 1 / len(yp)))
    drifted = z is not None and len(yf) >= drift_runs and abs(z) > drift_z
    yi = yf if drifted else yp + yf
    mi = huber(yi, sigma)
    d = huber(yc, sigma) - mi
    scale = 1.0 if log_scale or mi == 0 else abs(mi)
    if log_scale:
        min_y = math.log1p(min_effect) if higher else -math.log1p(-min(min_effect, 0.999))
    else:
        min_y = min_effect * scale
    delta_y = max(min_y, noise_k * sigma)
    se = sigma * math.sqrt(1 / len(yc) + 1 / len(yi))
    if sigma == 0:  # every run agrees: the difference is exact
        llr = math.inf if d >= delta_y and d > 0 else -math.inf
        llr_ni = math.inf if d >= 0 or d > -delta_y else -math.inf
    elif sigma == math.inf:
        llr = llr_ni = 0.0
    else:
        llr = delta_y / se**2 * (d - delta_y / 2)
        llr_ni = delta_y / se**2 * (d + delta_y / 2)
    return Estimate(
        log_scale=log_scale,
        higher=higher,
        scale=scale,
        raw_zero=not log_scale and mi == 0,
        d=d,
        se=se,
        sigma=sigma,
        delta_y=delta_y,
        noise_hides=noise_k * sigma > min_y,
        llr=llr,
        llr_noninferior=llr_ni,
        drift_z=z,
        drift_shift=shift,
        drifted=drifted,
        split_pair=len(yc) == 2 and abs(yc[0] - yc[1]) > 3 * math.sqrt(2) * sigma,
    )


def secondary_changes(
    cand: list[dict[str, float]], fresh: list[dict[str, float]], secondary: dict[str, str]
) -> dict[str, SecondaryChange]:
    """Medians of each secondary metric on both sides and the change (positive = better)."""
    mc, mi = medians(cand), medians(fresh)
    out: dict[str, SecondaryChange] = {}
    for name, direction in secondary.items():
        c, i = mc.get(name), mi.get(name)
        change = relative_effect(c, i, direction) if c is not None and i is not None else None
        out[name] = SecondaryChange(direction=direction, candidate=c, incumbent=i, change=change)
    return out
