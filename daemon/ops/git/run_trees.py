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
