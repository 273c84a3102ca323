"""One finished experiment: the evidence for its decision, its patch and its agent log.

The evidence comes with the result record; the patch and the log are files, which the screen asks
its source for (read in a thread worker, so a large log never stalls the event loop) and hands
over with `show_files`.
"""

from __future__ import annotations

import json
from typing import Any

from msgspec import UnsetType
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Log, Static, TabbedContent, TabPane

from shared import evidence
from shared.display import fmt_duration, fmt_num
from shared.evidence import SecondaryChange, SequentialEvidence, value_or
from shared.schema import ResultRecord

PATCH_LINES = 3000


def fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt_num(value)
    if isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return ", ".join(fmt_num(float(v)) for v in value) or "—"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str) if value else "—"
    return str(value)


SUMMARISED = frozenset(
    {"effect", "interval", "runs", "llr", "bounds", "delta", "noise", "note", "gates"}
    | {"secondary", "drift", "fresh_incumbent_samples", "noise_hides_gains"}
)
"""Evidence keys the sequential summary shows as sentences; the rest are listed as they are."""


def _pct(value: float | None) -> str:
    return f"{value * 100:+.2f}%" if isinstance(value, int | float) else str(value)


def _num(value: float | None) -> str:
    return fmt_num(None if value is None else float(value))


def _noise(value: float | None) -> str:
    return f"CV {float(value):.1%}" if isinstance(value, int | float) else str(value)


def _secondary(name: str, item: SecondaryChange) -> str:
    """`size: 120 vs 118 (1.7% worse)` from the policy's per-metric comparison."""
    text = f"{name}: {_num(item.candidate)} vs {_num(item.incumbent)}"
    if isinstance(item.change, int | float):
        text += f" ({abs(item.change):.1%} {'better' if item.change >= 0 else 'worse'})"
    return text


def sequential_summary(ev: SequentialEvidence) -> list[tuple[str, str]]:
    """The sequential policy's evidence as short labelled lines (readable at 80 columns):
    effect with its interval, runs on each side, the log-likelihood ratio against its bounds."""
    if isinstance(ev.llr, UnsetType) and isinstance(ev.interval, UnsetType):
        return []
    rows: list[tuple[str, str]] = []
    interval, bounds = value_or(ev.interval, None), value_or(ev.bounds, None)
    if not isinstance(ev.effect, UnsetType):
        span = "" if interval is None else f"  [{_pct(interval.low)} … {_pct(interval.high)}]"
        rows.append(("effect", _pct(ev.effect) + span))
    if not isinstance(ev.runs, UnsetType):
        fresh = ev.fresh_incumbent_samples
        extra = "" if isinstance(fresh, UnsetType) else f" ({len(fresh)} fresh)"
        rows.append(
            ("runs", f"{ev.runs.candidate} candidate + {ev.runs.incumbent} incumbent{extra}")
        )
    if not isinstance(ev.llr, UnsetType):
        span = "" if bounds is None else f" (bounds {_num(bounds.discard)} … {_num(bounds.keep)})"
        rows.append(("llr", _num(ev.llr) + span))
    if isinstance(ev.delta, int | float):
        rows.append(("delta", f"{ev.delta:.2%} (the gain tested for)"))
    if not isinstance(ev.noise, UnsetType):
        rows.append(("noise", _noise(ev.noise)))
    if not isinstance(ev.gates, UnsetType):
        rows.append(("gates", "; ".join(ev.gates) or "all passed"))
    for name, item in value_or(ev.secondary, {}).items():
        rows.append(("secondary", _secondary(name, item)))
    if ev.drift:
        rows.append(("drift", ev.drift))
    if ev.note:
        rows.append(("note", ev.note))
    return rows


