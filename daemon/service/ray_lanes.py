"""Lanes on Ray (`[lanes] executor = "ray"`): agent turns and measurements as Ray tasks.

The lane machinery (daemon/service/lanes.py, lane_queue.py) is unchanged: a lane's turn is a
`RayTurn`, whose `take` ships the incumbent as a git bundle to a worker, streams the turn's log
lines into the experiment's agent log, and brings the candidate back through the same secret
check as the local capture. A slot's (and the baseline's) measurer is a `RayMeasurer`: one Ray
task per run the policy session asks for (the build, if any, runs in each task), so the session
decides exactly as locally. A lost worker is an interrupted crash (`MeasurementLost` from a
measurement); the lane goes on.
This module imports Ray: the supervisor imports it only when the executor is `ray`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec
from ray import exceptions as ray_errors

from daemon.ops.git.bundles import BundleError, capture_candidate, make_bundle
from daemon.ops.measure import Sample
from daemon.ray import cluster, tasks
from daemon.service.arms import Setup
from daemon.service.guards import added_secret
from daemon.service.lane_queue import Slot
from daemon.service.lanes import Lane
from daemon.service.loop import Loop
from daemon.service.measuring import MeasurementLost, Measuring
from daemon.service.turn import AgentTurn, _short
from shared.programs import parse_duration
from shared.schema import AgentConfig, LaneState, ProgramConfig, ResultRecord

POLL_S = 0.25
"""How often a running turn's new log lines are taken from its sink."""
LOST = "interrupted: worker lost"


class Bundles:
    """Bundles of the user's repository by commit (every turn against one incumbent sends the
    same one), made in a worker thread; the last few kept."""

    def __init__(self, repo: Path, keep: int = 8) -> None:
        self.repo, self.keep = repo, keep
        self.made: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, commit: str) -> bytes:
        if commit not in self.made:
            self.made[commit] = await anyio.to_thread.run_sync(make_bundle, self.repo, commit)
            while len(self.made) > self.keep:
                self.made.popitem(last=False)
        return self.made[commit]


@dataclass
class Remote:
    """What every remote turn and measurement of the run shares."""

    repo: Path
    config: ProgramConfig
    env: dict[str, str]
    """The workers' environment additions: the user's git identity, the run id (no local paths)."""
    scratch: Path
    """Where candidates are fetched aside before they are published (the run directory)."""
    bundles: Bundles = field(init=False)

    def __post_init__(self) -> None:
        self.bundles = Bundles(self.repo)


@dataclass
class RayTurn(AgentTurn):
    """An agent turn run as a Ray task; the rest of AgentTurn (retries, arms) as locally."""

    remote: Remote | None = None
    agent_config: AgentConfig | None = None
    lane: LaneState | None = None

    def use(self, setup: Setup | None) -> str | None:
        if setup is not None:
            self.agent_config = setup.arm.agent
        return super().use(setup)

    async def take(self, n: int, started: float, prompt: str, prompt_file: Path) -> ResultRecord:
        assert self.remote is not None and self.agent_config is not None
        remote, incumbent = self.remote, self._base()
        clock = time.monotonic()
        record = ResultRecord(experiment=n, parent=incumbent, started_at=started)
        sink = tasks.new_sink()
        try:
            ref = tasks.submit_turn(
                await remote.bundles.get(incumbent),
                incumbent,
                msgspec.to_builtins(self.agent_config),
                prompt,
                {**remote.env, "EXPD_EXPERIMENT": str(n)},
                self.timeout,
                resources=remote.config.lanes.agent_resources,
                sink=sink,
            )
            failure: Exception | None = None
            done = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stream, n, sink, done)
                try:
                    turn = await cluster.wait(ref)
                except Exception as exc:  # raised here, not as the task group's
                    failure = exc
                finally:
                    done.set()  # the streamer takes what is left, then ends (never cut mid-take)
            if failure is not None:
                raise failure
        except cluster.WorkerLost as exc:
            self.store.agent_log(n, f"[expd] {exc}")
            record.status, record.reason, record.description = "crash", LOST, "interrupted"
            return self._ended(n, record, clock, str(exc))
        except Exception as exc:  # the task's own failure (raised on the worker)
            if _lost(exc):
                self.store.agent_log(n, f"[expd] the Ray worker was lost: {_leaf(exc)}")
                record.status, record.reason, record.description = "crash", LOST, "interrupted"
            else:
                record.status, record.reason = "crash", f"Ray turn failed: {_leaf(exc)}"
            return self._ended(n, record, clock, str(exc))
        finally:
            self.store.close_agent_log(n)
        if self.lane is not None and turn.node:
            self.lane.node = turn.node
        record.description = self.store.redact(_short(turn.description))
        record = self._ended(n, record, clock, turn.error)
        if turn.unavailable:
            self.unavailable = turn.error or "agent unavailable"
        if turn.problem:
            record.status, record.reason = "crash", turn.error or turn.problem
            return record
        if turn.bundle is not None:
            capture = functools.partial(
                capture_candidate,
                remote.repo,
                turn.bundle,
                incumbent,
                remote.scratch / f"candidate-{n:04d}",
                f"refs/expd/{self.run_id}/{n:04d}",
                lambda candidate: added_secret(self.store.redactor, candidate),
            )
            try:
                captured = await anyio.to_thread.run_sync(capture)
            except BundleError as exc:
                record.status, record.reason = "crash", f"candidate refused: {exc}"
                return record
            if captured.refused:
                record.status, record.reason = "crash", captured.refused
                return record
            record.commit, record.diff = captured.commit, captured.stat
            if flight := self._flight():
                flight.commit = captured.commit
            record.description = record.description or captured.subject
            self.store.write_file(self.paths.patch(n), captured.patch)
        if turn.error:
            record.status, record.reason = "crash", turn.error
        elif record.commit is None or not record.diff.files:
            record.status, record.reason = "crash", "no change produced"
        return record

    def _ended(self, n: int, record: ResultRecord, clock: float, error: str) -> ResultRecord:
        record.agent_s = time.monotonic() - clock
        self.store.event(
            "agent_end",
            n,
            error=error,
            description=record.description,
            seconds=round(record.agent_s, 3),
            node=self.lane.node if self.lane else "",
        )
        return record

    async def _stream(self, n: int, sink: Any, done: anyio.Event) -> None:
        """Take the turn's new lines every POLL_S; once `done`, take the last ones and end. A
        take is never cancelled half-way: the lines it removed from the sink would be lost."""
        while not done.is_set():
            with anyio.move_on_after(POLL_S):
                await done.wait()
            await self._take_lines(n, sink)

    async def _take_lines(self, n: int, sink: Any) -> None:
        try:
            lines, dropped = await sink.take.remote()
        except ray_errors.RayError:  # the sink's node went away: the turn's own result decides
            return
        if dropped:
            self.store.agent_log(n, f"[expd] {dropped} log line(s) dropped on the way")
        for _stream, line in lines:
            self.store.agent_log(n, line)


