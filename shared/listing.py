"""The programs of a repository and their runs (the `expd list --json` contract, and the TUI home).

Each run is read like `expd status` (small files only), so listing a repository costs the same
however many results its runs hold.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from shared import runs
from shared.errors import ContractError, UserError
from shared.paths import RepoPaths
from shared.status import StatusReport, build_status


class UnreadableRun(msgspec.Struct, kw_only=True):
    """A run whose files cannot be read: its id and why, in place of its status."""

    run_id: str
    error: str


class ProgramListing(msgspec.Struct, kw_only=True):
    """One program: its configuration summary (None where program.toml is invalid) and runs."""

    program: str
    dir: str
    error: str | None = None
    """Why program.toml cannot be used (missing or invalid), or None."""
    metric: str | None = None
    direction: str | None = None
    agent: str | None = None
    runs: list[StatusReport | UnreadableRun] = msgspec.field(default_factory=list)
    """Oldest first."""


def program_listing(root: Path) -> list[ProgramListing]:
    """Every program of the repository with its configuration summary and its runs' statuses."""
    from shared.programs import parse_program  # tomllib: only `list` and the home screen need it

    repo = RepoPaths(root)
    names = set(repo.program_names())
    if repo.programs_dir.is_dir():
        names |= {p.name for p in repo.programs_dir.iterdir() if (p / "runs").is_dir()}
    out = []
    for name in sorted(names):
        program = repo.program(name)
        entry = ProgramListing(program=name, dir=str(program.dir))
        try:
            config = parse_program(program.toml.read_text(), source=program.toml)
            entry.metric, entry.direction = config.metric, config.direction
            entry.agent = config.agent.kind
        except FileNotFoundError:
            entry.error = f"{program.toml}: missing"
        except UserError as exc:
            entry.error = str(exc)
        for ref in runs.repo_runs(root, name, kind="program"):
            try:
                entry.runs.append(build_status(ref.paths, run_id=ref.run_id))
            except ContractError as exc:
                entry.runs.append(UnreadableRun(run_id=ref.run_id, error=str(exc)))
        out.append(entry)
    return out
