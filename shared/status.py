"""The status of one run, from its small files only.

It reads `state.json`, `run.json` and `daemon.json` and probes the lock, and never reads
`results.jsonl`: `expd status` costs the same with ten results or ten thousand.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared import codec
from shared.arms import ArmStatus, arm_status
from shared.errors import ContractError
from shared.housekeeping import cleaned_since
from shared.liveness import Liveness, probe
from shared.paths import RunPaths
from shared.schema import CONFINED, RunManifest, RunState

EXIT_RUNNING = 0
EXIT_NOT_RUNNING = 3
EXIT_HUNG = 4

ACTIVE = frozenset({"running", "starting", "hung"})
"""Liveness values where a daemon process still holds the run."""


def improvement_pct(baseline: float | None, best: float | None, direction: str) -> float | None:
    """Signed so that positive is better, relative to |baseline|; None when it has no meaning."""
    if baseline is None or best is None or baseline == 0:
        return None
    change = (best - baseline) / abs(baseline) * 100.0
    return -change if direction == "lower" else change


def headline_improvement(state: RunState) -> float | None:
    """The run's estimated improvement (`state.improvement_pct`), or for a run that predates the
    estimate the one computed from `baseline` and `best`."""
    if state.improvement_pct is not None:
        return state.improvement_pct
    return improvement_pct(state.baseline, state.best, state.direction)


def change_pct(value: float | None, baseline: float | None) -> float | None:
    """The raw relative change of a metric (the sign follows the metric, not "better")."""
    if value is None or baseline is None or baseline == 0:
        return None
    return (value - baseline) / abs(baseline) * 100.0


class InFlightStatus(msgspec.Struct, kw_only=True):
    """The experiment in flight as `status --json` shows it (no commit or process group)."""

    experiment: int
    stage: str
    started_at: float


class LaneStatus(msgspec.Struct, kw_only=True):
    """One lane in `expd status --json` (`lanes`)."""

    lane: int
    phase: str
    experiment: int | None
    since: float | None
    node: str
    paused: str = ""


class StatusReport(msgspec.Struct, kw_only=True):
    """`expd status --json`: one run from its small files. Fields in output order; every client
    (CLI, TUI home, reports) reads these attributes, never string keys."""

    run_id: str
    program: str
    phase: str
    detail: str
    message: str
    drift: str
    drift_at_experiment: int | None
    noise: str
    daemon: Liveness
    pid: int | None
    heartbeat_age: float | None
    experiment: int
    max_experiments: int
    in_flight: InFlightStatus | None
    keeps: int
    discards: int
    crashes: int
    measurement_failures: int
    consecutive_non_keeps: int
    results_count: int
    baseline: float | None
    best: float | None
    best_experiment: int | None
    improvement_pct: float | None
    direction: str
    metric: str
    termination_reason: str | None
    cost_usd: float
    tokens: int
    started_at: float | None
    updated_at: float | None
    resumes: int
    agent: str
    model: str | None
    worktree: str | None
    branch: str | None
    repo: str | None
    """The repository (from run.json; `status --all` falls back to the run index's)."""
    run_dir: str
    sandbox: str | None = None
    """What confines the agent: bwrap, landlock or none (None: the run predates the record)."""
    confined: bool = False
    measure_sandbox: str | None = None
    """What confines the build and the measurement (as `sandbox`; None: the run predates it)."""
    arms: list[ArmStatus] = []
    """Per-arm outcomes (empty: the program has no arms)."""
    lanes: list[LaneStatus] = []
    """What each lane is doing (empty: the run has one lane)."""
    cleaned_at: float | None = None
    """When `expd clean` gave the run's disk back (None: never cleaned)."""
    disk_bytes: int | None = None
    """The run's disk use (run directory and trees): measured by `expd list` only, else None."""
    best_ci: list[float] | None = None
    """95 % interval `[low, high]` of `best`, the incumbent's estimated value (None: no interval,
    e.g. right after a keep or in an older run)."""
    improvement_ci: list[float] | None = None
    """95 % interval of `improvement_pct`, in percent."""
    best_runs: int = 0
    """The incumbent's runs behind `best` (not the ones that selected it; 0 right after a keep)."""
    baseline_runs: int = 0
    """The base commit's runs behind `baseline`."""


def read_state(paths: RunPaths) -> RunState | None:
    """`state.json`, or None before the daemon first wrote it; unreadable → ContractError."""
    return codec.read_optional(paths.state_json, RunState)


def build_status(
    paths: RunPaths, *, run_id: str | None = None, now: float | None = None
) -> StatusReport:
    """The `expd status --json` contract for one run; ContractError if it is not a run."""
    now = time.time() if now is None else now
    state = read_state(paths)
    manifest = codec.read_optional(paths.run_json, RunManifest)
    if state is None and manifest is None:
        raise ContractError(f"{paths.dir}: not an expd run directory (no run.json or state.json)")
    st = state or RunState(phase="starting")
    mf = manifest or RunManifest()
    live = probe(paths, state, now)
    if not run_id:
        run_id = mf.run_id or st.run_id or f"{paths.dir.parent.parent.name}/{paths.dir.name}"
    program = mf.program or st.program or run_id.split("/", 1)[0]
    config = mf.config or {}
    direction = st.direction if state is not None else str(config.get("direction", "lower"))
    metric = st.metric or str(config.get("metric", ""))
    in_flight = st.in_flight
    return StatusReport(
        run_id=run_id,
        program=program,
        phase=st.phase,
        detail=st.detail,
        message=st.message,
        drift=st.drift,
        drift_at_experiment=st.drift_at_experiment,
        noise=st.noise,
        daemon=live.daemon,
        pid=live.pid,
        heartbeat_age=live.heartbeat_age,
        experiment=st.experiment,
        max_experiments=st.max_experiments if state is not None else mf.max_experiments,
        in_flight=None
        if in_flight is None
        else InFlightStatus(
            experiment=in_flight.experiment,
            stage=in_flight.stage,
            started_at=in_flight.started_at,
        ),
        keeps=st.keeps,
        discards=st.discards,
        crashes=st.crashes,
        measurement_failures=st.measurement_failures,
        consecutive_non_keeps=st.consecutive_non_keeps,
        results_count=st.results_count,
        baseline=st.baseline,
        best=st.best,
        best_experiment=st.best_experiment,
        improvement_pct=headline_improvement(msgspec.structs.replace(st, direction=direction)),
        direction=direction,
        metric=metric,
        termination_reason=st.termination_reason,
        cost_usd=st.cost_usd,
        tokens=st.tokens,
        started_at=st.started_at or mf.created_at or None,
        updated_at=st.updated_at or None,
        resumes=st.resumes,
        agent=mf.agent_kind,
        model=mf.agent_model,
        worktree=mf.worktree or None,
        branch=mf.branch or None,
        repo=mf.repo or None,
        run_dir=str(paths.dir),
        sandbox=st.sandbox or mf.sandbox or None,
        confined=(st.sandbox or mf.sandbox) in CONFINED,
        measure_sandbox=st.measure_sandbox or mf.measure_sandbox or None,
        arms=arm_status(st.arm_stats),
        lanes=[
            LaneStatus(
                lane=lane.lane,
                phase=lane.phase,
                experiment=lane.experiment,
                since=lane.since or None,
                node=lane.node,
                paused=lane.paused,
            )
            for lane in st.lanes
        ],
        cleaned_at=cleaned_since(paths.dir, st.updated_at),
        best_ci=st.best_ci,
        improvement_ci=st.improvement_ci,
        best_runs=st.best_runs,
        baseline_runs=len(st.baseline_samples),
    )


def exit_code(status: Any) -> int:
    """`expd status` exit code: 0 running, 3 not running (finished or dead), 4 unresponsive."""
    daemon = status.daemon
    if daemon == "hung":
        return EXIT_HUNG
    return EXIT_RUNNING if daemon in ACTIVE else EXIT_NOT_RUNNING


def run_status(paths: RunPaths, *, run_id: str | None = None, kind: str = "program") -> Any:
    """The status of a program run (StatusReport) or of a bakeoff run (BakeoffStatus): both have
    `run_id`, `phase`, `daemon`, `pid`, `message`, `termination_reason`, `repo`, `run_dir`."""
    if kind == "bakeoff":
        from shared.bakeoffs.paths import BakeoffRunPaths
        from shared.bakeoffs.status import build_bakeoff_status

        return build_bakeoff_status(BakeoffRunPaths(paths.dir), run_id=run_id)
    return build_status(paths, run_id=run_id)
