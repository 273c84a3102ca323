"""The evidence for a decision: what a result line stores under `evidence`.

A decision's evidence is its policy's struct, tagged by `policy` (`SequentialEvidence` for
"sequential", `FixedEvidence` for "fixed"). The baseline's evidence is `BaselineEvidence`: its
`policy` names the run's policy, so the record's status (`baseline`), not the tag, selects it.

Why `ResultRecord.evidence` stays the stored mapping and is typed here, by `of`/`load`: msgspec's
tagged unions reject an object without the tag (`{}`, what every crash records) or with an unknown
one (a newer expd's policy), and such lines must still load. So a record is decoded leniently and
its evidence is typed in this one place, where anything that is not evidence of a known shape is
None (the record itself still loads).

Every field defaults to UNSET, meaning absent from the line: a struct holds exactly the keys it
was read from, so `dump(load(...))` gives back the same mapping (key order included) and the
writers' output is byte for byte what it was when the evidence was a plain dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

if TYPE_CHECKING:
    from shared.schema import ResultRecord

T = TypeVar("T")
D = TypeVar("D")


def value_or(value: T | UnsetType, default: D) -> T | D:
    """`value`, or `default` when the line did not have it."""
    return default if isinstance(value, UnsetType) else value


# --------------------------------------------------------------------------- parts


class NoiseStats(msgspec.Struct, kw_only=True):
    """The spread of repeated runs of one commit (the baseline's, or `expd validate`'s)."""

    runs: int = 0
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0
    mad: float = 0.0
    cv: float = 0.0
    """Plain: standard deviation / |mean|."""
    robust_cv: float = 0.0
    """1.4826 × MAD / |median|: what decisions use (outliers do not inflate it)."""
    outliers: list[float] = []

    @property
    def decision_cv(self) -> float:
        """The CV to plan with: the robust one, unless the MAD is 0 while runs still differ."""
        return self.robust_cv if self.robust_cv > 0 else self.cv


class Interval(msgspec.Struct, array_like=True):
    """`[low, high]` of a relative effect; null where it is not finite (noise-free runs)."""

    low: float | None = None
    high: float | None = None


class Bounds(msgspec.Struct, array_like=True):
    """Wald's `[discard, keep]` thresholds on the log-likelihood ratio."""

    discard: float = 0.0
    keep: float = 0.0


class RunCounts(msgspec.Struct, kw_only=True):
    """Runs measured during one experiment, per side."""

    candidate: int = 0
    incumbent: int = 0


class SecondaryChange(msgspec.Struct, kw_only=True):
    """One secondary metric: both medians and the change, positive when better."""

    direction: str = ""
    candidate: float | None = None
    incumbent: float | None = None
    change: float | None = None


# --------------------------------------------------------------------------- per policy


class _Tagged(msgspec.Struct, tag_field="policy", kw_only=True):
    """Base of the decisions' evidence: the `policy` key says which struct a line holds."""


class SequentialEvidence(_Tagged, tag="sequential"):
    """The sequential policy's evidence (docs/decisions.md explains each field).

    Without a test (a measurement failure) only the samples, runs, gates and secondary metrics
    are there; the fields from `effect` to `noise_hides_gains` come with the test.
    """

    candidate_samples: list[float] | UnsetType = UNSET
    incumbent_samples: list[float] | UnsetType = UNSET
    """What the candidate was compared with: the pool and the fresh runs (only these after drift)."""
    fresh_incumbent_samples: list[float] | UnsetType = UNSET
    runs: RunCounts | UnsetType = UNSET
    gates: list[str] | UnsetType = UNSET
    """The gate breaches; empty when all passed."""
    secondary: dict[str, SecondaryChange] | UnsetType = UNSET
    effect: float | UnsetType | None = UNSET
    interval: Interval | UnsetType = UNSET
    measured_effect: float | UnsetType | None = UNSET
    measured_interval: Interval | UnsetType = UNSET
    llr: float | UnsetType | None = UNSET
    """Null when every run gave the same value (the difference is exact)."""
    bounds: Bounds | UnsetType = UNSET
    delta: float | UnsetType | None = UNSET
    noise: float | UnsetType | None = UNSET
    """σ, the run-to-run noise as a fraction."""
    relative: bool | UnsetType = UNSET
    scale: str | UnsetType = UNSET
    """"log" or "raw"."""
    note: str | UnsetType = UNSET
    """What the noise means for this decision, in words (may be empty)."""
    noise_hides_gains: bool | UnsetType = UNSET
    """The noise, not min_effect, set the gain tested for: smaller gains cannot be seen."""
    pool: list[float] | UnsetType = UNSET
    """The incumbent pool this decision left (written by the daemon when it records it)."""
    drift: str | UnsetType = UNSET
    """What the fresh incumbent runs showed when they shifted from the pool."""
    drift_shift: float | UnsetType = UNSET
    """With `drift`: how far the incumbent moved, as a fraction of its metric (an absolute
    difference when `scale` is "raw"); the headline moves the baseline's runs with it."""


