"""Agent turns and measurements as Ray tasks, run where the cluster has the resources asked for.

Each task gets the incumbent as a git bundle (daemon/ops/git/bundles.py), so a worker needs expd
installed and git on its PATH but no shared filesystem; it works in a temporary directory it
removes on every way out. An agent turn sends its log lines back while it runs, in batches, to a
`LogSink` actor on the daemon's node, and returns the candidate as a bundle of its new objects.

Confinement on the worker is the same choice as on the daemon's machine (`sandbox` = `[agent]
sandbox` / `[measure] sandbox`; `auto` is bwrap where it works there, else Landlock, else none):
the worker's own repository and expd's git dir are hidden from the agent and the measurement.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import msgspec
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from daemon.agents.base import AgentEvent, AgentTask, render
from daemon.agents.registry import make_agent
from daemon.ops.confine import run_confinement
from daemon.ops.git.bundles import candidate_bundle, unpack
from daemon.ops.git.candidate import agent_subject
from daemon.ops.measure import Measurer, Sample
from daemon.ops.sandbox import make, resolve
from daemon.ray.cluster import options
from shared.errors import UserError
from shared.paths import ProgramPaths
from shared.schema import AgentConfig, MeasureConfig, ProgramConfig

KINDS = frozenset({"command"})
"""Agent kinds a worker runs: the others keep state on the daemon's machine (the `tune` study,
the CLIs' private homes)."""
FLUSH_S = 0.2
"""How often a running turn sends its new log lines to the daemon."""
SINK_LINES = 20_000
"""Lines a sink holds for the daemon at most; older ones are dropped (and counted) first."""
KEEP_LINES = 200
"""The last log lines a turn's result carries (for its record, whatever the sink delivered)."""
CANDIDATE_REF = "refs/expd/candidate"


@ray.remote(num_cpus=0)
class LogSink:
    """A turn's log lines on their way to the daemon: the worker adds batches, the daemon takes
    what arrived (oldest first), both without waiting on each other."""

    def __init__(self) -> None:
        self.lines: deque[tuple[str, str]] = deque(maxlen=SINK_LINES)
        self.dropped = 0

    def add(self, lines: list[tuple[str, str]]) -> None:
        self.dropped += max(0, len(self.lines) + len(lines) - SINK_LINES)
        self.lines.extend(lines)

    def take(self) -> tuple[list[tuple[str, str]], int]:
        """The lines since the last take, and how many were dropped meanwhile."""
        out, dropped = list(self.lines), self.dropped
        self.lines.clear()
        self.dropped = 0
        return out, dropped


def new_sink() -> Any:
    """A `LogSink` on the daemon's own node, so it outlives any worker."""
    here = ray.get_runtime_context().get_node_id()
    return LogSink.options(  # type: ignore[attr-defined]
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True)
    ).remote()


@dataclass
class TurnResult:
    base: str
    """The incumbent the turn started from."""
    commit: str
    """The candidate's commit, or `base` when the agent changed nothing (or it was not captured)."""
    bundle: bytes | None
    """The candidate's new objects, `base` a prerequisite; None when there is no candidate."""
    description: str = ""
    timed_out: bool = False
    error: str = ""
    """The agent's failure as the loop records it ("agent exited with code N", a timeout, the
    command not found); empty when it exited 0."""
    unavailable: bool = False
    problem: str = ""
    """Why the change could not be captured (a nested repository, the tree deleted): a crash."""
    lines: list[str] = field(default_factory=list)
    """The last `KEEP_LINES` log lines, rendered as in `agent/NNNN.log`."""
    node: str = ""
    """The Ray node id the turn ran on."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent unpacking, in the agent, capturing and bundling (the executor's overhead)."""


@dataclass
class MeasureResult:
    samples: list[Sample]
    node: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


def _sandbox(mode: str, key: str, worker: Path, tree: Path, *, host_dev: bool) -> Any:
    confinement = run_confinement(worker / "repo.git", tree, [worker / "git"])
    return make(resolve(mode, key), replace(confinement, host_dev=host_dev))


