"""Bakeoff tools: start one, its status, its report (`expd bakeoff start`, `expd status`,
`expd bakeoff report --format json`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.bakeoffs.status import BakeoffStatus
from shared.cli.bakeoff_launch import BakeoffStartReply, start_bakeoff_run
from shared.cli.bakeoff_read import load, report_doc
from shared.cli.bakeoff_render import read_status
from shared.cli.bakeoff_report import ReportDoc
from shared.cli.mcp_server.registry import tool
from shared.paths import find_repo_root
from shared.runs import resolve

BakeoffRunArg = Annotated[
    str | None,
    Field(description="a bakeoff run id (NAME/STAMP) or unique prefix; default: the newest"),
]


@tool(BakeoffStartReply)
def start_bakeoff(
    name: Annotated[str, Field(description="the bakeoff's name (.expd/bakeoffs/NAME)")],
) -> BakeoffStartReply:
    """Start a bakeoff run (variants × tasks × attempts) in a detached daemon
    (`expd bakeoff start`). Tell the user its size and cost cap first; poll get_bakeoff_status."""
    started = start_bakeoff_run(find_repo_root(), name)
    return BakeoffStartReply(started.run_id, started.pid, str(started.run_dir))


@tool(BakeoffStatus, read_only=True)
def get_bakeoff_status(run: BakeoffRunArg = None) -> BakeoffStatus:
    """A bakeoff run's status (`expd status --json`): attempts done of total, per-variant
    progress, cost, daemon liveness."""
    return read_status(resolve(run, kind="bakeoff"))


@tool(ReportDoc, read_only=True)
def get_bakeoff_report(run: BakeoffRunArg = None) -> ReportDoc:
    """A bakeoff run's report (`expd bakeoff report --format json`): the ranking with intervals,
    the winner (named only on evidence) and the task × variant matrix."""
    return report_doc(load(run))
