"""Making a run's lanes and measurement slots: a tree, a sandbox and an agent per lane, a tree and a
measurer per slot, each confined so no lane sees another's tree, the record or the evaluator.

Lane 0 works in the run's own tree, slot 0 measures in the run's measurement tree; the others sit
beside them (`<tree>-L<k>`, `<eval tree>-S<k>`) with git dirs of their own in the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from daemon.ops.confine import for_measure, for_run
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.run_trees import lane_trees, slot_trees
from daemon.ops.measure import Measurer
from daemon.ops.sandbox import Sandbox
from daemon.service.arms import run_agent
from daemon.service.controls import Controls
from daemon.service.lane_queue import Slot
from daemon.service.lanes import Lane
from daemon.service.measuring import Measuring
from daemon.service.retry import RetryPolicy
from daemon.service.store import RunStore
from daemon.service.turn import AgentTurn
from shared.arms import Arm
from shared.paths import ProgramPaths, RunPaths
from shared.programs import parse_duration
from shared.schema import InFlight, LaneState, ProgramConfig, RunManifest


@dataclass
class LaneSetup:
    """What the supervisor already has for the run, shared by every lane and slot."""

    paths: RunPaths
    manifest: RunManifest
    config: ProgramConfig
    program: ProgramPaths
    arms: list[Arm]
    env: dict[str, str]
    """The agent's environment additions (as without lanes; each lane gets its own tree)."""
    measure_env: dict[str, str]


def lane_trees_of(setup: LaneSetup, run_tree: AgentTree) -> list[AgentTree]:
    trees = lane_trees(setup.paths, setup.manifest, setup.config.lanes.count)
    trees[0] = AgentTree(
        repo=run_tree.repo, path=run_tree.path, gitdir=run_tree.gitdir, branch=None
    )
    return trees


def slot_trees_of(setup: LaneSetup, run_eval: EvalTree) -> list[EvalTree]:
    trees = slot_trees(setup.paths, setup.manifest, setup.config.lanes.measure_slots)
    trees[0] = run_eval
    return trees


async def make_lanes(
    setup: LaneSetup,
    trees: list[AgentTree],
    evals: list[EvalTree],
    store: RunStore,
    controls: Controls,
    incumbent: str,
) -> tuple[list[Lane], list[Slot]]:
    """Every lane and slot, their trees reset to `incumbent` first (the sandboxes bind them)."""

    def tracker(flight: Callable[[], InFlight | None]) -> Callable[[int], None]:
        """Remember a child's process group in its experiment's in-flight record (for resume)."""

        def track(pgid: int) -> None:
            if (f := flight()) is not None:
                f.pgid = pgid
                store.save(now=True)  # a resumed daemon kills it by this group

        return track

    for tree in trees:
        await tree.reset(incumbent)
    for tree in evals[1:]:
        await tree.checkout(incumbent)
    private_all = (
        setup.program.dir,
        setup.paths.dir,
        *(t.path for t in evals),
        *(t.gitdir for t in evals),
    )
    lanes: list[Lane] = []
    for k, tree in enumerate(trees):
        others = tuple(t.path for t in trees if t is not tree)
        private = (*private_all, *others, *(t.gitdir for t in trees))
        boxes: dict[str, Sandbox] = {}

        def sandbox_for(mode: str, tree: AgentTree = tree, private: tuple = private, boxes=boxes):
            if mode not in boxes:
                boxes[mode] = for_run(
                    mode, repo=setup.program.repo, tree=tree.path, private=private
                )
            return boxes[mode]

        state = LaneState(lane=k)
        agent, arms = run_agent(
            setup.manifest, setup.config, setup.arms, store, setup.paths.dir, sandbox_for
        )
        turn = AgentTurn(
            paths=setup.paths,
            run_id=setup.manifest.run_id,
            store=store,
            agent=agent,
            worktree=tree,
            retry=RetryPolicy.of(setup.config.agent),
            controls=controls,
            timeout=parse_duration(setup.config.agent.timeout),
            env={**setup.env, "EXPD_WORKTREE": str(tree.path)},
            track=tracker(lambda state=state: state.in_flight),
            sandbox=sandbox_for(setup.config.agent.sandbox),
        )
        lanes.append(Lane(state=state, tree=tree, agent=agent, arms=arms, turn=turn))
    slots = []
    for k, tree in enumerate(evals):
        hidden = (
            setup.paths.dir,
            *(t.path for t in trees),
            *(t.gitdir for t in trees),
            *(t.gitdir for t in evals),
            *(t.path for t in evals if t is not tree),
        )
        box = for_measure(
            setup.config.measure,
            repo=setup.program.repo,
            tree=tree.path,
            program_dir=setup.program.dir,
            private=hidden,
            diagnostics=setup.paths.diagnostics,
        )
        measurer = Measurer(
            config=setup.config,
            program=setup.program,
            worktree=tree.path,
            env={**setup.measure_env, "EXPD_WORKTREE": str(tree.path)},
            sandbox=box,
        )
        slot = Slot(index=k, tree=tree, measuring=None)  # type: ignore[arg-type]
        slot.measuring = Measuring(store, measurer, tree, tracker(_slot_flight(slot)))
        slots.append(slot)
    return lanes, slots


def _slot_flight(slot: Slot) -> Callable[[], InFlight | None]:
    return lambda: slot.lane.in_flight if slot.lane is not None else None