async def _turn(
    worker: Path,
    bundle: bytes,
    base: str,
    agent: AgentConfig,
    prompt: str,
    env: Mapping[str, str],
    timeout: float,
    sink: Any,
) -> TurnResult:
    timings: dict[str, float] = {}
    clock = time.monotonic()
    tree = await anyio.to_thread.run_sync(unpack, bundle, worker, base)
    timings["unpack"] = time.monotonic() - clock
    kept: deque[str] = deque(maxlen=KEEP_LINES)
    pending: list[tuple[str, str]] = []

    def emit(event: AgentEvent) -> None:
        line = render(event)
        kept.append(line)
        pending.append((getattr(event, "stream", "stdout"), line))

    async def flush() -> None:
        while True:
            await anyio.sleep(FLUSH_S)
            if pending and sink is not None:
                sink.add.remote(pending[:])
                pending.clear()

    prompt_file = worker / "prompt.md"
    prompt_file.write_text(prompt)
    config = ProgramConfig(metric="metric", direction="lower", agent=agent)
    adapter = make_agent(config, kind=agent.kind, model=agent.model, run_dir=worker / "run")
    task = AgentTask(
        experiment=0,
        worktree=tree.path,
        run_dir=worker / "run",
        prompt=prompt,
        prompt_file=prompt_file,
        timeout=timeout,
        env=dict(env),
        sandbox=_sandbox(agent.sandbox, "[agent] sandbox", worker, tree.path, host_dev=False),
    )
    clock = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(flush)
        outcome = await adapter.run(task, emit)
        tg.cancel_scope.cancel()
    timings["agent"] = time.monotonic() - clock
    if pending and sink is not None:
        # Delivered before the result is (unless the sink's node went away: then the lines are
        # in the result's tail).
        with contextlib.suppress(ray.exceptions.RayError):
            await sink.add.remote(pending[:])
    result = TurnResult(
        base=base,
        commit=base,
        bundle=None,
        description=outcome.description,
        timed_out=outcome.timed_out,
        error=outcome.error or "",
        unavailable=outcome.unavailable,
        node=_node(),
        timings=timings,
    )
    clock = time.monotonic()
    fallback = "agent change"
    staged = tree.stage_sync(
        base, lambda: outcome.description or agent_subject(tree.path, base) or fallback
    )
    if isinstance(staged, str):
        result.problem = staged
    elif staged is not None:
        tree.publish_sync(staged, CANDIDATE_REF)
        result.commit = staged.commit
        result.description = staged.message
        result.bundle = candidate_bundle(tree.repo, base, staged.commit)
    timings["capture"] = time.monotonic() - clock
    result.lines = list(kept)
    return result


@ray.remote(max_retries=0)
def agent_turn(
    bundle: bytes,
    commit: str,
    agent_config: dict[str, Any],
    prompt: str,
    env: dict[str, str],
    timeout: float,
    sink: Any = None,
) -> TurnResult:
    """One agent turn on a worker: unpack the incumbent `commit`, run the agent (its `[agent]`
    table as a dict), capture what it changed as one commit, return it as a bundle."""
    agent = msgspec.convert(agent_config, AgentConfig)
    if agent.kind not in KINDS:
        raise UserError(f"[agent] kind = {agent.kind!r} does not run on Ray workers (only command)")
    worker = Path(tempfile.mkdtemp(prefix="expd-ray-turn-"))
    try:
        return anyio.run(_turn, worker, bundle, commit, agent, prompt, env, timeout, sink)
    finally:
        shutil.rmtree(worker, ignore_errors=True)


async def _measure(
    worker: Path,
    bundle: bytes,
    commit: str,
    config: ProgramConfig,
    env: Mapping[str, str],
    runs: int,
) -> MeasureResult:
    clock = time.monotonic()
    tree = await anyio.to_thread.run_sync(unpack, bundle, worker, commit)
    timings = {"unpack": time.monotonic() - clock}
    sandbox = _sandbox(
        config.measure.sandbox, "[measure] sandbox", worker, tree.path, host_dev=True
    )
    # The worker's own environment (PATH, HOME, the GPU variables there), plus the daemon's.
    full = {**os.environ, **env, "EXPD_WORKTREE": str(tree.path)}
    measurer = Measurer(config, ProgramPaths(tree.path, "_"), tree.path, full, sandbox)
    clock = time.monotonic()
    built = await measurer.build()
    samples = [built] if not built.ok else [await measurer.once() for _ in range(runs)]
    timings["measure"] = time.monotonic() - clock
    return MeasureResult(samples=samples, node=_node(), timings=timings)


@ray.remote(max_retries=0)
def measure(
    bundle: bytes,
    commit: str,
    metric: str,
    measure_config: dict[str, Any],
    timeout: float,
    runs: int,
    env: dict[str, str],
) -> MeasureResult:
    """`runs` measurements of `commit` on a worker (after the build, if any; a failed build is the
    one sample). `measure_config` is the `[measure]` table: its `command` is required (relative
    paths from the repository root), `timeout` is overridden by `timeout`."""
    settings = msgspec.convert({**measure_config, "timeout": timeout}, MeasureConfig)
    if not settings.command:
        raise UserError("[measure] command is required on Ray workers")
    config = ProgramConfig(metric=metric, direction="lower", measure=settings)
    worker = Path(tempfile.mkdtemp(prefix="expd-ray-measure-"))
    try:
        return anyio.run(_measure, worker, bundle, commit, config, env, runs)
    finally:
        shutil.rmtree(worker, ignore_errors=True)


def submit_turn(
    bundle: bytes,
    commit: str,
    agent_config: Mapping[str, Any],
    prompt: str,
    env: Mapping[str, str],
    timeout: float,
    *,
    resources: Mapping[str, float] | None = None,
    sink: Any = None,
) -> ray.ObjectRef:
    """Start an agent turn where `resources` (`[lanes] agent_resources`) are free."""
    return agent_turn.options(**options(resources)).remote(
        bundle, commit, dict(agent_config), prompt, dict(env), timeout, sink
    )


def submit_measure(
    bundle: bytes,
    commit: str,
    metric: str,
    measure_config: Mapping[str, Any],
    timeout: float,
    runs: int,
    env: Mapping[str, str],
    *,
    resources: Mapping[str, float] | None = None,
) -> ray.ObjectRef:
    """Start a measurement series where `resources` (`[lanes] measure_resources`) are free."""
    return measure.options(**options(resources)).remote(
        bundle, commit, metric, dict(measure_config), timeout, runs, dict(env)
    )
