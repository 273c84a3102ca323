"""The briefing each agent receives: goal, where the run stands, what was tried, guidance."""

from __future__ import annotations

from pathlib import Path

from shared.schema import ResultRecord, RunState
from shared.status import improvement_pct

DEFAULT_BUDGET = 12_000


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def build_prompt(
    *,
    experiment: int,
    program_md: str,
    state: RunState,
    results: list[ResultRecord],
    patches: dict[int, Path],
    budget: int = DEFAULT_BUDGET,
) -> str:
    """A bounded prompt; the newest and most useful parts win when the budget is tight."""
    better = "lower" if state.direction == "lower" else "higher"
    pct = improvement_pct(state.baseline, state.best, state.direction)
    improvement = "" if pct is None else f" ({pct:+.2f}% better)"
    head = [
        f"# Experiment {experiment}",
        "",
        "You are one step of an automated optimisation loop. Make ONE focused change to the code "
        "in the current directory that you expect to improve the metric, then commit it with a "
        "message that says what you tried. It will be measured and kept only if it is better.",
        "",
        f"Metric: `{state.metric}` ({better} is better).",
        f"Baseline: {_fmt(state.baseline)}. Current best: {_fmt(state.best)}{improvement}.",
        f"Experiments so far: {state.keeps} kept, {state.discards} discarded, "
        f"{state.crashes} crashed, {state.measurement_failures} failed to measure.",
    ]
    if state.consecutive_non_keeps >= 3:
        head += [
            "",
            f"The last {state.consecutive_non_keeps} experiments were not kept: try a different "
            "kind of change rather than a variation of those.",
        ]
    sections = ["\n".join(head), "## Program\n\n" + program_md.strip()]
    if state.guidance.strip():
        sections.insert(
            1, "## Guidance from the human (takes priority)\n\n" + state.guidance.strip()
        )
    recent = [r for r in results if r.status != "baseline"][-15:]
    if recent:
        lines = ["## Recent experiments", "", "| # | status | metric | description | reason |"]
        lines.append("|---|---|---|---|---|")
        for r in recent:
            desc = r.description.replace("|", "/")[:80]
            reason = r.reason.replace("|", "/")[:100]
            lines.append(f"| {r.experiment} | {r.status} | {_fmt(r.metric)} | {desc} | {reason} |")
        sections.append("\n".join(lines))
    text = "\n\n".join(sections)
    for r in reversed([r for r in recent if r.status == "discard"][-3:]):
        path = patches.get(r.experiment)
        if path is None or not path.exists():
            continue
        room = budget - len(text) - 200
        if room < 400:
            break
        patch = path.read_text(errors="replace")
        if len(patch) > room:
            patch = patch[:room] + "\n… (trimmed)"
        text += f"\n\n## Discarded experiment {r.experiment}: {r.description[:80]}\n\n```diff\n{patch}```"
    return text[:budget]
