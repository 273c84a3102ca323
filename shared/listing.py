"""The programs and bakeoffs of a repository and their runs (the `expd list --json` contract, and
the TUI home).

Each program run is read like `expd status` (small files only), so listing a repository costs the
same however many results its runs hold; a bakeoff run's status reads its attempts (one line each).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from shared import runs
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths, bakeoff_names, bakeoffs_dir
from shared.bakeoffs.status import BakeoffStatus, build_bakeoff_status
from shared.errors import ContractError, UserError
from shared.footprint import run_disk_bytes, tree_names
from shared.paths import RepoPaths
from shared.status import StatusReport, build_status


class UnreadableRun(msgspec.Struct, kw_only=True):
    """A run whose files cannot be read: its id and why, in place of its status."""

    run_id: str
    error: str


class ProgramListing(msgspec.Struct, kw_only=True):
    """One program: its configuration summary (None where program.toml is invalid) and runs."""

    kind: str = "program"
    program: str
    dir: str
    error: str | None = None
    """Why program.toml cannot be used (missing or invalid), or None."""
    metric: str | None = None
    direction: str | None = None
    agent: str | None = None
    runs: list[StatusReport | UnreadableRun] = msgspec.field(default_factory=list)
    """Oldest first."""


def program_listing(root: Path, *, disk: bool = False) -> list[ProgramListing]:
    """Every program of the repository with its configuration summary and its runs' statuses;
    with `disk`, each run's disk use too (a walk of its files: `expd list`, not every refresh)."""
    from shared.programs import parse_program  # tomllib: only `list` and the home screen need it

    repo = RepoPaths(root)
    names = set(repo.program_names())
    if repo.programs_dir.is_dir():
        names |= {p.name for p in repo.programs_dir.iterdir() if (p / "runs").is_dir()}
    out = []
    trees = tree_names(root) if disk else {}
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
                status = build_status(ref.paths, run_id=ref.run_id)
                if disk:
                    status.disk_bytes = run_disk_bytes(
                        ref.paths.dir, root, ref.program, ref.stamp, names=trees
                    )
                entry.runs.append(status)
            except ContractError as exc:
                entry.runs.append(UnreadableRun(run_id=ref.run_id, error=str(exc)))
        out.append(entry)
    return out


class BakeoffListing(msgspec.Struct, kw_only=True):
    """One bakeoff: the size of its matrix (None where bakeoff.toml is invalid) and its runs."""

    kind: str = "bakeoff"
    bakeoff: str
    dir: str
    error: str | None = None
    """Why bakeoff.toml cannot be used (missing or invalid), or None."""
    tasks: int | None = None
    variants: list[str] | None = None
    attempts: int | None = None
    """Per task × variant."""
    runs: list[BakeoffStatus | UnreadableRun] = msgspec.field(default_factory=list)
    """Oldest first."""


def bakeoff_listing(root: Path, *, disk: bool = False) -> list[BakeoffListing]:
    """Every bakeoff of the repository (with a bakeoff.toml or runs) and its runs' statuses;
    with `disk`, each run's disk use too."""
    from shared.bakeoffs.config import parse_bakeoff  # tomllib: only `list` and the home screen

    names = set(bakeoff_names(root))
    where = bakeoffs_dir(root)
    if where.is_dir():
        names |= {p.name for p in where.iterdir() if (p / "runs").is_dir()}
    out = []
    trees = tree_names(root) if disk else {}
    for name in sorted(names):
        paths = BakeoffPaths(root, name)
        entry = BakeoffListing(bakeoff=name, dir=str(paths.dir))
        try:
            if not paths.toml.is_file():
                raise FileNotFoundError(paths.toml)
            spec = parse_bakeoff(paths)
            entry.tasks, entry.attempts = len(spec.tasks), spec.attempts
            entry.variants = [v.id for v in spec.variants]
        except FileNotFoundError:
            entry.error = f"{paths.toml}: missing"
        except UserError as exc:
            entry.error = str(exc)
        for ref in runs.repo_runs(root, name, kind="bakeoff"):
            try:
                status = build_bakeoff_status(BakeoffRunPaths(ref.paths.dir), run_id=ref.run_id)
                if disk:
                    status.disk_bytes = run_disk_bytes(
                        ref.paths.dir, root, ref.program, ref.stamp, ref.kind, trees
                    )
                entry.runs.append(status)
            except ContractError as exc:
                entry.runs.append(UnreadableRun(run_id=ref.run_id, error=str(exc)))
        out.append(entry)
    return out
