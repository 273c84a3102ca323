"""The daemon's task group: the loop, the heartbeat, the control listener and the signal receiver."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import msgspec
import watchfiles

from daemon.agents.base import Agent, AgentUnavailable
from daemon.ops.confine import for_measure, for_run
from daemon.ops.git.lookup import identity_env
from daemon.ops.git.run_trees import run_trees
from daemon.ops.git.store import TreeError
from daemon.ops.measure import MARK_VAR, Measurer, run_mark
from daemon.ops.sandbox import Sandbox, SandboxUnavailable
from daemon.service.arms import run_agent
from daemon.service.controls import Controls
from daemon.service.heartbeat import Heart
from daemon.service.lane_setup import LaneSetup, lane_trees_of, make_lanes, slot_trees_of
from daemon.service.lanes import Lane, LaneRun
from daemon.service.log import log, redactor
from daemon.service.loop import Loop
from daemon.service.recorder import Recorder
from daemon.service.recovery import kill_leftovers, manifest_arms, recover
from daemon.service.store import RunStore
from daemon.service.tree_policy import release_trees
from shared import codec, control, seal
from shared.atomic import write_atomic
from shared.errors import ContractError
from shared.paths import ProgramPaths, RunPaths
from shared.schema import (
    ControlRequest,
    InFlight,
    ProgramConfig,
    ResultRecord,
    RunManifest,
    RunState,
)

CONTROL_POLL_S = 1.0


def supervise(paths: RunPaths, manifest: RunManifest, heart: Heart, key: bytes | None) -> int:
    return anyio.run(_supervise, paths, manifest, heart, key)


async def _supervise(
    paths: RunPaths, manifest: RunManifest, heart: Heart, key: bytes | None
) -> int:
    config = msgspec.convert(manifest.config, ProgramConfig)
    program = ProgramPaths(Path(manifest.repo), manifest.program)
    worktree, measured = run_trees(paths, manifest)
    worktree_path = worktree.path
    recovered = recover(paths, manifest, key, redactor())
    recorder = recovered.recorder
    store = recorder.store
    state = store.state
    state.phase = "starting"
    state.termination_reason = None
    state.message = ""
    store.save()
    store.event("start", None, pid=os.getpid(), resume=state.resumes, notes=recovered.notes)
    for note in recovered.notes:
        log(note)
    controls = Controls()
    env = {
        **identity_env(Path(manifest.repo)),
        "EXPD_RUN_DIR": str(paths.dir),
        "EXPD_WORKTREE": str(worktree_path),
        "EXPD_RUN_ID": manifest.run_id,
    }
    child_env = {**os.environ, **env}
    child_env.pop("EXPD_FAULT", None)
    # Only the measurement is told where the evaluator lives; the agent is not. It runs in the
    # measurement tree, never in the agent's, and is not told where the record is.
    measure_env = {
        **child_env,
        "EXPD_WORKTREE": str(measured.path),
        "EXPD_PROGRAM_DIR": str(program.dir),
        "EXPD_DIAGNOSTICS_FILE": str(paths.diagnostics),
        MARK_VAR: run_mark(paths.dir),
    }
    measure_env.pop("EXPD_RUN_DIR", None)
    arms = manifest_arms(manifest)
    # Out of the agent's sight: the evaluator, the record (run.key, expd's git dirs) and the tree
    # measurements run in.
    private = (program.dir, paths.dir, measured.path, measured.gitdir, worktree.gitdir)
    sandboxes: dict[str, Sandbox] = {}

    def sandbox_for(mode: str) -> Sandbox:
        """The agent's sandbox for `[agent] sandbox` = `mode` (an arm may set its own), made once."""
        if mode not in sandboxes:
            sandboxes[mode] = for_run(mode, repo=program.repo, tree=worktree_path, private=private)
        return sandboxes[mode]

    try:
        agent, arms_agents = run_agent(manifest, config, arms, store, paths.dir, sandbox_for)
    except AgentUnavailable as exc:
        state.termination_reason = "agent_unavailable"
        state.message = str(exc)
        store.phase("complete")
        return 1
    try:
        sandbox = sandbox_for(config.agent.sandbox)
    except SandboxUnavailable as exc:
        state.termination_reason, state.message = "error", str(exc)
        store.phase("complete")
        return 1
    try:
        hidden = (paths.dir, worktree_path, measured.gitdir, worktree.gitdir)
        measure_box = for_measure(
            config.measure,
            repo=program.repo,
            tree=measured.path,
            program_dir=program.dir,
            private=hidden,
            diagnostics=paths.diagnostics,
        )
    except (SandboxUnavailable, OSError) as exc:
        state.termination_reason, state.message = "error", f"measurement: {exc}"
        store.phase("complete")
        return 1
    measurer = Measurer(
        config=config, program=program, worktree=measured.path, env=measure_env, sandbox=measure_box
    )
    state.sandbox = sandbox.backend
    state.measure_sandbox = measure_box.backend

    interrupted = recovered.interrupted
    if interrupted is not None:
        roots = (worktree_path, measured.path, paths.dir)
        killed = kill_leftovers(paths.dir, interrupted.pgid, roots)
        if killed:
            log(f"killed {killed} leftover process(es) of the previous daemon")
        if interrupted.experiment > 0:
            record = ResultRecord(
                experiment=interrupted.experiment,
                status="crash",
                commit=interrupted.commit,
                parent=state.incumbent_commit,
                started_at=interrupted.started_at,
                finished_at=time.time(),
                description="interrupted",
                reason=f"interrupted: the daemon died during {interrupted.stage or 'the experiment'}",
                arm=interrupted.arm,
            )
            recorder.record(record)
            await agent.recover(interrupted.experiment)
            await agent.feedback(record)
            store.event("interrupted", record.experiment, stage=interrupted.stage)
        else:
            store.event("interrupted", 0, stage="baseline")
    if recovered.lanes or config.lanes.count > 1:
        await record_interrupted_lanes(
            recovered.lanes, paths, (worktree_path, measured.path), recorder, agent
        )
    try:
        await worktree.reset(state.incumbent_commit)
    except TreeError as exc:
        state.termination_reason = "error"
        state.message = f"cannot restore the agent's tree: {exc}"
        store.phase("crashed", "", durable=True)
        store.event("end", None, reason="error", message=state.message)
        return 1
    store.save()

    loop = Loop(
        paths=paths,
        manifest=manifest,
        config=config,
        program=program,
        recorder=recorder,
        agent=agent,
        worktree=worktree,
        measured=measured,
        measurer=measurer,
        controls=controls,
        env=env,
        sandbox=sandbox,
        arms=arms_agents,
    )
    setup = LaneSetup(paths, manifest, config, program, arms, env, measure_env)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_heartbeat, heart, store)
        tg.start_soon(_control_listener, paths, store, controls)
        tg.start_soon(_signals, store, controls)
        lanes: list[Lane] = []
        ray = config.lanes.executor == "ray"
        try:
            if ray and not _connect(config, store):
                return 1
            if config.lanes.count == 1 and not ray:
                await loop.run()
            else:
                lanes, slots = await make_lanes(
                    setup,
                    lane_trees_of(setup, worktree),
                    slot_trees_of(setup, measured),
                    store,
                    controls,
                    state.incumbent_commit,
                )
                run = LaneRun(loop, lanes, slots)
                if ray:
                    _on_ray(loop, lanes, slots, paths, manifest)
                await run.run()
        finally:
            if ray:
                from daemon.ray.cluster import disconnect

                disconnect()
            await agent.close()
            for lane in lanes:
                await lane.agent.close()
            tg.cancel_scope.cancel()
    release_trees(config.loop.keep_tree, paths, manifest, store)
    log(f"run ended: {state.termination_reason} {state.message}".rstrip())
    return 0


