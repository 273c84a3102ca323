"""Program tools: list, show, create, update, validate.

Reads use `shared` only (as `expd list` does); `validate_measurement` imports the daemon's
`validate`, the code behind `expd validate`, inside the call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from pydantic import Field

from shared.atomic import write_atomic
from shared.cli.mcp_server.registry import tool
from shared.errors import UserError
from shared.listing import (
    BakeoffListing,
    ProgramListing,
    UnreadableRun,
    bakeoff_listing,
    program_listing,
)
from shared.locking import is_locked
from shared.paths import ProgramPaths, RepoPaths, check_program_name, find_repo_root
from shared.programs import load_program, parse_duration, parse_program, scaffold
from shared.schema import AGENT_KINDS
from shared.status import StatusReport

ProgramName = Annotated[str, Field(description="the program's name (.expd/programs/NAME)")]
FILES = ("program.md", "program.toml", "measure.sh", "build.sh")


class Programs(msgspec.Struct, kw_only=True):
    """`expd list --json`, under `programs`: each program (`kind` program) and bakeoff (`kind`
    bakeoff) of the repository with its runs' statuses, oldest first."""

    programs: list[ProgramListing | BakeoffListing]


class Limits(msgspec.Struct, kw_only=True):
    """What bounds a run's time and cost (state these before starting one)."""

    max_experiments: int
    max_consecutive_discards: int
    max_cost_usd: float | None
    """None: no budget (say so: the agent's cost is then bounded only by the experiments)."""
    agent_timeout_s: float
    """The longest one agent turn may take."""
    measure_timeout_s: float
    build_timeout_s: float
    policy: str
    max_measure_runs: int
    """Measurements per decision at most (`max_runs` of sequential, `repeats` of fixed)."""


class Calibrated(msgspec.Struct, kw_only=True):
    """The last `validate_measurement` of the program (calibration.json), if any."""

    usable: bool | None = None
    reason: str | None = None
    per_run_s: float | None = None
    """The median time of one measurement."""
    created_at: float | None = None
    commit: str | None = None


class ProgramDetail(msgspec.Struct, kw_only=True):
    """One program: its files, its settings and its runs."""

    program: str
    dir: str
    error: str | None = None
    """Why program.toml cannot be used, or None."""
    metric: str | None = None
    direction: str | None = None
    agent: str | None = None
    model: str | None = None
    limits: Limits | None = None
    calibration: Calibrated | None = None
    files: dict[str, str]
    """program.md, program.toml, measure.sh and build.sh (those that exist), as text."""
    runs: list[StatusReport | UnreadableRun] = []
    """Each run's status (as get_run_status), oldest first."""


class Calibration(msgspec.Struct, kw_only=True):
    """`expd validate NAME --json` (HEAD measured `runs` times), plus the warnings the CLI prints
    on stderr."""

    program: str
    commit: str
    created_at: float
    file_digests: dict[str, str]
    metric: str
    runs: int
    samples: list[float]
    durations: list[float]
    per_run_s: float | None
    build_s: float | None
    warmup: float | None
    noise: dict[str, Any]
    usable: bool
    """False: do not start a run; tell the user `reason`."""
    reason: str
    suggested: dict[str, Any]
    warnings: list[str] = []


def repo_root() -> Path:
    return find_repo_root()


def program_paths(name: str) -> ProgramPaths:
    """An existing program's paths; a clear error for an unknown one."""
    paths = RepoPaths(repo_root()).program(check_program_name(name))
    if not paths.dir.is_dir():
        load_program(paths)  # its error, the one `expd start` and `validate` print
    return paths


def _calibration(paths: ProgramPaths) -> Calibrated | None:
    try:
        return msgspec.json.decode((paths.dir / "calibration.json").read_bytes(), type=Calibrated)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def detail(name: str) -> ProgramDetail:
    paths = program_paths(name)
    files = {}
    for file in FILES:
        path = paths.dir / file
        if path.is_file():
            files[file] = path.read_text(encoding="utf-8", errors="replace")
    listed = next(p for p in program_listing(repo_root()) if p.program == name)
    out = ProgramDetail(
        program=name, dir=str(paths.dir), files=files, runs=list(listed.runs), error=listed.error
    )
    out.calibration = _calibration(paths)
    if listed.error is None:
        try:
            config = load_program(paths)
        except UserError as exc:  # e.g. no measurement at all
            out.error = str(exc)
            return out
        decide = config.decide
        out.metric, out.direction = config.metric, config.direction
        out.agent, out.model = config.agent.kind, config.agent.model
        out.limits = Limits(
            max_experiments=config.loop.max_experiments,
            max_consecutive_discards=config.loop.max_consecutive_discards,
            max_cost_usd=config.loop.max_cost_usd,
            agent_timeout_s=parse_duration(config.agent.timeout),
            measure_timeout_s=parse_duration(config.measure.timeout),
            build_timeout_s=parse_duration(config.measure.build_timeout),
            policy=decide.policy,
            # `[decide] max_runs` unset means 12 (DecideConfig)
            max_measure_runs=decide.repeats if decide.policy == "fixed" else decide.max_runs or 12,
        )
    return out


