"""The MCP server: expd's tools, resources and instructions over stdio (`expd mcp`).

One server serves one repository: the directory it was started in (or `expd mcp --repo DIR`).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp_types import Resource

from shared import __version__
from shared.cli.mcp_server import resources
from shared.cli.mcp_server.registry import all_tools

INSTRUCTIONS = """\
expd runs an experiment loop on this git repository, unattended, in a detached daemon: a coding \
agent makes one change, expd measures it, keeps it only if the metric improved beyond noise, \
reverts it otherwise, and repeats. A *program* (.expd/programs/NAME) says what to optimize: \
program.md (goal, files in scope, off-limits), measure.sh (prints the metric), program.toml \
(metric, direction, limits, agent). A *run* is one execution of the loop (id PROGRAM/STAMP).

How to use these tools:
1. list_programs / get_program to see what exists; create_program then update_program to make \
one (program.toml is checked strictly).
2. Always call validate_measurement before start_run. If `usable` is false, do not start: tell \
the user the `reason`.
3. Before start_run, state the expected time and cost to the user and get their go-ahead: up to \
limits.max_experiments experiments, each taking up to limits.agent_timeout_s for the agent plus \
about per_run_s × up to limits.max_measure_runs measurements; the cost is capped by \
limits.max_cost_usd (when it is null there is no cap: say so).
4. start_run returns at once; the run goes on for minutes or hours. Poll get_run_status (cheap) \
until `daemon` is `finished` (or `dead`: offer resume_run), then read get_run_results, \
get_run_summary, get_experiment_log, get_run_report.
5. stop_run ends a run after the current experiment; abort_run kills the agent now (use it only \
when the user asks). update_run_limit and set_guidance steer a live run. finalize_run turns the \
kept experiments into a review branch, re-measured.
Errors come back as tool errors with the line the expd command line would print.
"""


class ExpdServer(MCPServer):
    """MCPServer whose resource list names the repository's actual program files and runs."""

    async def list_resources(self) -> list[Resource]:
        return [*await super().list_resources(), *resources.concrete()]


def build_server() -> ExpdServer:
    server = ExpdServer(
        name="expd",
        title="expd",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=all_tools(),
        log_level="WARNING",
    )
    resources.register(server)
    return server


def serve() -> None:
    """Serve on stdin/stdout until the client closes them."""
    build_server().run("stdio")
