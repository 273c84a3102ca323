"""Measurement noise from repeated samples: robust spread, CV, outliers, and what they allow.

Pure functions shared by `expd validate` (calibration) and the baseline: both answer "can this
measurement tell a gain of `min_effect` from noise within `max_runs` runs?" with the same
normal-approximation formula the sequential policy's sample sizes follow.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from shared.evidence import BaselineEvidence, NoiseStats
from shared.schema import ProgramConfig

MAD_TO_SIGMA = 1.4826
"""MAD × this estimates σ for normal data; unlike the standard deviation one outlier cannot move it."""
OUTLIER_MADS = 3.0
USABLE_CV = 0.15
"""Above this the measurement is unusable: no sane number of runs resolves a few-percent gain."""
DEFAULT_MAX_RUNS = 12


def noise_of(values: list[float]) -> NoiseStats:
    if not values:
        raise ValueError("no samples")
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    scale = abs(median) or 1.0
    outliers = [
        v for v in values if mad > 0 and abs(v - median) > OUTLIER_MADS * MAD_TO_SIGMA * mad
    ]
    return NoiseStats(
        runs=len(values),
        median=median,
        min=min(values),
        max=max(values),
        mad=mad,
        cv=stdev / (abs(mean) or 1.0),
        robust_cv=MAD_TO_SIGMA * mad / scale,
        outliers=outliers,
    )


def _z_sum(alpha: float, beta: float) -> float:
    normal = statistics.NormalDist()
    return normal.inv_cdf(1 - alpha) + normal.inv_cdf(1 - beta)


def detectable_effect(cv: float, runs: int, *, alpha: float = 0.05, beta: float = 0.2) -> float:
    """The smallest relative gain `runs` runs per side resolve (one-sided, power 1 − beta)."""
    return _z_sum(alpha, beta) * cv * math.sqrt(2 / max(runs, 1))


def runs_needed(cv: float, effect: float, *, alpha: float = 0.05, beta: float = 0.2) -> int:
    """Runs per side to resolve a relative gain of `effect` (at least 1)."""
    if effect <= 0:
        return 1_000_000
    return max(1, math.ceil(2 * (_z_sum(alpha, beta) * cv / effect) ** 2))


def hides_gains_note(
    cv: float, *, min_effect: float, max_runs: int, alpha: float, beta: float
) -> str | None:
    """A one-line warning when `max_runs` runs cannot resolve a gain of `min_effect`, with what
    would fix it: repeats inside measure.sh (k repeats divide the noise by √k), or a larger
    `min_effect`."""
    smallest = detectable_effect(cv, max_runs, alpha=alpha, beta=beta)
    if smallest <= min_effect:
        return None
    repeats = math.ceil((smallest / min_effect) ** 2)
    return (
        f"noise (CV {cv:.1%}) hides gains smaller than ~{smallest:.1%} within {max_runs} runs "
        f"(min_effect is {min_effect:.1%}): steady the measurement — repeat the benchmark "
        f"{repeats}× inside measure.sh and print the median, or make one run longer — or set "
        f"min_effect = {math.ceil(smallest * 200) / 200:g}"
    )


def start_note(config: ProgramConfig, calibration: dict[str, Any]) -> str | None:
    """What `expd start` says before anything runs: the warning a recent `expd validate`'s noise
    gives (None: no calibration, or the noise is fine)."""
    cal = calibration.get("noise") if calibration else None
    if not isinstance(cal, dict):
        return None
    cv = float(cal.get("robust_cv") or cal.get("cv") or 0.0)
    decide = config.decide
    runs = decide.repeats if decide.policy == "fixed" else decide.max_runs or DEFAULT_MAX_RUNS
    note = hides_gains_note(
        cv, min_effect=decide.min_effect, max_runs=runs, alpha=decide.alpha, beta=decide.beta
    )
    return f"{note} [calibration of {cal.get('runs', '?')} runs]" if note else None


def baseline_evidence(
    config: ProgramConfig, policy: str, calibration: dict[str, Any], values: list[float]
) -> BaselineEvidence:
    """The baseline's runs are a first calibration: their noise, and whether it hides gains.

    A recent `expd validate` (more runs, same program files) is the better estimate when the run
    has one.
    """
    decide = config.decide
    noise = noise_of(values)
    evidence = BaselineEvidence(policy=policy, pool=list(values), noise=noise, estimates=True)
    cv, source = noise.decision_cv, f"{len(values)} baseline runs"
    if calibration and isinstance(calibration.get("noise"), dict):
        evidence.calibration = calibration
        cal = calibration["noise"]
        cv = float(cal.get("robust_cv") or cal.get("cv") or 0.0)
        source = f"calibration of {cal.get('runs', '?')} runs"
    runs = decide.repeats if decide.policy == "fixed" else decide.max_runs or DEFAULT_MAX_RUNS
    note = hides_gains_note(
        cv, min_effect=decide.min_effect, max_runs=runs, alpha=decide.alpha, beta=decide.beta
    )
    if note:
        evidence.note = f"{note} [{source}]"
    return evidence
