"""`expd validate`: how noisy is the measurement, and what settings can it support?

It measures the committed HEAD in a throw-away tree checked out by expd (the user's checkout and
repository are never touched): one build, one warm-up run that is not counted, then N runs. The
result is stored in `calibration.json` beside the program, where `expd start` picks it up while it is recent and the
program files are unchanged, so the run's baseline and first decisions start from a real noise
estimate instead of a handful of runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec

from daemon.ops.confine import for_measure
from daemon.ops.git.eval_tree import scratch_tree
from daemon.ops.git.lookup import repo_head, tracked_files
from daemon.ops.measure import Measurer, Sample
from daemon.ops.sandbox import Sandbox, SandboxUnavailable
from daemon.policies.noise import (
    DEFAULT_MAX_RUNS,
    USABLE_CV,
    detectable_effect,
    noise_of,
    runs_needed,
)
from shared.atomic import write_atomic
from shared.errors import UserError
from shared.paths import ProgramPaths, RepoPaths, check_program_name, find_repo_root
from shared.programs import file_digests, load_program
from shared.protect import Protected, unprotected_mentions
from shared.schema import ProgramConfig

CALIBRATION_FILE = "calibration.json"
MAX_AGE_S = 24 * 3600
"""`expd start` reuses a calibration younger than this (machines and loads change)."""
MAX_SUGGESTED_RUNS = 50


def calibration_path(program: ProgramPaths) -> Path:
    return program.dir / CALIBRATION_FILE


def recent_calibration(program: ProgramPaths, now: float | None = None) -> dict[str, Any]:
    """The stored calibration if it is usable for a run starting now, else {}.

    Same program files (any commit: the code under test changes, the evaluator must not) and
    younger than a day.
    """
    now = time.time() if now is None else now
    try:
        data = msgspec.json.decode(calibration_path(program).read_bytes())
    except (OSError, msgspec.DecodeError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("noise"), dict) or not data["noise"]:
        return {}
    if data.get("file_digests") != file_digests(program):
        return {}
    created = data.get("created_at")
    if not isinstance(created, int | float) or not 0 <= now - created < MAX_AGE_S:
        return {}
    return data


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so the worktree is cleaned up either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


Progress = Callable[[int, int, str], None]
"""Told (steps done, steps in all, what was just done) after the build, the warm-up and each run."""


async def _measure_series(
    measurer: Measurer, runs: int, progress: Progress | None = None
) -> tuple[Sample, Sample, list[Sample]]:
    total = runs + 2
    tell = progress or (lambda done, total, message: None)
    build = await measurer.build()
    if not build.ok:
        tell(total, total, f"build failed: {build.error}")
        return build, Sample(ok=False, error="not run"), []
    tell(1, total, f"build done ({build.duration:.1f} s)")
    warmup = await measurer.once()
    tell(2, total, f"warm-up: {_said(measurer, warmup)}")
    samples: list[Sample] = []
    for n in range(1, runs + 1):
        sample = await measurer.once()
        samples.append(sample)
        tell(2 + n, total, f"run {n} of {runs}: {_said(measurer, sample)}")
        if not sample.ok:
            break
    return build, warmup, samples


def _said(measurer: Measurer, sample: Sample) -> str:
    if not sample.ok:
        return f"failed: {sample.error}"
    value = sample.metrics.get(measurer.config.metric)
    shown = "missing" if value is None else f"{value:g}"
    return f"{measurer.config.metric} = {shown} ({sample.duration:.1f} s)"


def _round_up(value: float, step: float = 0.005) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 4)


def assess(
    config: ProgramConfig, values: list[float], failure: str | None
) -> tuple[bool, str, dict[str, Any], dict[str, Any]]:
    """(usable, one-line reason, noise, suggested settings) from the measured values."""
    decide = config.decide
    if failure is not None:
        return False, failure, {}, {}
    noise = noise_of(values)
    cv = noise.decision_cv
    max_runs = decide.max_runs or DEFAULT_MAX_RUNS
    smallest = detectable_effect(cv, max_runs, alpha=decide.alpha, beta=decide.beta)
    needed = runs_needed(cv, decide.min_effect, alpha=decide.alpha, beta=decide.beta)
    suggested = {
        "min_effect": max(decide.min_effect, _round_up(smallest)),
        "max_runs": min(max(needed, decide.min_runs, 2), MAX_SUGGESTED_RUNS),
        "detectable_effect": smallest,
    }
    if cv >= USABLE_CV:
        reason = (
            f"too noisy: CV {cv:.1%} (≥ {USABLE_CV:.0%}); no sensible number of runs separates "
            "a real gain from noise — steady the measurement (fewer background jobs, more work "
            "per run, a median inside measure.sh)"
        )
        return False, reason, msgspec.to_builtins(noise), suggested
    if smallest > decide.min_effect:
        reason = (
            f"usable, but CV {cv:.1%} hides gains below ~{smallest:.1%} within max_runs="
            f"{max_runs}: set min_effect ≥ {suggested['min_effect']:g} or max_runs ≥ "
            f"{suggested['max_runs']}"
        )
    else:
        reason = (
            f"usable: CV {cv:.1%} resolves gains of {decide.min_effect:.1%} within {max_runs} runs"
        )
    return True, reason, msgspec.to_builtins(noise), suggested


def unprotected(repo_root: Path, name: str) -> list[str]:
    """Warnings: tracked files the measure or build command names that `[measure] protect` does
    not cover — the agent could change what measures it."""
    repo = RepoPaths(find_repo_root(repo_root))
    program = repo.program(check_program_name(name))
    config = load_program(program)
    texts = [config.measure.command or "", config.measure.build or ""]
    for script in (program.measure_sh, program.build_sh):
        if script.exists():
            texts.append(script.read_text(errors="replace"))
    tracked = tracked_files(repo.root, repo_head(repo.root))
    names = unprotected_mentions(texts, tracked, Protected(config.measure.protect))
    return [
        f"the measurement names {n}, which is tracked and not protected: the agent may change "
        "it (add it to [measure] protect if it is part of the benchmark)"
        for n in names
    ]


def measure_sandbox(
    config: ProgramConfig,
    repo: Path,
    tree: Path,
    program: ProgramPaths,
    private: tuple[Path, ...] = (),
) -> Sandbox:
    """The confinement of a measurement in the temporary tree `tree` (`[measure] sandbox`)."""
    try:
        return for_measure(
            config.measure, repo=repo, tree=tree, program_dir=program.dir, private=private
        )
    except (SandboxUnavailable, OSError) as exc:
        raise UserError(str(exc)) from None


def validate(
    repo_root: Path, name: str, runs: int = 10, progress: Progress | None = None
) -> dict[str, Any]:
    """Calibrate program `name` of the repository at `repo_root`; stores and returns the result.
    `progress` hears of each step as it ends (a validation of slow benchmarks takes minutes)."""
    if runs < 2:
        raise UserError("--runs must be at least 2 (a spread needs two runs)")
    repo = RepoPaths(find_repo_root(repo_root))
    program = repo.program(check_program_name(name))
    config = load_program(program)
    digests = file_digests(program)
    commit = repo_head(repo.root)
    started = time.time()
    with sigterm_interrupts(), scratch_tree(repo.root, commit) as tree:
        worktree = tree.path
        env = {
            **os.environ,
            "EXPD_WORKTREE": str(worktree),
            "EXPD_PROGRAM_DIR": str(program.dir),
        }
        box = measure_sandbox(config, repo.root, worktree, program)
        measurer = Measurer(config=config, program=program, worktree=worktree, env=env, sandbox=box)
        build, warmup, samples = anyio.run(_measure_series, measurer, runs, progress)
    values = [s.metrics[config.metric] for s in samples if s.ok]
    failure = None
    if not build.ok:
        failure = f"build failed: {build.error}"
    elif not samples or not samples[-1].ok:
        bad = samples[-1] if samples else warmup
        failure = f"measurement {len(samples)} of {runs} failed: {bad.error}"
    usable, reason, noise, suggested = assess(config, values, failure)
    durations = [s.duration for s in samples]
    result: dict[str, Any] = {
        "program": name,
        "commit": commit,
        "created_at": started,
        "file_digests": digests,
        "metric": config.metric,
        "runs": runs,
        "samples": values,
        "durations": durations,
        "per_run_s": statistics.median(durations) if durations else None,
        "build_s": build.duration,
        "warmup": warmup.metrics.get(config.metric) if warmup.ok else None,
        "noise": noise,
        "usable": usable,
        "reason": reason,
        "suggested": suggested,
    }
    write_atomic(calibration_path(program), msgspec.json.encode(result))
    return result