class RemoteTree:
    """A measurement tree whose checkouts are also remembered: the commit a remote run measures.
    Everything else is the local tree's (the replay onto a moved incumbent stays local)."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        self.commit = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tree, name)

    async def checkout(self, commit: str, *, clean: bool = True) -> None:
        await self.tree.checkout(commit, clean=clean)
        self.commit = commit


@dataclass
class RayMeasurer:
    """One measurement run of the tree's commit as a Ray task (`[lanes] measure_resources`)."""

    remote: Remote
    tree: RemoteTree
    node: Any = None
    """Told the Ray node each run ran on."""
    build_command: None = None
    """The build runs on the worker, inside each run's task."""

    async def build(self, track: Any = None) -> Sample:
        return Sample(ok=True)

    async def once(self, track: Any = None) -> Sample:
        """One run on a worker; MeasurementLost when the worker went away meanwhile."""
        config, commit = self.remote.config, self.tree.commit
        try:
            ref = tasks.submit_measure(
                await self.remote.bundles.get(commit),
                commit,
                config.metric,
                msgspec.to_builtins(config.measure),
                parse_duration(config.measure.timeout),
                1,
                self.remote.env,
                resources=config.lanes.measure_resources,
            )
            result = await cluster.wait(ref)
        except cluster.WorkerLost as exc:
            raise MeasurementLost(LOST, str(exc)) from None
        except Exception as exc:  # the task's own failure (raised on the worker)
            if _lost(exc):
                raise MeasurementLost(LOST, _leaf(exc)) from None
            return Sample(ok=False, error=f"Ray measurement failed: {_leaf(exc)}")
        if self.node is not None and result.node:
            self.node(result.node)
        return result.samples[0]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _leaf(exc: BaseException) -> str:
    """The first real error inside (a task's anyio group wraps what the worker hit)."""
    leaf = _leaves(exc)[0]
    first = (str(leaf).strip().splitlines() or [""])[0]
    return f"{type(leaf).__name__}: {first[:300]}"


def _lost(exc: BaseException) -> bool:
    """Whether the worker (its process, its node, or its way back to the daemon) went away: a
    worker cut off from the cluster fails inside its task with one of Ray's own errors."""
    return any(
        isinstance(leaf, (cluster.WorkerLost, *cluster.LOST, ray_errors.RayError))
        for leaf in _leaves(exc)
    )


def wire(loop: Loop, lanes: list[Lane], slots: list[Slot], remote: Remote) -> None:
    """Make the run's lanes, slots and baseline run on Ray (their local trees stay: the replay
    and the run's branch are the daemon's)."""
    for lane in lanes:
        fields = {f.name: getattr(lane.turn, f.name) for f in dataclasses.fields(AgentTurn)}
        lane.turn = RayTurn(
            **fields, remote=remote, agent_config=loop.config.agent, lane=lane.state
        )
    for slot in slots:
        tree = RemoteTree(slot.tree)
        slot.tree = tree  # type: ignore[assignment]
        measurer = RayMeasurer(remote, tree, node=_node_of(slot))
        slot.measuring = Measuring(loop.store, measurer, tree, slot.measuring.track)  # type: ignore[arg-type]
    tree = RemoteTree(loop.measured)
    measurer = RayMeasurer(remote, tree)
    loop.measuring = Measuring(loop.store, measurer, tree, loop.measuring.track)  # type: ignore[arg-type]


def _node_of(slot: Slot) -> Any:
    def told(node: str) -> None:
        if slot.lane is not None:
            slot.lane.node = node

    return told
