"""What `expd finalize` produced, and summary.md: what a reviewer reads next to its branch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from daemon.policies.base import relative_effect
from shared import evidence
from shared.atomic import write_atomic
from shared.evidence import Evidence
from shared.schema import ResultRecord, RunManifest, RunState


@dataclass
class Confirmation:
    """The re-measurement of the final tree against the base."""

    status: str
    """"confirmed", "not_confirmed" or "measurement_failure"."""
    reason: str
    metric: float | None = None
    base_metric: float | None = None
    evidence: Evidence | None = None
    """The policy's evidence for the final tree against the base (None after a failure)."""
    base_samples: list[float] = field(default_factory=list)

    def evidence_json(self) -> dict[str, Any]:
        """The evidence as `expd finalize --json` and summary.md show it: the base's runs are
        `base_samples` (the policy calls them the incumbent's)."""
        if self.evidence is None:
            return {}
        shown = msgspec.structs.replace(self.evidence, incumbent_samples=msgspec.UNSET)
        return {**evidence.dump(shown), "base_samples": self.base_samples}


@dataclass
class Outcome:
    run_id: str
    branch: str
    commit: str
    base_commit: str
    applied: list[int]
    excluded: list[int]
    confirmation: Confirmation
    summary: Path


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "?"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _gain(value: float, before: float, direction: str) -> str:
    effect = relative_effect(value, before, direction)
    return f"{effect * 100:+.2f}%" if before != 0 else f"{effect:+.6g}"


def _short(value: Any) -> str:
    """Evidence values at reading precision (floats to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_short, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(
    manifest: RunManifest,
    state: RunState | None,
    records: list[ResultRecord],
    outcome: Outcome,
) -> str:
    metric = str(manifest.config.get("metric", ""))
    direction = str(manifest.config.get("direction", "lower"))
    baseline = next((r for r in records if r.status == "baseline"), None)
    experiments = [r for r in records if r.experiment > 0]
    counts: dict[str, int] = {}
    for r in experiments:
        counts[r.status] = counts.get(r.status, 0) + 1
    started = min((r.started_at for r in records if r.started_at), default=manifest.created_at)
    ended = max((r.finished_at for r in records), default=0.0)
    c = outcome.confirmation
    lines = [
        f"# Run {outcome.run_id} — finalized",
        "",
        f"Branch `{outcome.branch}` at `{outcome.commit[:12]}`, built on the base "
        f"`{outcome.base_commit[:12]}` from experiments "
        f"{', '.join(map(str, outcome.applied))}.",
        "",
        "## Statistics",
        "",
        f"- metric: `{metric}` ({direction} is better)",
        f"- experiments: {len(experiments)} — "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"- baseline: {_num(baseline.metric if baseline else None)}",
        f"- best during the run: {_num(state.best if state else None)}",
        f"- cost: ${sum(r.cost_usd for r in experiments):.2f}, "
        f"{sum(r.tokens for r in experiments)} tokens",
        f"- from {_clock(started)} to {_clock(ended)}",
        "",
        "## Confirmed total",
        "",
        f"- {c.status.replace('_', ' ')}: {c.reason}",
        f"- final tree {_num(c.metric)} vs base {_num(c.base_metric)}"
        + (
            f" ({_gain(c.metric, c.base_metric, direction)})"
            if c.metric is not None and c.base_metric is not None
            else ""
        ),
    ]
    if c.evidence is not None:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(c.evidence_json().items()))
        lines.append(f"- evidence: {shown}")
    lines += ["", "## Kept changes", ""]
    lines += ["| # | gain | metric | description | reason |", "|---|---|---|---|---|"]
    before = baseline.metric if baseline else None
    for r in experiments:
        if r.status != "keep":
            continue
        gain = "—" if r.metric is None or before is None else _gain(r.metric, before, direction)
        mark = " (excluded)" if r.experiment in outcome.excluded else ""
        lines.append(
            f"| {r.experiment}{mark} | {gain} | {_num(r.metric)} | "
            f"{_cell(r.description)} | {_cell(r.reason)} |"
        )
        before = r.metric if r.metric is not None else before
    lines += ["", "## Excluded", ""]
    if outcome.excluded:
        lines += [f"- experiment {n}" for n in outcome.excluded]
    else:
        lines.append("- none")
    lines += ["", "## Timeline", ""]
    for r in records:
        lines.append(
            f"- {_clock(r.started_at)} #{r.experiment} {r.status} {_num(r.metric)}"
            f" — {_cell(r.description)}"
        )
    return "\n".join(lines) + "\n"


def write_summary(
    path: Path,
    manifest: RunManifest,
    state: RunState | None,
    records: list[ResultRecord],
    outcome: Outcome,
) -> None:
    write_atomic(path, render(manifest, state, records, outcome).encode())
