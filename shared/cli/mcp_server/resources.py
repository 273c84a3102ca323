"""Resources: a program's files and a run's summary, read by URI.

`expd://programs/{name}/{file}` (program.md, program.toml, measure.sh, build.sh) and
`expd://runs/{program}/{stamp}/summary.md` (the `expd report` Markdown) and `…/status.json`.
Listing them names every existing program file and run of the repository.
"""

from __future__ import annotations

from typing import Any

import msgspec
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp_types import Resource

from shared import runs
from shared.cli import report
from shared.errors import UserError
from shared.paths import RepoPaths, check_program_name, find_repo_root
from shared.status import build_status

PROGRAM_FILES = ("program.md", "program.toml", "measure.sh", "build.sh")
PROGRAM_URI = "expd://programs/{name}/{file}"
SUMMARY_URI = "expd://runs/{program}/{stamp}/summary.md"
STATUS_URI = "expd://runs/{program}/{stamp}/status.json"


def program_file(name: str, file: str) -> str:
    """One file of a program, as text."""
    if file not in PROGRAM_FILES:
        raise ResourceNotFoundError(f"{file!r} is not a program file ({', '.join(PROGRAM_FILES)})")
    try:
        path = RepoPaths(find_repo_root()).program(check_program_name(name)).dir / file
        return path.read_text(encoding="utf-8", errors="replace")
    except (UserError, OSError) as exc:
        raise ResourceNotFoundError(f"no {file} for program {name!r}: {exc}") from None


def _run(program: str, stamp: str) -> runs.RunRef:
    try:
        return runs.resolve(f"{program}/{stamp}", kind="program")
    except UserError as exc:
        raise ResourceNotFoundError(str(exc)) from None


def run_summary(program: str, stamp: str) -> str:
    """A run's report in Markdown: status, chart, results (and finalize's summary)."""
    return report.markdown(report.load(_run(program, stamp)))


def run_status(program: str, stamp: str) -> str:
    """A run's status as `expd status --json` prints it."""
    ref = _run(program, stamp)
    status = build_status(ref.paths, run_id=ref.run_id)
    return msgspec.json.format(msgspec.json.encode(status), indent=2).decode()


def concrete() -> list[Resource]:
    """Every program file and program run of the repository (nothing outside one)."""
    try:
        root = find_repo_root()
    except UserError:
        return []
    repo = RepoPaths(root)
    out: list[Resource] = []
    for name in repo.program_names():
        for file in PROGRAM_FILES:
            if (repo.program(name).dir / file).is_file():
                uri = PROGRAM_URI.format(name=name, file=file)
                out.append(Resource(uri=uri, name=f"{name}/{file}", mime_type="text/plain"))
    for ref in runs.repo_runs(root, kind="program"):
        uri = SUMMARY_URI.format(program=ref.program, stamp=ref.stamp)
        out.append(Resource(uri=uri, name=f"{ref.run_id} summary", mime_type="text/markdown"))
    return out


def register(server: Any) -> None:
    """Add the resource templates to `server` (an MCPServer)."""
    server.resource(
        PROGRAM_URI,
        name="program file",
        description="a program's file: program.md, program.toml, measure.sh or build.sh",
        mime_type="text/plain",
    )(program_file)
    server.resource(
        SUMMARY_URI,
        name="run summary",
        description="a run's report in Markdown: status, chart, results",
        mime_type="text/markdown",
    )(run_summary)
    server.resource(
        STATUS_URI,
        name="run status",
        description="a run's status (as get_run_status)",
        mime_type="application/json",
    )(run_status)
