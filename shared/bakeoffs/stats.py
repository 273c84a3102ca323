"""The statistics behind a bakeoff's ranking: the Wilson interval of a success rate, the exact
sign test of a paired comparison, and how many more tasks would make a difference significant.
Pure and exact where it matters (small numbers of tasks); docs/bakeoffs.md explains the choices."""

from __future__ import annotations

import math
from collections.abc import Callable

ALPHA = 0.05
Z95 = 1.959963984540054
"""The normal quantile of a two-sided 95 % interval."""
MAX_DISCORDANT = 1_000_000
"""Beyond this many tasks that differ the "how many more" estimate gives up."""
_EXACT_UP_TO = 1000
"""Sign tests over at most this many tasks use exact integer arithmetic."""


def wilson(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `passed` out of `n`: honest at 0/n and n/n, unlike p ± z·se."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if passed <= 0 else max(0.0, centre - half)
    high = 1.0 if passed >= n else min(1.0, centre + half)
    return low, high


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the probability of a split at least this uneven if either side
    were equally likely to win each task (a binomial with p = 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    low = min(wins, losses)
    if n <= _EXACT_UP_TO:
        tail = sum(math.comb(n, i) for i in range(low + 1))
        return min(1.0, 2 * tail / 2**n)
    # Large n: sum the lower tail downwards from its biggest term in log space until it no
    # longer changes (the terms shrink geometrically away from the middle).
    log_term = (
        math.lgamma(n + 1) - math.lgamma(low + 1) - math.lgamma(n - low + 1) - n * math.log(2)
    )
    total, term, i = 0.0, 1.0, low
    while i >= 0 and term > 1e-17 * max(total, 1e-300):
        term = math.exp(log_term)
        total += term
        log_term += math.log(i / (n - i + 1)) if i > 0 else 0.0
        i -= 1
    return min(1.0, 2 * total)


def smallest(holds: Callable[[int], bool], fails: int, first: int, limit: int) -> int | None:
    """The smallest n > `fails` (where it does not hold) for which `holds(n)`, assuming it keeps
    holding beyond (a p-value that falls as counts grow at fixed shares, up to rounding wobbles):
    try `first`, double, then bisect. None when it does not hold by `limit`."""
    high = first
    while not holds(high):
        if high >= limit:
            return None
        high = min(high * 2, limit)
    low = max(fails, high // 2)
    while high - low > 1:
        mid = (low + high) // 2
        if holds(mid):
            high = mid
        else:
            low = mid
    return high


def more_tasks(tasks: int, wins: int, losses: int, alpha: float = ALPHA) -> int | None:
    """About how many more tasks would make a `wins`–`losses` split over `tasks` significant, if
    the share of tasks that differ and the winner's share of them held. None when they never
    differ or split exactly (no number of tasks would settle it) or it is already significant."""
    discordant = wins + losses
    if discordant == 0 or wins == losses or sign_test(wins, losses) < alpha:
        return None
    share = max(wins, losses) / discordant

    def significant(m: int) -> bool:
        k = round(share * m)
        return sign_test(k, m - k) < alpha

    high = smallest(significant, discordant, discordant + 1, MAX_DISCORDANT)
    if high is None:
        return None
    needed = math.ceil(high * tasks / discordant)
    return max(1, needed - tasks)


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.01 else f"{p:.3g}"