def _connect(config: ProgramConfig, store: RunStore) -> bool:
    """Join the Ray cluster (or start a private one); False (the run ended `error`) if not."""
    from daemon.ray.cluster import connect
    from shared.errors import UserError

    try:
        connect(
            config.lanes.address,
            node_ip_address=os.environ.get("EXPD_RAY_NODE_IP") or None,
            note=log,
        )
    except (UserError, ImportError) as exc:
        store.state.termination_reason, store.state.message = "error", str(exc)
        store.phase("crashed", "", durable=True)
        store.event("end", None, reason="error", message=str(exc))
        return False
    return True


def _on_ray(loop: Loop, lanes: list[Lane], slots: list, paths: RunPaths, manifest) -> None:
    """The lanes' turns, the slots' and the baseline's measurements as Ray tasks."""
    from daemon.service.ray_lanes import Remote, wire

    repo = Path(manifest.repo)
    env = {**identity_env(repo), "EXPD_RUN_ID": manifest.run_id}
    wire(loop, lanes, slots, Remote(repo, loop.config, env, paths.dir))
    for lane in lanes:
        lane.turn.flight = LaneRun._flight_of(lane.state)


async def record_interrupted_lanes(
    flights: list[tuple[int | None, InFlight]],
    paths: RunPaths,
    roots: tuple[Path, ...],
    recorder: Recorder,
    agent: Agent,
) -> None:
    """What a dead daemon's lanes left: leftovers killed, each experiment recorded once as an
    interrupted crash, in number order."""
    lane_roots = (*roots, *(p.parent for p in roots))  # the lanes' and slots' trees sit beside
    killed = kill_leftovers(paths.dir, None, lane_roots)
    for _, flight in flights:
        killed += kill_leftovers(paths.dir, flight.pgid, lane_roots)
    if killed:
        log(f"killed {killed} leftover process(es) of the previous daemon")
    store = recorder.store
    for lane, flight in flights:
        record = ResultRecord(
            experiment=flight.experiment,
            status="crash",
            commit=flight.commit,
            parent=store.state.incumbent_commit,
            started_at=flight.started_at,
            finished_at=time.time(),
            description="interrupted",
            reason=f"interrupted: the daemon died during {flight.stage or 'the experiment'}",
            arm=flight.arm,
            lane=lane,
        )
        recorder.record(record)
        await agent.recover(flight.experiment)
        await agent.feedback(record)
        store.event("interrupted", record.experiment, stage=flight.stage, lane=lane)


