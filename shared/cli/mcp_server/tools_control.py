"""Tools that start, steer and end runs: the functions `expd start`, `resume`, `stop`, `abort`,
`set` and `finalize` call, so a run started here is the same as one started from a shell.

The daemon's code is imported inside those functions, only when a write is asked for.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared import runs
from shared.cli import finalize as finalize_cli
from shared.cli.control import ControlReply, send_request, send_set
from shared.cli.finalize import FinalizeReply
from shared.cli.launch import StartReply, resume_program_run, start_program, start_reply
from shared.cli.mcp_server.registry import tool
from shared.cli.mcp_server.tools_programs import ProgramName
from shared.cli.mcp_server.tools_runs import RunArg
from shared.paths import find_repo_root

MaxExperiments = Annotated[int | None, Field(ge=0, description="override [loop] max_experiments")]
AgentKind = Annotated[str | None, Field(description="override [agent] kind")]
Model = Annotated[str | None, Field(description="override [agent] model")]
Fresh = Annotated[bool, Field(description="do not tell the agent what earlier runs found")]
"""The start options (`expd start`'s), shared by start_run and add_to_queue."""


@tool(StartReply)
def start_run(
    program: ProgramName,
    max_experiments: MaxExperiments = None,
    agent: AgentKind = None,
    model: Model = None,
    fresh: Fresh = False,
) -> StartReply:
    """Start a run of a program in a detached daemon (`expd start`); returns once the daemon is
    alive. Before calling it: validate_measurement must have said usable, and the user must have
    been told the expected time and cost (get_program's limits). Then poll get_run_status."""
    return start_reply(
        start_program(
            find_repo_root(),
            program,
            max_experiments=max_experiments,
            agent=agent,
            model=model,
            fresh=fresh,
        )
    )


@tool(StartReply)
def resume_run(
    run: Annotated[str, Field(description="the interrupted run's id (PROGRAM/STAMP) or prefix")],
) -> StartReply:
    """Relaunch the daemon of an interrupted program run (daemon `dead` in get_run_status), like
    `expd resume`: the experiment in flight is recorded as interrupted and the run continues."""
    return start_reply(resume_program_run(runs.resolve(run, kind="program")))


@tool(ControlReply, idempotent=True)
def stop_run(run: RunArg = None) -> ControlReply:
    """Ask a live run to stop after the current experiment (`expd stop`); nothing is lost. The
    daemon acknowledges the request id in its state; get_run_status shows the end."""
    return send_request(run, "stop")[2]


@tool(ControlReply, destructive=True, idempotent=True)
def abort_run(run: RunArg = None) -> ControlReply:
    """Abort a live run now (`expd abort`): the agent is killed, its change reverted, and the
    experiment recorded as a crash. Prefer stop_run unless the user asked to abort."""
    return send_request(run, "abort")[2]


@tool(ControlReply, idempotent=True)
def update_run_limit(
    max_experiments: Annotated[int, Field(ge=0, description="the new maximum")],
    run: RunArg = None,
) -> ControlReply:
    """Change a live run's maximum number of experiments (`expd set RUN max-experiments N`)."""
    return send_set(run, "max_experiments", max_experiments)[1]


@tool(ControlReply, idempotent=True)
def set_guidance(
    text: Annotated[str, Field(description="guidance for the agent's next prompts ('' clears)")],
    run: RunArg = None,
) -> ControlReply:
    """Steer a live run: the text goes into the agent's next prompts (`expd set RUN guidance`)."""
    return send_set(run, "guidance", text.strip())[1]


@tool(FinalizeReply)
def finalize_run(
    run: RunArg = None,
    branch: Annotated[
        str | None, Field(description="the review branch (default expd/PROGRAM/STAMP-final)")
    ] = None,
    exclude: Annotated[list[int] | None, Field(description="kept experiments to leave out")] = None,
    force: Annotated[
        bool, Field(description="create the branch even when the gain is not confirmed")
    ] = False,
) -> FinalizeReply:
    """Replay a finished run's kept experiments onto its base as a review branch and re-measure
    the total gain (`expd finalize`); the user's checkout is not touched."""
    excluded = finalize_cli.exclusions(",".join(map(str, exclude or [])))
    return finalize_cli.finalize_run(run, branch=branch, exclude=excluded, force=force)
