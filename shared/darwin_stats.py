"""The exact statistics behind `expd darwin`: the Garwood interval of a Poisson rate, the
conditional binomial test of two rates, and how many more experiments would settle a lead.
Exact where counts are small (keeps are rare), in log space so large counts do not overflow."""

from __future__ import annotations

import math
from collections.abc import Callable

from shared.bakeoffs.stats import ALPHA, smallest

MAX_EXPERIMENTS = 10_000_000
"""Beyond this many experiments the "how many more" estimate gives up."""


def _log_sum(logs: list[float]) -> float:
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    logs = [
        head - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        for i in range(k, n + 1)
    ]
    return min(1.0, math.exp(_log_sum(logs)))


def poisson_cdf(k: int, lam: float) -> float:
    """P(X ≤ k) for X ~ Poisson(lam)."""
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    log_lam = math.log(lam)
    logs = [-lam + i * log_lam - math.lgamma(i + 1) for i in range(k + 1)]
    return min(1.0, math.exp(_log_sum(logs)))


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of a monotone `f` on [lo, hi] by bisection (f(lo) and f(hi) differ in sign)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (f(lo) > 0):
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def poisson_interval(k: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The exact (Garwood) interval of a Poisson mean from one count `k`."""
    hi = k + 10 * math.sqrt(k + 1) + 10
    upper = _solve(lambda lam: poisson_cdf(k, lam) - alpha / 2, 0.0, hi)
    if k == 0:
        return 0.0, upper
    lower = _solve(lambda lam: (1 - poisson_cdf(k - 1, lam)) - alpha / 2, 0.0, hi)
    return lower, upper


def rate_p_value(k_a: int, k_b: int, e_a: float, e_b: float) -> float:
    """One-sided exact test that arm a's keep rate exceeds b's, given the keeps both made."""
    if e_a <= 0 or e_b <= 0:
        return 1.0
    return binom_sf(k_a, k_a + k_b, e_a / (e_a + e_b))


def more_experiments(
    k_a: int, k_b: int, e_a: float, e_b: float, n: int, alpha: float = ALPHA
) -> int | None:
    """About how many more experiments (beyond the `n` both arms ran) would make a's lead
    significant if the keeps and the exposures grew in proportion; None when a does not lead,
    no number would settle it, or it already is significant."""
    if k_a == 0 or n <= 0 or e_a <= 0 or e_b <= 0 or k_a * e_b <= k_b * e_a:
        return None
    if rate_p_value(k_a, k_b, e_a, e_b) < alpha:
        return None

    def significant(total: int) -> bool:
        scale = total / n
        return rate_p_value(round(k_a * scale), round(k_b * scale), e_a, e_b) < alpha

    high = smallest(significant, n, 2 * n, MAX_EXPERIMENTS)
    return None if high is None else high - n
