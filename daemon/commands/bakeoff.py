"""`expd bakeoff start`, `resume` and `replay`: create a bakeoff run, spawn its detached daemon,
wait until it is alive.

Start checks everything that would make every attempt fail before anything is created: the
bakeoff.toml, each task's base (resolved to a commit now, so later commits to the repository change
nothing), each variant's agent and sandbox. Starts of one bakeoff are serialised by its
`start.lock` (so their stamps never collide); several runs of it may then run side by side.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from daemon.commands import spawn
from daemon.ops.git.lookup import repo_head, resolve_commit
from daemon.ops.sandbox import Choice
from shared import __version__, codec, control, runs, seal
from shared.atomic import write_atomic
from shared.bakeoffs.config import load_bakeoff
from shared.bakeoffs.grading import decode_attempt, latest
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import (
    FINISHED,
    AttemptRecord,
    BakeoffManifest,
    BakeoffSpec,
    BakeoffState,
    VariantSpec,
    attempt_key,
)
from shared.errors import ContractError, UserError
from shared.liveness import held
from shared.locking import lock_blocking, unlock
from shared.paths import find_repo_root
from shared.programs import exclude_expd
from shared.schema import AgentConfig, ProgramConfig
from shared.tail import read_complete_lines

REPLAY_WAIT_S = 15.0
POLL_S = 0.05
STRENGTH = {"none": 0, "landlock": 1, "bwrap": 2}


@dataclass
class BakeoffStarted:
    run_id: str
    pid: int
    run_dir: Path
    sandbox: str = "none"
    """The weakest backend confining the variants' agents (bwrap, landlock or none)."""
    sandbox_detail: str = ""


def _variant_config(variant: VariantSpec) -> ProgramConfig:
    try:
        agent = msgspec.convert(variant.agent, AgentConfig)
    except msgspec.ValidationError as exc:
        raise UserError(f"variant {variant.id!r}: {exc}") from None
    return ProgramConfig(metric="score", direction="higher", agent=agent)


def check_variants(spec: BakeoffSpec, repo: Path, *, agents: bool = True) -> Choice:
    """Every variant's agent can run here and its sandbox exists; the weakest sandbox."""
    choices = []
    for variant in spec.variants:
        config = _variant_config(variant)
        try:
            if agents:
                spawn.check_agent(config, repo)
            choices.append(spawn.check_sandbox(config.agent.sandbox, "sandbox"))
        except UserError as exc:
            raise UserError(f"variant {variant.id!r}: {exc}") from None
    spawn.check_sandbox(spec.criteria_sandbox, "criteria_sandbox")
    if not choices:
        return Choice("none", "no variants")
    return min(choices, key=lambda c: STRENGTH.get(c.backend, 0))


def resolve_bases(spec: BakeoffSpec, repo: Path) -> str:
    """Each task's base as a commit (empty: the HEAD now); the HEAD."""
    head = repo_head(repo)
    for task in spec.tasks:
        if not task.base_ref:
            task.base = head
            continue
        commit = resolve_commit(repo, task.base_ref)
        if commit is None:
            raise UserError(
                f"task {task.id!r} ({task.source}): base {task.base_ref!r} "
                f"is not a commit of {repo}"
            )
        task.base = commit
    return head


def _new_stamp(bakeoff: BakeoffPaths) -> str:
    base = time.strftime("%Y%m%d-%H%M%S")
    stamp, n = base, 1
    while bakeoff.run(stamp).dir.exists():
        n += 1
        stamp = f"{base}-{n}"
    return stamp


def start_bakeoff(repo_root: Path, name: str) -> BakeoffStarted:
    """Launch a new run of bakeoff `name` of the repository at (or above) `repo_root`."""
    root = find_repo_root(repo_root)
    bakeoff = BakeoffPaths(root, name)
    spec = load_bakeoff(bakeoff)
    head = resolve_bases(spec, root)
    sandbox = check_variants(spec, root)
    lock = lock_blocking(bakeoff.start_lock)
    try:
        stamp = _new_stamp(bakeoff)
        paths = bakeoff.run(stamp)
        run_id = f"{name}/{stamp}"
        manifest = BakeoffManifest(
            run_id=run_id,
            name=name,
            repo=str(root),
            bakeoff_dir=str(bakeoff.dir),
            base_commit=head,
            created_at=time.time(),
            expd_version=__version__,
            spec=spec,
            sandbox=sandbox.backend,
        )
        exclude_expd(root)  # runs and trees must never show up in the user's checkout
        paths.dir.mkdir(parents=True)
        # The key before the daemon: a control request sent the moment `start` returns is sealed.
        seal.create_key(paths)
        try:
            write_atomic(paths.run_json, codec.encode(manifest))
            pid = spawn._spawn(paths)
        except BaseException:
            shutil.rmtree(paths.dir, ignore_errors=True)
            raise
        runs.register(paths, root, run_id)
    finally:
        unlock(lock)
    return BakeoffStarted(run_id, pid, paths.dir, sandbox.backend, sandbox.detail)


def _read_manifest(paths: BakeoffRunPaths) -> BakeoffManifest:
    manifest = codec.read(paths.run_json, BakeoffManifest)
    if manifest.kind != "bakeoff":
        raise UserError(f"{paths.dir} is not a bakeoff run")
    return manifest


