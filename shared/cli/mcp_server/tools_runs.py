"""Run read tools: list, status, results, agent log, summary, report.

The same readers as `expd status`, `results`, `logs` and `report`: `shared` and `shared.cli`
only, never the daemon, Textual or git.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import Field

from shared import runs
from shared.bakeoffs.status import BakeoffStatus
from shared.cli import render
from shared.cli import report as run_report
from shared.cli.follow import decode_results
from shared.cli.mcp_server.registry import tool
from shared.cli.read import find_log
from shared.errors import ContractError, UserError
from shared.listing import UnreadableRun
from shared.paths import RepoPaths, find_repo_root
from shared.schema import ResultRecord
from shared.status import ACTIVE, StatusReport, build_status, run_status
from shared.tail import last_bytes, last_lines, read_complete_lines

RunArg = Annotated[
    str | None,
    Field(description="a run id (PROGRAM/STAMP) or unique prefix; default: the newest run"),
]
MAX_LOG_BYTES = 1 << 20


class RunList(msgspec.Struct, kw_only=True):
    """The repository's runs (program and bakeoff runs), oldest first."""

    runs: list[StatusReport | BakeoffStatus | UnreadableRun]


class RunResults(msgspec.Struct, kw_only=True):
    """`expd results --json` under `results`: one object per experiment (0 is the baseline)."""

    run_id: str
    results: list[ResultRecord]
    skipped: int = 0
    """Unreadable lines left out."""


class LogText(msgspec.Struct, kw_only=True):
    """The end of an agent log (or of the daemon's log before the first experiment)."""

    run_id: str
    experiment: int | None
    """None: the daemon's log."""
    path: str
    size: int
    text: str
    truncated: bool
    """True: only the last `max_bytes` are in `text`."""


class RunSummary(msgspec.Struct, kw_only=True):
    """A run at a glance: its status, the wrap-up people read, the kept experiments, and the
    summary `finalize` wrote (if it ran)."""

    run_id: str
    status: StatusReport
    text: str
    kept: list[ResultRecord]
    finalize_summary: str | None


class ReportText(msgspec.Struct, kw_only=True):
    """`expd report`: the run's summary, chart and results as one document."""

    run_id: str
    format: str
    text: str


def program_run(run: str | None) -> runs.RunRef:
    return runs.resolve(run, kind="program")


@tool(RunList, read_only=True)
def list_runs(
    program: Annotated[
        str | None, Field(description="only this program's (or bakeoff's) runs")
    ] = None,
    active_only: Annotated[bool, Field(description="only runs whose daemon is alive")] = False,
) -> RunList:
    """The runs of the repository with their statuses, oldest first (program and bakeoff runs:
    `kind` tells them apart)."""
    root = find_repo_root()
    if program is not None:
        expd = RepoPaths(root).expd
        if (
            not (expd / "programs" / program).is_dir()
            and not (expd / "bakeoffs" / program).is_dir()
        ):
            raise UserError(f"no program or bakeoff {program!r} in {root}")
    out: list[Any] = []
    for ref in runs.repo_runs(root, program):
        try:
            status = run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)
        except ContractError as exc:
            out.append(UnreadableRun(run_id=ref.run_id, error=str(exc)))
            continue
        if not active_only or status.daemon in ACTIVE:
            out.append(status)
    return RunList(runs=out)


@tool(StatusReport, read_only=True)
def get_run_status(run: RunArg = None) -> StatusReport:
    """A program run's status, as `expd status --json`: phase, daemon liveness (running, starting,
    hung, dead, finished), experiment n of max, keeps/discards/crashes, baseline, best and
    improvement, cost, termination reason. Cheap: poll it."""
    ref = program_run(run)
    return build_status(ref.paths, run_id=ref.run_id)


@tool(RunResults, read_only=True)
def get_run_results(
    run: RunArg = None,
    limit: Annotated[int | None, Field(ge=0, description="only the last N experiments")] = None,
) -> RunResults:
    """The experiments of a run, as `expd results --json`: status, metric, samples, commit,
    description, diff stats, timings, cost and the reason with its evidence."""
    ref = program_run(run)
    path = ref.paths.results
    if limit is not None:
        lines = last_lines(path, limit) if limit > 0 else []
    else:
        lines = read_complete_lines(path)
    records, bad = decode_results(lines)
    return RunResults(run_id=ref.run_id, results=records, skipped=bad)


@tool(LogText, read_only=True)
def get_experiment_log(
    run: RunArg = None,
    experiment: Annotated[
        int | None,
        Field(ge=0, description="the experiment (default: the one in flight, else the last)"),
    ] = None,
    max_bytes: Annotated[
        int, Field(ge=1, le=MAX_LOG_BYTES, description="at most this much of the log's end")
    ] = 65536,
) -> LogText:
    """An experiment's agent log (what the agent said and did), like `expd logs`; before the first
    experiment, the daemon's log."""
    ref = program_run(run)
    log = find_log(ref, experiment)
    assert log is not None
    got = last_bytes(log, max_bytes)
    data, start = got if got is not None else (b"", 0)
    return LogText(
        run_id=ref.run_id,
        experiment=int(log.stem) if log.stem.isdigit() else None,
        path=str(log),
        size=start + len(data),
        text=data.decode("utf-8", "replace"),
        truncated=start > 0,
    )


@tool(RunSummary, read_only=True)
def get_run_summary(run: RunArg = None) -> RunSummary:
    """A run at a glance: status, a few lines of wrap-up, the kept experiments, and the summary
    finalize wrote."""
    ref = program_run(run)
    rep = run_report.load(ref)
    return RunSummary(
        run_id=ref.run_id,
        status=rep.status,
        text=render.summary_text(rep.status, f"expd results {ref.run_id}"),
        kept=[r for r in rep.records if r.status == "keep"],
        finalize_summary=rep.summary_md,
    )


@tool(ReportText, read_only=True)
def get_run_report(
    run: RunArg = None,
    format: Annotated[Literal["md", "html"], Field(description="Markdown or HTML")] = "md",
) -> ReportText:
    """The run's report (`expd report`): summary, chart and results, as Markdown or a
    self-contained HTML page."""
    ref = program_run(run)
    return ReportText(
        run_id=ref.run_id, format=format, text=run_report.render(run_report.load(ref), format)
    )
