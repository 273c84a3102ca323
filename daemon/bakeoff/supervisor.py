"""The bakeoff daemon's task group: the matrix, the heartbeat, the control listener and signals.

Before the matrix starts: the state is rebuilt from the record, the leftovers of attempts a dead
daemon had running are killed (each runs again once; twice interrupted, it is recorded as an
error), the requests already waiting are applied (`resume --retry-errors` sends one), and the
criteria's sandboxes are made once per slot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio

from daemon.bakeoff.attempt import Attempts
from daemon.bakeoff.controls import Controls, Listener
from daemon.bakeoff.matrix import Matrix
from daemon.bakeoff.plan import matrix_jobs, replay_job
from daemon.bakeoff.recovery import INTERRUPTED_TWICE, Recovered, recover
from daemon.bakeoff.slots import Slot, criteria_sandboxes, make_slots, remove_slots, weakest
from daemon.bakeoff.store import BakeoffStore
from daemon.ops.git.lookup import identity_env
from daemon.ops.measure import MARK_VAR, run_mark
from daemon.ops.sandbox import SandboxUnavailable, resolve
from daemon.service.heartbeat import Heart
from daemon.service.log import log, redactor
from daemon.service.recovery import kill_leftovers
from shared import seal
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import AttemptRecord, BakeoffManifest

MESSAGES = {
    "stopped": "stopped by request: the attempts not started are left (expd bakeoff resume)",
    "aborted": "aborted: the running attempts were cancelled (expd bakeoff resume runs them)",
}


def supervise(
    paths: BakeoffRunPaths, manifest: BakeoffManifest, heart: Heart, key: bytes | None
) -> int:
    return anyio.run(_supervise, paths, manifest, heart, key)


async def _supervise(
    paths: BakeoffRunPaths, manifest: BakeoffManifest, heart: Heart, key: bytes | None
) -> int:
    spec = manifest.spec
    repo = Path(manifest.repo)
    bakeoff = BakeoffPaths(repo, manifest.name)
    recovered = recover(paths, manifest, key)
    store = BakeoffStore(paths, recovered.state, recovered.records, key=key, redactor=redactor())
    state = store.state
    store.save()
    store.event("start", pid=os.getpid(), resume=state.resumes, notes=recovered.notes)
    for note in recovered.notes:
        log(note)
    slots = make_slots(paths, bakeoff, paths.dir.name, max(1, spec.concurrency))
    backends = []
    for variant in spec.variants:
        try:
            backends.append(resolve(str(variant.agent.get("sandbox", "auto"))).backend)
        except SandboxUnavailable:
            continue  # that variant's attempts end as errors that say why
    state.sandbox = weakest(backends) if backends else manifest.sandbox
    try:
        boxes = criteria_sandboxes(spec.criteria_sandbox, slots, paths, bakeoff)
    except (SandboxUnavailable, OSError) as exc:
        finish(store, "error", f"criteria: {exc}")
        return 1
    _interrupted(store, recovered, slots, manifest)
    replays = [job for r in state.replays if (job := replay_job(spec, r)) is not None]
    controls = Controls()
    matrix = Matrix(
        spec=spec,
        store=store,
        controls=controls,
        slots=slots,
        jobs=replays + matrix_jobs(spec, store.latest),
    )
    listener = Listener(paths, store, controls, matrix)
    listener.handle_pending()
    base_env = {
        **identity_env(repo),
        "EXPD_RUN_ID": manifest.run_id,
        MARK_VAR: run_mark(paths.dir),
    }
    attempts = Attempts(
        paths=paths,
        manifest=manifest,
        bakeoff=bakeoff,
        store=store,
        controls=controls,
        env=base_env,
        criteria_env={**os.environ, **base_env},
        criteria_boxes=boxes,
        private=(bakeoff.dir, paths.dir),
    )
    reason = "error"
    async with anyio.create_task_group() as tg:
        tg.start_soon(_heartbeat, heart, store)
        tg.start_soon(listener.listen)
        tg.start_soon(listener.signals)
        try:
            reason = await matrix.run(attempts)
            finish(store, reason)  # no await since the matrix ended: no request slips in
        finally:
            tg.cancel_scope.cancel()
    remove_slots(slots)
    log(f"bakeoff run ended: {reason} {state.message}".rstrip())
    return 0


def _interrupted(
    store: BakeoffStore, recovered: Recovered, slots: list[Slot], manifest: BakeoffManifest
) -> None:
    """Kill what the attempts a dead daemon had running left; record those interrupted twice."""
    state = store.state
    paths = store.paths
    roots = (*(s.agent.path for s in slots), *(s.criteria.path for s in slots), paths.dir)
    killed = kill_leftovers(paths.dir, None, roots)
    for attempt in recovered.interrupted:
        killed += kill_leftovers(paths.dir, attempt.pgid, roots)
    if killed:
        log(f"killed {killed} leftover process(es) of the previous daemon")
    tasks = {t.id: t for t in manifest.spec.tasks}
    for attempt in recovered.interrupted:
        times = state.interrupted.get(attempt.key, 1)
        store.event("interrupted", key=attempt.key, stage=attempt.stage, times=times)
        if times < 2:
            continue
        task = tasks.get(attempt.task)
        store.append(
            AttemptRecord(
                task=attempt.task,
                variant=attempt.variant,
                attempt=attempt.attempt,
                status="error",
                score=0.0,
                error=INTERRUPTED_TWICE,
                base=task.base if task else "",
                started_at=attempt.started_at,
                finished_at=time.time(),
                replay_of=attempt.replay_of,
                reruns=times - 1,
            )
        )
        state.replays = [
            r
            for r in state.replays
            if (r.task, r.variant, r.attempt) != (attempt.task, attempt.variant, attempt.attempt)
        ]
    store.save(durable=True)


def finish(store: BakeoffStore, reason: str, message: str = "") -> None:
    state = store.state
    store.restore()
    state.termination_reason = reason
    if message:
        state.message = message
    elif reason == "budget":
        state.message = (
            f"budget reached: ${state.cost_usd:.2f} spent; the attempts not started are left"
        )
    else:
        state.message = MESSAGES.get(reason, "")
    store.phase("complete", "", durable=True)
    store.event("end", reason=reason, message=state.message)


async def _heartbeat(heart: Heart, store: BakeoffStore) -> None:
    """Beat, and keep the run's key in place: expd's control writer signs with the file."""
    while True:
        await anyio.sleep(heart.info.heartbeat_interval)
        heart.beat()
        if store.key is not None and seal.restore_key(store.paths, store.key):
            store.event("key_restored")