def trusted_records(paths: BakeoffRunPaths) -> dict[str, AttemptRecord]:
    """The newest record of each attempt among the lines the run's daemon sealed (as a daemon
    would trust them: a line someone else wrote or changed does not count)."""
    key = seal.load_key(paths)
    lines = read_complete_lines(paths.attempts)
    trusted = (line for line in lines if key is None or seal.unseal(key, line) is not None)
    return latest(r for r in map(decode_attempt, trusted) if r is not None)


def _left(paths: BakeoffRunPaths, spec: BakeoffSpec, *, retry: bool) -> int:
    """How many attempts of the matrix a daemon would still run."""
    newest = trusted_records(paths)
    left = 0
    for task in spec.tasks:
        for n in range(1, spec.attempts + 1):
            for variant in spec.variants:
                record = newest.get(attempt_key(task.id, variant.id, n))
                status = record.status if record else ""
                if status not in FINISHED or (retry and status in ("error", "timeout")):
                    left += 1
    return left


def resume_bakeoff(run_dir: Path, *, retry_errors: bool = False) -> BakeoffStarted:
    """Relaunch the daemon of a bakeoff run that is not running; finished attempts never run
    again, interrupted ones run once more (with `retry_errors`, errored and timed-out ones too)."""
    paths = BakeoffRunPaths(Path(run_dir).resolve())
    manifest = _read_manifest(paths)
    spec = manifest.spec
    bakeoff = BakeoffPaths(Path(manifest.repo), manifest.name)
    sandbox = check_variants(spec, Path(manifest.repo), agents=False)
    lock = lock_blocking(bakeoff.start_lock)
    try:
        if held(paths):
            raise UserError(f"bakeoff run {manifest.run_id} is already running")
        try:
            state = codec.read_optional(paths.state_json, BakeoffState)
        except ContractError:
            state = None  # unreadable: the daemon rebuilds it from attempts.jsonl
        acked = set(state.acked) if state else set()
        requests = [r for r in control.pending(paths, acked) if r.action in ("replay", "retry")]
        replays = state.replays if state else []
        left = _left(paths, spec, retry=retry_errors)
        if not (left or replays or requests):
            reason = state.termination_reason if state and state.termination_reason else "done"
            raise UserError(
                f"bakeoff run {manifest.run_id} is complete ({reason}): every attempt is recorded"
                + ("" if retry_errors else " (--retry-errors runs the failed ones again)")
            )
        limit = spec.max_cost_usd
        if state is not None and limit is not None and state.cost_usd >= limit and not requests:
            raise UserError(
                f"bakeoff run {manifest.run_id} has spent its budget "
                f"(${state.cost_usd:.2f} of max_cost_usd ${limit:.2f})"
            )
        if retry_errors:
            control.send(paths, "retry", value="errors")
        pid = spawn._spawn(paths)
    finally:
        unlock(lock)
    return BakeoffStarted(manifest.run_id, pid, paths.dir, sandbox.backend, sandbox.detail)


def _as_variant(manifest: BakeoffManifest, as_variant: str) -> dict[str, Any]:
    """The request's variant part: nothing more for a variant of the run, else its agent table
    and prompt prefix from the bakeoff's bakeoff.toml as it is now."""
    if any(v.id == as_variant for v in manifest.spec.variants):
        return {}
    current = load_bakeoff(BakeoffPaths(Path(manifest.repo), manifest.name))
    found = next((v for v in current.variants if v.id == as_variant), None)
    if found is None:
        names = sorted({v.id for v in (*manifest.spec.variants, *current.variants)})
        raise UserError(
            f"no variant {as_variant!r} in run {manifest.run_id} or in its bakeoff.toml "
            f"(variants: {', '.join(names)})"
        )
    check_variants(BakeoffSpec(variants=[found]), Path(manifest.repo))
    return {"agent": found.agent, "prompt_prefix": found.prompt_prefix}


def request_replay(
    run_dir: Path, *, task: str, variant: str, attempt: int, as_variant: str
) -> tuple[str, BakeoffStarted | None]:
    """Ask the run's daemon to replay attempt `task/variant/attempt` with `as_variant`; relaunch
    the daemon when none is running. The request id, and the relaunch (None: a daemon took it)."""
    paths = BakeoffRunPaths(Path(run_dir).resolve())
    manifest = _read_manifest(paths)
    key = attempt_key(task, variant, attempt)
    if key not in trusted_records(paths):
        raise UserError(f"attempt {key} is not recorded in run {manifest.run_id}")
    value = {
        "task": task,
        "variant": variant,
        "attempt": attempt,
        "as_variant": as_variant,
        **_as_variant(manifest, as_variant),
    }
    request_id = control.send(paths, "replay", value=value)
    deadline = time.monotonic() + REPLAY_WAIT_S
    while time.monotonic() < deadline:
        if control.is_acked(paths, request_id):
            return request_id, None
        if not held(paths):
            try:
                return request_id, resume_bakeoff(paths.dir)
            except UserError:
                if not held(paths):
                    raise
        time.sleep(POLL_S)
    return request_id, None