def evidence_content(record: ResultRecord) -> Content:
    """The decision and everything it was based on, as labelled lines."""
    rows: list[tuple[str, str]] = [("arm", record.arm)] if record.arm else []
    if record.lane is not None:
        rows.append(("lane", str(record.lane)))
    if record.made_against:
        onto = f" (replayed onto {record.parent[:12]})" if record.parent else ""
        rows.append(("made against", record.made_against[:12] + onto))
    rows += [
        ("metric", fmt_num(record.metric)),
        ("samples", fmt_value(record.samples)),
    ]
    if record.description:
        rows.append(("change", record.description))
    if record.diff.files:
        files = ", ".join(record.diff.files[:6]) + (" …" if len(record.diff.files) > 6 else "")
        rows.append(("diff", f"+{record.diff.added} −{record.diff.removed} in {files}"))
    rows.append(
        (
            "time",
            f"agent {fmt_duration(record.agent_s)} · measure {fmt_duration(record.measure_s)}"
            f" · ${record.cost_usd:.2f} · {record.tokens} tokens",
        )
    )
    if record.commit:
        rows.append(("commit", record.commit[:12]))
    parts: list[str | tuple[str, str]] = [
        (f"#{record.experiment} {record.status}", "bold"),
        "\n",
        (record.reason or "(no reason recorded)", "$text-accent"),
        "\n\n",
    ]
    width = max(9, *(len(label) + 1 for label, _ in rows))
    for label, value in rows:
        parts += [(f"{label:<{width}}", "$text-muted"), f"{value}\n"]
    typed = evidence.of(record)
    stored = record.evidence if typed is None else evidence.dump(typed)  # untyped: as it is
    if stored:
        summary = sequential_summary(typed) if isinstance(typed, SequentialEvidence) else []
        rest = {k: v for k, v in stored.items() if k not in SUMMARISED or not summary}
        if summary:
            parts += ["\n", ("decision", "bold"), "\n"]
            for label, value in summary:
                parts += [(f"  {label:<10}", "$text-muted"), f"{value}\n"]
        if rest:
            parts += ["\n", ("evidence", "bold"), "\n"]
            width = max(len(k) for k in rest) + 2
            for key, value in rest.items():
                parts += [(f"  {key:<{width}}", "$text-muted"), f"{fmt_value(value)}\n"]
    if record.metrics:
        parts += ["\n", ("metrics (medians)", "bold"), "\n"]
        width = max(len(k) for k in record.metrics) + 2
        for key, value in sorted(record.metrics.items()):
            parts += [(f"  {key:<{width}}", "$text-muted"), f"{fmt_num(value)}\n"]
    return Content.assemble(*parts)


def patch_content(text: str) -> Content:
    """A unified diff with added, removed and hunk lines told apart by theme colours and signs."""
    lines = text.splitlines()
    parts: list[str | tuple[str, str]] = []
    for line in lines[:PATCH_LINES]:
        if line.startswith(("+++", "---", "diff ", "index ")):
            style = "bold"
        elif line.startswith("+"):
            style = "$text-success"
        elif line.startswith("-"):
            style = "$text-error"
        elif line.startswith("@@"):
            style = "$text-primary"
        else:
            style = ""
        parts += [(line, style), "\n"]
    if len(lines) > PATCH_LINES:
        parts.append(f"… {len(lines) - PATCH_LINES} more lines")
    return Content.assemble(*parts)


class ExperimentDetail(Vertical):
    """Tabs for the selected experiment; `show` is instant, `show_files` follows when read."""

    DEFAULT_CSS = """
    ExperimentDetail { border: round $secondary 50%; border-title-color: $text; }
    ExperimentDetail TabbedContent { height: 1fr; }
    ExperimentDetail TabPane { padding: 0 1; height: 1fr; }
    ExperimentDetail VerticalScroll { height: 1fr; }
    ExperimentDetail Log { height: 1fr; overflow: auto auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.experiment: int | None = None
        self.border_title = "experiment"

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="tab-evidence"):
            with TabPane("Evidence", id="tab-evidence"), VerticalScroll():
                yield Static("select an experiment", id="detail-evidence")
            with TabPane("Patch", id="tab-patch"), VerticalScroll():
                yield Static(id="detail-patch")
            with TabPane("Log", id="tab-log"):
                yield Log(id="detail-log", max_lines=20_000)

    def show(self, record: ResultRecord) -> None:
        """Show `record` now; its files show as loading until `show_files` brings them."""
        self.experiment = record.experiment
        self.border_title = f"experiment #{record.experiment} · {record.status}"
        self.query_one("#detail-evidence", Static).update(evidence_content(record))
        self.query_one("#detail-patch", Static).update("loading…")
        self.query_one("#detail-log", Log).clear()

    def show_files(self, experiment: int, patch: str | None, log: list[str] | None) -> None:
        """The experiment's patch and agent log (None: no such file), once read."""
        if experiment != self.experiment:
            return  # the user moved on while the files were read
        if patch is None:
            shown: Content | str = (
                "no patch (the baseline has none)" if experiment == 0 else "no patch recorded"
            )
        else:
            shown = patch_content(patch) if patch.strip() else "empty patch"
        self.query_one("#detail-patch", Static).update(shown)
        widget = self.query_one("#detail-log", Log)
        widget.clear()
        if log is None:
            widget.write_line(f"no agent log for #{experiment}")
        else:
            widget.write_lines([line or " " for line in log], scroll_end=False)
            widget.scroll_end(animate=False, x_axis=False)  # the end of a log says how it ended
