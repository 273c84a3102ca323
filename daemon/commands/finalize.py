"""`expd finalize`: replay a finished run's kept experiments onto its base as one review branch.

The replay happens in memory and the re-measurement in a temporary tree, so the user's checkout is
never touched; the branch is created only once every kept change applied cleanly and the final tree
was re-measured against the base with the run's own decision policy and confirmed the gain (or the
user insists with `--force`).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import msgspec

from daemon.commands.finalize_summary import Confirmation, Outcome, write_summary
from daemon.commands.validate import measure_sandbox, sigterm_interrupts
from daemon.ops.git.eval_tree import EvalTree, scratch_tree
from daemon.ops.git.lookup import (
    branch_exists,
    identity_env,
    resolve_commit,
    valid_branch_name,
)
from daemon.ops.git.replay import Conflict, create_branch, replay
from daemon.ops.measure import Measurer
from daemon.policies.base import Decision, Side
from daemon.policies.driver import drive
from daemon.policies.registry import make_policy
from shared import codec, seal
from shared.errors import UserError
from shared.liveness import probe
from shared.paths import ProgramPaths
from shared.runs import RunRef
from shared.schema import ProgramConfig, ResultRecord, RunManifest, RunState
from shared.tail import read_complete_lines


def _load(ref: RunRef) -> tuple[RunManifest, RunState | None, list[ResultRecord]]:
    manifest = codec.read(ref.paths.run_json, RunManifest)
    state = codec.read_optional(ref.paths.state_json, RunState)
    key = seal.load_key(ref.paths)  # only lines the daemon sealed, in a run that has a key
    records = [
        codec.decode(line, ResultRecord, source="results")
        for line in read_complete_lines(ref.paths.results)
        if key is None or seal.unseal(key, line) is not None
    ]
    return manifest, state, records


def _refuse_live(ref: RunRef, state: RunState | None) -> None:
    daemon = probe(ref.paths, state).daemon
    if daemon in ("running", "starting", "hung"):
        raise UserError(
            f"run {ref.run_id} is still running (daemon {daemon}): "
            f"stop it first with: expd stop {ref.run_id} --wait"
        )


def _chosen(ref: RunRef, kept: list[ResultRecord], exclude: list[int]) -> list[ResultRecord]:
    numbers = [r.experiment for r in kept]
    shown = ", ".join(map(str, numbers)) or "none"
    for n in exclude:
        if n not in numbers:
            raise UserError(
                f"--exclude {n}: experiment {n} is not a kept experiment of {ref.run_id} "
                f"(kept: {shown})"
            )
    chosen = [r for r in kept if r.experiment not in exclude]
    if not chosen:
        why = "all its kept experiments are excluded" if kept else "it kept no experiment"
        raise UserError(f"nothing to finalize in {ref.run_id}: {why}")
    return chosen


def _check_branch(repo: Path, name: str) -> None:
    if not valid_branch_name(name):
        raise UserError(f"invalid branch name {name!r}")
    if branch_exists(repo, name):
        raise UserError(f"branch {name} already exists (delete it or pass --branch NAME)")


def _commit_of(repo: Path, manifest: RunManifest, record: ResultRecord) -> str:
    """The experiment's commit, else its pinned ref (the record and the pin should agree)."""
    for candidate in (record.commit, f"refs/expd/{manifest.run_id}/{record.experiment:04d}"):
        if candidate and (commit := resolve_commit(repo, candidate)):
            return commit
    raise UserError(f"the commit of experiment {record.experiment} is missing from the repository")


def _replay(tree: EvalTree, base: str, chosen: list[ResultRecord], commits: list[str]) -> str:
    try:
        return replay(tree, base, commits)
    except Conflict as exc:
        record = chosen[exc.index]
        onto = ", ".join(str(r.experiment) for r in chosen[: exc.index]) or "none"
        raise UserError(
            f"experiment {record.experiment} ({record.description or 'no description'}) "
            f"conflicts in {', '.join(exc.files) or 'the worktree'} when replayed onto the base "
            f"with experiments {onto}: no branch created "
            f"(exclude it too with --exclude, or keep the one it depends on)"
        ) from None


