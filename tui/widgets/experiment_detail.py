"""One finished experiment: the evidence for its decision, its patch and its agent log.

The evidence comes with the result record; the patch and the log are files, which the screen asks
its source for (read in a thread worker, so a large log never stalls the event loop) and hands
over with `show_files`.
"""

from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Log, Static, TabbedContent, TabPane

from shared.display import fmt_duration, fmt_num
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
    | {"secondary", "drift", "fresh_incumbent_samples"}
)
"""Evidence keys the sequential summary shows as sentences; the rest are listed as they are."""


def _pct(value: Any) -> str:
    return f"{value * 100:+.2f}%" if isinstance(value, int | float) else str(value)


def _num(value: Any) -> str:
    if value is None or isinstance(value, int | float):
        return fmt_num(None if value is None else float(value))
    return str(value)


def _pair(value: Any, fmt: Any) -> str | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{fmt(value[0])} … {fmt(value[1])}"
    return None


def _noise(value: Any) -> str:
    if isinstance(value, dict):
        cv = value.get("robust_cv", value.get("cv"))
        if isinstance(cv, int | float):
            return f"CV {cv:.1%}" + (f" ({value['runs']} runs)" if "runs" in value else "")
        return fmt_value(value)
    if isinstance(value, int | float):
        return f"CV {float(value):.1%}"
    return str(value)


def _listing(value: Any, empty: str) -> str:
    if not value:
        return empty
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _secondary(name: str, item: Any) -> str:
    """`size: 120 vs 118 (1.7% worse)` from the policy's per-metric comparison."""
    if not isinstance(item, dict):
        return f"{name}: {fmt_value(item)}"
    text = f"{name}: {_num(item.get('candidate'))} vs {_num(item.get('incumbent'))}"
    change = item.get("change")
    if isinstance(change, int | float):
        text += f" ({abs(change):.1%} {'better' if change >= 0 else 'worse'})"
    return text


def sequential_summary(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """The sequential policy's evidence as short labelled lines (readable at 80 columns):
    effect with its interval, runs on each side, the log-likelihood ratio against its bounds."""
    if "llr" not in evidence and "interval" not in evidence:
        return []
    rows: list[tuple[str, str]] = []
    if "effect" in evidence:
        effect = _pct(evidence["effect"])
        interval = _pair(evidence.get("interval"), _pct)
        rows.append(("effect", effect + (f"  [{interval}]" if interval else "")))
    runs = evidence.get("runs")
    if isinstance(runs, dict):
        fresh = evidence.get("fresh_incumbent_samples")
        extra = f" ({len(fresh)} fresh)" if isinstance(fresh, list) else ""
        rows.append(
            (
                "runs",
                f"{runs.get('candidate', '?')} candidate + {runs.get('incumbent', '?')} "
                f"incumbent{extra}",
            )
        )
    if "llr" in evidence:
        bounds = _pair(evidence.get("bounds"), _num)
        rows.append(("llr", _num(evidence["llr"]) + (f" (bounds {bounds})" if bounds else "")))
    if isinstance(evidence.get("delta"), int | float):
        rows.append(("delta", f"{evidence['delta']:.2%} (the gain tested for)"))
    if "noise" in evidence:
        rows.append(("noise", _noise(evidence["noise"])))
    if "gates" in evidence:
        rows.append(("gates", _listing(evidence["gates"], "all passed")))
    secondary = evidence.get("secondary")
    if isinstance(secondary, dict):
        for name, item in secondary.items():
            rows.append(("secondary", _secondary(name, item)))
    if evidence.get("drift"):
        rows.append(("drift", str(evidence["drift"])))
    if evidence.get("note"):
        rows.append(("note", str(evidence["note"])))
    return rows


def evidence_content(record: ResultRecord) -> Content:
    """The decision and everything it was based on, as labelled lines."""
    rows: list[tuple[str, str]] = [
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
    for label, value in rows:
        parts += [(f"{label:<9}", "$text-muted"), f"{value}\n"]
    if record.evidence:
        summary = sequential_summary(record.evidence)
        rest = {k: v for k, v in record.evidence.items() if k not in SUMMARISED or not summary}
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
