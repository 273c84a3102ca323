"""The briefing each agent receives: goal, where the run stands, what was tried, guidance.

The packet is bounded by a character budget. Parts are granted room in priority order
(guidance, the arm's addendum, goal, status, directive, results, ideas, kept, patches,
diagnostics), so when the budget is tight the least useful parts shrink first; they are then shown
in reading order, the arm's addendum last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.schema import ResultRecord, RunState
from shared.status import headline_improvement

DEFAULT_BUDGET = 12_000
TRIMMED = "\n… (trimmed)"
MIN_PART = 160
"""A part with less room than this is left out rather than cut to a useless stub."""
ADDENDUM = "Your approach for this experiment"
PLATEAU = 5
"""Experiments without a new best before the packet calls it a plateau."""

NOTES_HELP = (
    "When you finish, end your answer with a notes block for the agents after you:\n\n"
    "```\nEXPD-NOTES\nhypothesis: what you expected and why\nresult: what you changed "
    "and what you expect it to do\navoid: what not to try again\nnext: the idea you would try "
    "next\nEND-NOTES\n```"
)


@dataclass
class Extras:
    """What the packet shows beyond the run's state and results (all optional)."""

    guidance: str = ""
    addendum: str = ""
    """The `prompt_addendum` of the arm that runs the experiment."""
    ideas: str = ""
    diagnostics: str = ""
    carry_forward: str = ""
    max_consecutive_discards: int = 30


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _cell(text: str, width: int) -> str:
    return " ".join(text.split()).replace("|", "/")[:width]


def since_best(results: list[ResultRecord], direction: str) -> int:
    """Experiments since the last one that set a new best (all of them if none did)."""
    best: float | None = None
    count = 0
    for r in results:
        if r.status == "baseline":
            best = r.metric
            continue
        count += 1
        if r.status == "keep" and r.metric is not None:
            better = best is None or (r.metric < best if direction == "lower" else r.metric > best)
            if better:
                best, count = r.metric, 0
    return count


def directive(state: RunState, results: list[ResultRecord], limit: int) -> str:
    """Escalating advice: the longer nothing is kept, the further the next change should go."""
    lines: list[str] = []
    streak = state.consecutive_non_keeps
    share = streak / max(limit, 1)
    if share >= 0.7:
        lines.append(
            f"The last {streak} experiments were not kept ({streak} of the {limit} allowed before "
            "the run stops): simplify, or try something bold and structurally different."
        )
    elif share >= 0.5:
        lines.append(
            f"The last {streak} experiments were not kept: change category — work on a "
            "different part of the code or a different kind of optimisation."
        )
    elif share >= 0.3:
        lines.append(
            f"The last {streak} experiments were not kept: try a different kind of change "
            "rather than a variation of those."
        )
    stale = since_best(results, state.direction)
    if stale >= PLATEAU:
        lines.append(
            f"Plateau: no new best in the last {stale} experiments. Small tweaks of the current "
            "approach are exhausted; look for a different idea."
        )
    return "\n".join(lines)


def _results_table(results: list[ResultRecord]) -> str:
    recent = [r for r in results if r.status != "baseline"][-15:]
    if not recent:
        return ""
    lines = ["| # | status | metric | description | reason |", "|---|---|---|---|---|"]
    for r in recent:
        lines.append(
            f"| {r.experiment} | {r.status} | {_fmt(r.metric)} | "
            f"{_cell(r.description, 80)} | {_cell(r.reason, 100)} |"
        )
    return "\n".join(lines)


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _kept(results: list[ResultRecord]) -> str:
    lines = []
    for r in reversed([r for r in results if r.status == "keep"][-10:]):
        d = r.diff
        stat = f" ({', '.join(d.files[:5])}: +{d.added} -{d.removed})" if d.files else ""
        lines.append(f"- {r.experiment}: {_cell(r.description, 120)}{stat}")
    return "\n".join(lines)


def _discarded(results: list[ResultRecord], patches: dict[int, Path]) -> str:
    parts = []
    for r in reversed([r for r in results if r.status == "discard"][-3:]):
        patch = _read(patches.get(r.experiment))
        if patch.strip():
            parts.append(
                f"### Experiment {r.experiment}: {_cell(r.description, 80)}\n\n```diff\n"
                f"{patch.rstrip()}\n```"
            )
    return "\n\n".join(parts)


def _fit(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    if room < MIN_PART:
        return ""
    cut = text[: room - len(TRIMMED) - 4] + TRIMMED
    return cut + "\n```" if cut.count("```") % 2 else cut  # never leave a code fence open


def build_prompt(
    *,
    experiment: int,
    program_md: str,
    state: RunState,
    results: list[ResultRecord],
    patches: dict[int, Path],
    budget: int = DEFAULT_BUDGET,
    extras: Extras | None = None,
) -> str:
    """A packet of at most `budget` characters; high-priority parts keep their room."""
    x = extras or Extras(guidance=state.guidance)
    better = "lower" if state.direction == "lower" else "higher"
    pct = headline_improvement(state)
    improvement = "" if pct is None else f" ({pct:+.2f}% better than the baseline)"
    intro = (
        f"# Experiment {experiment}\n\nYou are one step of an automated optimisation loop. Make "
        "ONE focused change to the code in the current directory that you expect to improve the "
        "metric, then commit it with a message that says what you tried. It will be measured "
        "and kept only if it is better."
    )
    status = (
        f"Metric: `{state.metric}` ({better} is better).\n"
        f"Baseline: {_fmt(state.baseline)}. Current best: {_fmt(state.best)}{improvement}.\n"
        f"Experiments so far: {state.keeps} kept, {state.discards} discarded, "
        f"{state.crashes} crashed, {state.measurement_failures} failed to measure."
    )
    # (title, body) in priority order; each gets what is left of the budget.
    parts: list[tuple[str, str]] = [
        ("Guidance from the human (takes priority)", x.guidance.strip()),
        ("Program", program_md.strip()),
        ("Status", status),
        ("Direction", directive(state, results, x.max_consecutive_discards)),
        ("Recent experiments", _results_table(results)),
        ("Ideas and notes from earlier experiments", x.ideas.strip()),
        ("Previous runs of this program", x.carry_forward.strip()),
        ("Kept changes (newest first)", _kept(results)),
        (
            "Recently discarded changes (newest first; do not repeat them)",
            _discarded(results, patches),
        ),
        ("Diagnostics from the last measurement", x.diagnostics.strip()),
        (ADDENDUM, x.addendum.strip()),
    ]
    room = budget - len(intro) - len(NOTES_HELP) - 4
    granted: dict[str, str] = {}
    for title, body in [parts[0], parts[-1], *parts[1:-1]]:
        if not body:
            continue
        header = f"## {title}\n\n"
        fitted = _fit(body, room - len(header) - 2)
        if fitted:
            granted[title] = header + fitted
            room -= len(granted[title]) + 2
    order = [parts[i][0] for i in (0, 1, 2, 3, 6, 4, 7, 8, 9, 5, 10)]
    sections = [intro, *(granted[t] for t in order if t in granted), NOTES_HELP]
    return "\n\n".join(sections)[:budget]