class FixedEvidence(_Tagged, tag="fixed"):
    """The fixed policy's evidence; a measurement failure has only `runs` (and `pool`)."""

    candidate_median: float | UnsetType = UNSET
    incumbent_median: float | UnsetType = UNSET
    candidate_samples: list[float] | UnsetType = UNSET
    incumbent_samples: list[float] | UnsetType = UNSET
    effect: float | UnsetType = UNSET
    threshold: float | UnsetType = UNSET
    relative: bool | UnsetType = UNSET
    runs: int | UnsetType = UNSET
    gates: list[str] | UnsetType = UNSET
    pool: list[float] | UnsetType = UNSET
    drift: str | UnsetType = UNSET
    fresh_incumbent_samples: list[float] | UnsetType = UNSET
    """The incumbent runs measured during this experiment (after a keep: its re-measurement)."""


Evidence = SequentialEvidence | FixedEvidence
"""A decision's evidence, by policy."""


class BaselineEvidence(msgspec.Struct, kw_only=True):
    """The baseline's runs as a first calibration (the record with status `baseline`)."""

    policy: str | UnsetType = UNSET
    """The run's policy."""
    pool: list[float] | UnsetType = UNSET
    noise: NoiseStats | UnsetType = UNSET
    calibration: dict[str, Any] | UnsetType = UNSET
    """A recent `expd validate` of the same program files, when the run had one."""
    note: str | UnsetType = UNSET
    """Only when the noise hides gains of min_effect within max_runs runs."""
    estimates: bool | UnsetType = UNSET
    """True: the run's `baseline` and `best` are estimates with intervals (`daemon.policies.
    ledger`); absent in runs whose `best` was the kept candidate's median."""


AnyEvidence = Evidence | BaselineEvidence


# --------------------------------------------------------------------------- reading, writing


def load(status: str, stored: dict[str, Any]) -> AnyEvidence | None:
    """The typed evidence of a result with `status`; None when there is none of a known shape.

    The one place old lines are read: a sequential decision written before `noise_hides_gains`
    existed said so only in its note ("noise … hides gains below …"), so that wording sets it.
    """
    if not stored:
        return None
    try:
        if status == "baseline":
            return msgspec.convert(stored, BaselineEvidence)
        if stored.get("policy") not in ("sequential", "fixed"):
            return None
        evidence: Evidence = msgspec.convert(stored, Evidence)
    except msgspec.ValidationError:
        return None
    if (
        isinstance(evidence, SequentialEvidence)
        and isinstance(evidence.noise_hides_gains, UnsetType)
        and isinstance(evidence.note, str)
        and evidence.note
    ):
        evidence.noise_hides_gains = "hides" in evidence.note
    return evidence


def of(record: ResultRecord) -> AnyEvidence | None:
    """The typed evidence of `record` (see `load`)."""
    return load(record.status, record.evidence)


def dump(evidence: AnyEvidence | None) -> dict[str, Any]:
    """The mapping a result line stores: the fields that are set, in declaration order."""
    return {} if evidence is None else msgspec.to_builtins(evidence)


def hides_gains(evidence: AnyEvidence | None) -> str:
    """The note saying the noise hides gains of min_effect, or "" (other notes are not warnings)."""
    if isinstance(evidence, BaselineEvidence):
        return value_or(evidence.note, "")
    if isinstance(evidence, SequentialEvidence) and evidence.noise_hides_gains is True:
        return value_or(evidence.note, "")
    return ""