async def _heartbeat(heart: Heart, store: RunStore) -> None:
    """Beat, and keep the run's key in place: expd's control writer signs with the file."""
    while True:
        await anyio.sleep(heart.info.heartbeat_interval)
        heart.beat()
        if store.key is not None and seal.restore_key(store.paths, store.key):
            store.event("key_restored", None)


async def _control_listener(paths: RunPaths, store: RunStore, controls: Controls) -> None:
    """Watch the run directory (an atomic replace arrives as a new file); poll as a backstop."""
    handle_pending(paths, store, controls)

    def only_control(_change: watchfiles.Change, path: str) -> bool:
        return path.endswith("control.json")

    async for _ in watchfiles.awatch(
        paths.dir,
        watch_filter=only_control,
        debounce=50,
        step=20,
        rust_timeout=int(CONTROL_POLL_S * 1000),
        yield_on_timeout=True,
        recursive=False,
    ):
        handle_pending(paths, store, controls)


def handle_pending(paths: RunPaths, store: RunStore, controls: Controls) -> None:
    requests = control.pending(paths, set(store.state.acked))
    if not requests:
        return
    for request in requests:
        if control.verified(store.key, request):
            apply(request, store, controls)
        else:
            refuse(request, store)
        store.ack(request.id)
    store.save()


def refuse(request: ControlRequest, store: RunStore) -> None:
    """A request expd's own writer did not seal (someone wrote control.json by hand): ignored."""
    store.state.message = f"ignored a control request ({request.action}) not written by expd"
    _record(request, store, "ignored: not written by expd (no valid seal)")


def apply(request: ControlRequest, store: RunStore, controls: Controls) -> None:
    state: RunState = store.state
    outcome = "ok"
    match request.action:
        case "stop":
            controls.stop = True
            state.message = "stop requested: finishing the current experiment"
        case "abort":
            controls.request_abort()
            state.message = "abort requested"
        case "set" if request.key == "max_experiments":
            value = request.value
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                state.max_experiments = value
                state.message = f"max experiments set to {value}"
            else:
                outcome = f"rejected: max_experiments must be an integer ≥ 0, got {value!r}"
                state.message = outcome
        case "set" if request.key == "guidance":
            text = "" if request.value is None else str(request.value)
            state.guidance = text
            store.write_file(store.paths.guidance, text + ("\n" if text else ""))
            state.message = "guidance updated" if text else "guidance cleared"
        case _:
            outcome = f"rejected: unknown request {request.action} {request.key or ''}".strip()
            state.message = outcome
    _record(request, store, outcome)


def _record(request: ControlRequest, store: RunStore, outcome: str) -> None:
    """The `control` event: which request, and what became of it."""
    store.event(
        "control",
        None,
        id=request.id,
        action=request.action,
        key=request.key,
        value=request.value,
        outcome=outcome,
    )


async def _signals(store: RunStore, controls: Controls) -> None:
    """SIGTERM/SIGINT: stop after the current experiment; a second one aborts."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if controls.stop:
                controls.request_abort()
                store.state.message = f"{name} again: aborting"
            else:
                controls.stop = True
                store.state.message = f"{name}: stopping after the current experiment"
            store.event("control", None, action="signal", signal=name)
            store.save()


def mark_crashed(
    paths: RunPaths, manifest: RunManifest, message: str, *, internal: bool = True
) -> None:
    """Record why the daemon stopped (an internal error by default) for `expd status`."""
    try:
        state = codec.read_optional(paths.state_json, RunState) or RunState(run_id=manifest.run_id)
    except ContractError:
        state = RunState(run_id=manifest.run_id, program=manifest.program)
    state.phase = "crashed"
    state.termination_reason = "error"
    state.message = f"internal error: {message}" if internal else message
    state.updated_at = time.time()
    data = seal.seal(seal.load_key(paths), redactor().data(codec.encode(state)))
    write_atomic(paths.state_json, data)
