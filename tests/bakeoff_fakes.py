"""Bakeoff run directories written straight from the contract's structs, for tests of readers
(CLI reports, status, the TUI) that need no daemon. The daemon's own tests run the real thing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from shared import codec
from shared.atomic import append_line, write_atomic
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import (
    AttemptRecord,
    BakeoffManifest,
    BakeoffSpec,
    BakeoffState,
    Criterion,
    CriterionResult,
    Mark,
    TaskSpec,
    VariantSpec,
)
from shared.schema import DiffStat

STAMP = "20261130-080000"


def spec(
    tasks: int = 3,
    variants: Iterable[str] = ("a", "b"),
    *,
    attempts: int = 1,
    criteria: list[Criterion] | None = None,
) -> BakeoffSpec:
    crit = criteria or [Criterion(type="test_pass", target="pytest -q")]
    return BakeoffSpec(
        attempts=attempts,
        concurrency=2,
        tasks=[
            TaskSpec(id=f"t{i:03d}", prompt=f"do task {i}", base="0" * 40, criteria=crit)
            for i in range(tasks)
        ],
        variants=[
            VariantSpec(id=v, agent={"kind": "command", "command": "true"}) for v in variants
        ],
    )


def make_run(
    repo: Path,
    the_spec: BakeoffSpec,
    *,
    name: str = "bk",
    stamp: str = STAMP,
    phase: str = "running",
) -> BakeoffRunPaths:
    """A run directory with its manifest and a state (no daemon: liveness says dead or finished)."""
    paths = BakeoffPaths(repo, name).run(stamp)
    paths.dir.mkdir(parents=True)
    run_id = f"{name}/{stamp}"
    manifest = BakeoffManifest(
        run_id=run_id,
        name=name,
        repo=str(repo),
        bakeoff_dir=str(BakeoffPaths(repo, name).dir),
        base_commit="0" * 40,
        created_at=time.time() - 60,
        spec=the_spec,
        sandbox="none",
    )
    write_atomic(paths.run_json, codec.encode(manifest))
    state = BakeoffState(
        run_id=run_id,
        name=name,
        phase=phase,
        total=the_spec.total(),
        started_at=manifest.created_at,
        updated_at=time.time(),
        termination_reason="finished" if phase == "complete" else None,
    )
    write_atomic(paths.state_json, codec.encode(state))
    return paths


def record(
    task: str,
    variant: str,
    status: str,
    *,
    attempt: int = 1,
    cost: float = 0.01,
    duration: float = 2.0,
    criteria: list[CriterionResult] | None = None,
    error: str | None = None,
    error_class: str | None = None,
    patch_files: list[str] | None = None,
    replay_of: str | None = None,
) -> AttemptRecord:
    if criteria is None:
        passed = status == "passed"
        criteria = (
            [CriterionResult(type="test_pass", target="pytest -q", passed=passed, details="")]
            if status in ("passed", "failed")
            else []
        )
    scored = [c for c in criteria if c.passed is not None]
    score = (
        sum(c.weight for c in scored if c.passed) / sum(c.weight for c in scored)
        if scored and status in ("passed", "failed")
        else (0.0 if status in ("error", "timeout") else None)
    )
    now = time.time()
    return AttemptRecord(
        task=task,
        variant=variant,
        attempt=attempt,
        status=status,
        score=score,
        criteria=criteria,
        cost_usd=cost,
        tokens=1000,
        duration_s=duration,
        base="0" * 40,
        commit="1" * 40 if patch_files else "0" * 40,
        changed=bool(patch_files),
        diff=DiffStat(files=patch_files or [], added=len(patch_files or []), removed=0),
        error=error,
        error_class=error_class,
        started_at=now - duration,
        finished_at=now,
        replay_of=replay_of,
    )


def append(paths: BakeoffRunPaths, *records: AttemptRecord) -> None:
    for r in records:
        append_line(paths.attempts, codec.encode(r) + b"\n", durable=False)


def mark(paths: BakeoffRunPaths, m: Mark) -> None:
    append_line(paths.marks, codec.encode(m) + b"\n", durable=False)


def write_attempt_files(
    paths: BakeoffRunPaths,
    task: str,
    variant: str,
    attempt: int = 1,
    *,
    log: str = "",
    patch: str = "",
) -> None:
    files = paths.attempt(task, variant, attempt)
    files.dir.mkdir(parents=True, exist_ok=True)
    files.agent_log.write_text(log)
    files.patch.write_text(patch)
