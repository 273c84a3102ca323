"""A run's two trees: the agent's and the measurement's, made by `expd start`, repaired on resume."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pygit2

from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.store import TreeError, open_user_repo
from daemon.ops.git.user_writes import delete_own_ref, set_own_ref
from shared.errors import UserError
from shared.paths import RepoPaths, RunPaths
from shared.schema import RunManifest


def run_trees(paths: RunPaths, manifest: RunManifest) -> tuple[AgentTree, EvalTree]:
    repo = Path(manifest.repo)
    agent = AgentTree(
        repo=repo, path=Path(manifest.worktree), gitdir=paths.agent_git, branch=manifest.branch
    )
    where = RepoPaths(repo).eval_tree(manifest.program, paths.dir.name)
    return agent, EvalTree(repo=repo, path=where, gitdir=paths.eval_git)


def lane_trees(paths: RunPaths, manifest: RunManifest, count: int) -> list[AgentTree]:
    """Every lane's agent tree (made on first reset): lane 0's is the run's tree, the others sit
    beside it with git dirs of their own. None is on the run's branch: lanes reset at once, and
    only the decider moves the branch (with `AgentTree.keep` of the run's tree)."""
    repo = Path(manifest.repo)
    where = RepoPaths(repo)
    return [
        AgentTree(
            repo=repo,
            path=where.lane_worktree(manifest.program, paths.dir.name, k),
            gitdir=paths.lane_git(k),
            branch=None,
        )
        for k in range(count)
    ]


def slot_trees(paths: RunPaths, manifest: RunManifest, count: int) -> list[EvalTree]:
    """Every measurement slot's tree: slot 0's is the run's measurement tree."""
    repo = Path(manifest.repo)
    where = RepoPaths(repo)
    return [
        EvalTree(
            repo=repo,
            path=where.slot_eval_tree(manifest.program, paths.dir.name, k),
            gitdir=paths.slot_git(k),
        )
        for k in range(count)
    ]


def create_trees(agent: AgentTree, measured: EvalTree, base: str) -> None:
    """The run's branch at `base` and both trees checked out there; UserError when impossible."""
    try:
        user = open_user_repo(agent.repo)
        if f"refs/heads/{agent.branch}" in user.references:
            raise UserError(f"cannot create the run's branch {agent.branch}: it already exists")
        if agent.path.exists() or measured.path.exists():
            raise UserError(f"cannot create the run's trees: {agent.path} already exists")
        set_own_ref(user, f"refs/heads/{agent.branch}", base)
        agent.reset_sync(base)
        measured.checkout_sync(base)
    except (TreeError, pygit2.GitError, OSError) as exc:
        raise UserError(f"cannot create the run's trees: {exc}") from None


def remove_trees(agent: AgentTree, measured: EvalTree) -> None:
    """Undo `create_trees` after a failed start, so no run is left half-created."""
    shutil.rmtree(agent.path, ignore_errors=True)
    measured.remove()
    shutil.rmtree(agent.gitdir, ignore_errors=True)
    with contextlib.suppress(TreeError):
        delete_own_ref(open_user_repo(agent.repo), f"refs/heads/{agent.branch}")
