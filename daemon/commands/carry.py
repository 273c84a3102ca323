"""Carry-forward: what a program's earlier runs found, told to the agents of its next run."""

from __future__ import annotations

from pathlib import Path

from shared import codec
from shared.errors import ContractError
from shared.paths import ProgramPaths, RunPaths
from shared.schema import ResultRecord, RunState
from shared.status import improvement_pct
from shared.tail import read_complete_lines

LIMIT = 1500
RUNS = 3


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _results(path: Path) -> list[ResultRecord]:
    out = []
    for line in read_complete_lines(path):
        try:
            out.append(codec.decode(line, ResultRecord, source=path))
        except ContractError:
            continue
    return out


def run_summary(paths: RunPaths, run_id: str) -> str:
    """A few lines on one earlier run; empty if it never got a state file."""
    try:
        state = codec.read(paths.state_json, RunState)
    except ContractError:
        return ""
    results = _results(paths.results) if paths.results.exists() else []
    done = [r for r in results if r.status != "baseline"]
    pct = improvement_pct(state.baseline, state.best, state.direction)
    gain = "" if pct is None else f" ({pct:+.2f}%)"
    lines = [
        f"- run {run_id}: {len(done)} experiments, {state.keeps} kept, best "
        f"{_fmt(state.best)} vs baseline {_fmt(state.baseline)}{gain}, ended "
        f"{state.termination_reason or 'without a recorded reason'}"
    ]
    for r in [r for r in done if r.status == "keep"][-5:]:
        lines.append(f"  - kept {r.experiment}: {' '.join(r.description.split())[:100]}")
    return "\n".join(lines)


def carry_forward(program: ProgramPaths, *, limit: int = LIMIT) -> str:
    """The newest earlier runs' summaries (newest first), cut to `limit` characters."""
    if not program.runs_dir.is_dir():
        return ""
    parts: list[str] = []
    for run_dir in sorted(program.runs_dir.iterdir(), reverse=True):
        if not run_dir.is_dir() or len(parts) >= RUNS:
            continue
        summary = run_summary(RunPaths(run_dir), f"{program.name}/{run_dir.name}")
        if summary:
            parts.append(summary)
    text = "\n".join(parts)
    if not text:
        return ""
    text = "Earlier runs of this program (their changes are not in this run's code):\n" + text
    return text if len(text) <= limit else text[: limit - 1] + "…"