async def _confirm(
    measurer: Measurer, tree: EvalTree, base: str, final: str, config: ProgramConfig
) -> Confirmation:
    """Measure the base as the pool, then let the policy judge the final tree against it."""
    policy = make_policy(config)

    async def switch(commit: str) -> str | None:
        await tree.checkout(commit)
        built = await measurer.build()
        return None if built.ok else f"build failed: {built.error}"

    if failure := await switch(base):
        return Confirmation("measurement_failure", f"base {failure}")
    pool: list[float] = []
    for _ in range(policy.baseline_runs()):
        sample = await measurer.once()
        if not sample.ok:
            return Confirmation("measurement_failure", f"base measurement failed: {sample.error}")
        pool.append(sample.metrics[config.metric])
    on = "incumbent"
    failure = None

    async def measure(side: Side) -> dict[str, float] | None:
        nonlocal on, failure
        if side != on:
            on = side
            failure = await switch(final if on == "candidate" else base)
            if failure:
                return None
        sample = await measurer.once()
        failure = None if sample.ok else sample.error
        return sample.metrics if sample.ok else None

    decision = await drive(policy.begin(pool), measure)
    return _confirmation(decision, pool, failure)


def _confirmation(decision: Decision, pool: list[float], failure: str | None) -> Confirmation:
    import statistics

    base = statistics.median(pool) if pool else None
    if decision.status == "measurement_failure":
        return Confirmation("measurement_failure", failure or decision.reason, None, base)
    status = "confirmed" if decision.keep else "not_confirmed"
    return Confirmation(status, decision.reason, decision.metric, base, decision.evidence, pool)


def finalize(
    ref: RunRef, branch: str | None = None, exclude: list[int] | None = None, force: bool = False
) -> Outcome:
    """Replay, re-measure, create the branch, write summary.md; raises UserError when it can't,
    or when the re-measurement does not confirm the gain (unless `force`)."""
    manifest, state, records = _load(ref)
    _refuse_live(ref, state)
    kept = [r for r in records if r.status == "keep" and r.experiment > 0]
    excluded = sorted(set(exclude or []))
    chosen = _chosen(ref, kept, excluded)
    repo = Path(manifest.repo)
    name = branch or f"expd/{ref.program}/{ref.stamp}-final"
    _check_branch(repo, name)
    commits = [_commit_of(repo, manifest, r) for r in chosen]
    config = msgspec.convert(manifest.config, ProgramConfig)
    program = ProgramPaths(repo, manifest.program)
    env = identity_env(repo)
    with sigterm_interrupts(), scratch_tree(repo, manifest.base_commit) as tree:
        wt = tree.path
        final = _replay(tree, manifest.base_commit, chosen, commits)
        measure_env = {
            **os.environ,
            **env,
            "EXPD_RUN_ID": manifest.run_id,
            "EXPD_WORKTREE": str(wt),
            "EXPD_PROGRAM_DIR": str(program.dir),
        }
        measure_env.pop("EXPD_RUN_DIR", None)
        # The agent's commits run here: confined as in the run, its trees and record hidden.
        hidden = (ref.paths.dir, Path(manifest.worktree), tree.gitdir)
        box = measure_sandbox(config, repo, wt, program, hidden)
        measurer = Measurer(
            config=config, program=program, worktree=wt, env=measure_env, sandbox=box
        )
        confirmation = anyio.run(_confirm, measurer, tree, manifest.base_commit, final, config)
        if confirmation.status != "confirmed" and not force:
            said = confirmation.status.replace("_", " ")
            raise UserError(
                f"the re-measurement of the final tree does not confirm the gain ({said}: "
                f"{confirmation.reason}): no branch created (--force creates it anyway)"
            )
        _check_branch(repo, name)
        create_branch(tree, name, final, manifest.base_commit)
    outcome = Outcome(
        run_id=ref.run_id,
        branch=name,
        commit=final,
        base_commit=manifest.base_commit,
        applied=[r.experiment for r in chosen],
        excluded=excluded,
        confirmation=confirmation,
        summary=ref.paths.summary,
    )
    write_summary(ref.paths.summary, manifest, state, records, outcome)
    return outcome
