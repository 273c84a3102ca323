"""`expd status` of a bakeoff run: its state, its liveness and per-variant progress."""

from __future__ import annotations

import time

import msgspec

from shared import codec
from shared.bakeoffs.grading import load_graded
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.progress import VariantProgress, overall_eta, variant_progress
from shared.bakeoffs.schema import BakeoffManifest, BakeoffState, RunningAttempt
from shared.errors import ContractError
from shared.housekeeping import cleaned_since
from shared.liveness import Liveness, probe
from shared.schema import CONFINED


class BakeoffStatus(msgspec.Struct, kw_only=True):
    """`expd status --json` of a bakeoff run (`kind` tells it from a program run's)."""

    run_id: str
    kind: str = "bakeoff"
    name: str
    phase: str
    detail: str
    message: str
    daemon: Liveness
    pid: int | None
    heartbeat_age: float | None
    total: int
    done: int
    passed: int
    failed: int
    errors: int
    timeouts: int
    cancelled: int
    pending_marks: int
    running: list[RunningAttempt]
    variants: list[VariantProgress]
    eta_s: float | None
    termination_reason: str | None
    cost_usd: float
    tokens: int
    max_cost_usd: float | None
    started_at: float | None
    updated_at: float | None
    resumes: int
    repo: str | None
    run_dir: str
    sandbox: str | None
    confined: bool
    cleaned_at: float | None = None
    """When `expd clean` gave the run's disk back (None: never cleaned)."""
    disk_bytes: int | None = None
    """The run's disk use (run directory and trees): measured by `expd list` only, else None."""

    @property
    def program(self) -> str:
        """What listings of runs call the run's owner."""
        return self.name


def read_state(paths: BakeoffRunPaths) -> BakeoffState | None:
    return codec.read_optional(paths.state_json, BakeoffState)


def build_bakeoff_status(
    paths: BakeoffRunPaths, *, run_id: str | None = None, now: float | None = None
) -> BakeoffStatus:
    now = time.time() if now is None else now
    state = read_state(paths)
    manifest = codec.read_optional(paths.run_json, BakeoffManifest)
    if state is None and manifest is None:
        raise ContractError(f"{paths.dir}: not an expd run directory (no run.json or state.json)")
    st = state or BakeoffState()
    mf = manifest or BakeoffManifest()
    live = probe(paths, state, now)  # type: ignore[arg-type]  # reads .phase only
    records = load_graded(paths)
    running: dict[str, int] = {}
    for attempt in st.running:
        running[attempt.variant] = running.get(attempt.variant, 0) + 1
    rows = variant_progress(mf.spec, records, running)
    matrix = [r for r in records if r.replay_of is None]
    count = {
        s: sum(1 for r in matrix if r.status == s)
        for s in ("passed", "failed", "error", "timeout", "cancelled")
    }
    return BakeoffStatus(
        run_id=run_id
        or mf.run_id
        or st.run_id
        or f"{paths.dir.parent.parent.name}/{paths.dir.name}",
        name=mf.name or st.name or paths.dir.parent.parent.name,
        phase=st.phase,
        detail=st.detail,
        message=st.message,
        daemon=live.daemon,
        pid=live.pid,
        heartbeat_age=live.heartbeat_age,
        total=mf.spec.total() or st.total,
        done=len(matrix) - count["cancelled"],
        passed=count["passed"],
        failed=count["failed"],
        errors=count["error"],
        timeouts=count["timeout"],
        cancelled=count["cancelled"],
        pending_marks=sum(1 for r in records for c in r.criteria if c.passed is None),
        running=st.running,
        variants=rows,
        eta_s=None if live.daemon == "finished" else overall_eta(rows, mf.spec.concurrency),
        termination_reason=st.termination_reason,
        cost_usd=st.cost_usd,
        tokens=st.tokens,
        max_cost_usd=mf.spec.max_cost_usd,
        started_at=st.started_at or mf.created_at or None,
        updated_at=st.updated_at or None,
        resumes=st.resumes,
        repo=mf.repo or None,
        run_dir=str(paths.dir),
        sandbox=st.sandbox or mf.sandbox or None,
        confined=(st.sandbox or mf.sandbox) in CONFINED,
        cleaned_at=cleaned_since(paths.dir, st.updated_at),
    )