@tool(Programs, read_only=True)
def list_programs() -> Programs:
    """The programs and bakeoffs of the repository, each with its runs' statuses (like
    `expd list --json`)."""
    root = repo_root()
    return Programs(programs=[*program_listing(root), *bakeoff_listing(root)])


@tool(ProgramDetail, read_only=True)
def get_program(name: ProgramName) -> ProgramDetail:
    """One program: program.md, program.toml, measure.sh (and build.sh), its settings, the limits
    that bound a run's time and cost, its last calibration, and its runs."""
    return detail(name)


@tool(ProgramDetail)
def create_program(
    name: ProgramName,
    metric: Annotated[str, Field(description="the metric field the measurement prints")],
    direction: Annotated[Literal["lower", "higher"], Field(description="which way is better")],
    measure: Annotated[
        str | None, Field(description="the measurement command (written into measure.sh)")
    ] = None,
    agent: Annotated[
        Literal[AGENT_KINDS], Field(description="the agent kind")  # type: ignore[valid-type]
    ] = "command",
    model: Annotated[str | None, Field(description="the agent's model")] = None,
    program_md: Annotated[
        str | None,
        Field(
            description="program.md: the goal, files in scope, what is off-limits (default: a "
            "template to edit)"
        ),
    ] = None,
) -> ProgramDetail:
    """Create a program like `expd init` (.expd/programs/NAME with program.md, measure.sh,
    program.toml); refuses to overwrite one. Edit its files with update_program, then
    validate_measurement."""
    paths = scaffold(
        RepoPaths(repo_root()),
        name,
        measure=measure,
        metric=metric,
        direction=direction,
        agent=agent,
        model=model,
    )
    if program_md is not None:
        write_atomic(paths.md, program_md.encode())
    return detail(name)


@tool(ProgramDetail, idempotent=True)
def update_program(
    name: ProgramName,
    program_md: Annotated[str | None, Field(description="the new program.md")] = None,
    program_toml: Annotated[
        str | None, Field(description="the new program.toml (checked strictly before writing)")
    ] = None,
    measure_sh: Annotated[str | None, Field(description="the new measure.sh")] = None,
    build_sh: Annotated[str | None, Field(description="the new build.sh ('' removes it)")] = None,
) -> ProgramDetail:
    """Replace some of a program's files. program.toml is checked as `expd start` checks it
    (unknown keys are errors) and nothing is written if it is invalid; refused while a run of the
    program is active (the daemon refuses to measure changed program files)."""
    paths = program_paths(name)
    if all(v is None for v in (program_md, program_toml, measure_sh, build_sh)):
        raise UserError("nothing to update: give program_md, program_toml, measure_sh or build_sh")
    if is_locked(paths.active_lock):
        raise UserError(f"program {name} has an active run: stop it before changing its files")
    if program_toml is not None:
        parse_program(program_toml, source=paths.toml)  # strict, as `expd start` reads it
        write_atomic(paths.toml, program_toml.encode())
    if program_md is not None:
        write_atomic(paths.md, program_md.encode())
    for path, text in ((paths.measure_sh, measure_sh), (paths.build_sh, build_sh)):
        if text == "" and path == paths.build_sh:
            path.unlink(missing_ok=True)
        elif text is not None:
            write_atomic(path, text.encode())
            path.chmod(0o755)
    return detail(name)


@tool(Calibration)
def validate_measurement(
    name: ProgramName,
    runs: Annotated[int, Field(ge=2, le=100, description="measurements of HEAD")] = 10,
    progress: Callable[[int, int, str], None] | None = None,
) -> Calibration:
    """Measure HEAD `runs` times in a scratch tree, like `expd validate`: the noise (CV), outliers,
    the time per run and suggested [decide] settings. Call it before start_run: when `usable` is
    false, do not start; tell the user `reason`. With a progress token, each step (build,
    warm-up, every run with its value) is a progress notification."""
    paths = program_paths(name)
    load_program(paths)  # a clear error before the daemon import

    from daemon.commands.validate import unprotected
    from daemon.commands.validate import validate as calibrate

    root = repo_root()
    result = msgspec.convert(calibrate(root, name, runs, progress), Calibration)
    result.warnings = unprotected(root, name) if result.usable else []
    return result
