"""The confinement of one run's agent: its own tree, and nothing of the user's or of expd's.

Hidden: the user's repository (its checkout and its git directory), the program folder, the run
directory, the user-wide state directory, and the sockets of daemons that would act for the agent
outside the sandbox (container engines, the user's runtime directory with its D-Bus, SSH and GPG
agents): a read-only file system still lets a process connect to a socket on it. Writable: the agent's tree. While that tree is a
linked `git worktree`, its git metadata lives in the user's git directory, which then stays
writable; once it is a repository of its own that borrows the user's objects, only those objects
are shown, read-only. Each agent kind adds its private state folders (daemon/agents/homes.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from daemon.ops.sandbox import Confinement, Sandbox, make, resolve
from shared.errors import UserError
from shared.paths import state_dir


def git_common_dir(repo: Path) -> Path:
    """The user's git directory, from the files alone (no git process reads the agent's config)."""
    dot = repo / ".git"
    if not dot.is_file():
        return dot
    text = dot.read_text(errors="replace").strip()
    gitdir = (repo / text.partition(":")[2].strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir / common.read_text().strip()).resolve()
    return gitdir


SOCKETS = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
)


def _services() -> list[Path]:
    """Sockets whose daemons would do for the agent what the sandbox forbids it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return [Path(s) for s in SOCKETS] + ([Path(runtime)] if runtime else [])


def _user_state() -> list[Path]:
    try:
        return [state_dir()]
    except (UserError, OSError):
        return []


def run_confinement(repo: Path, tree: Path, private: Sequence[Path]) -> Confinement:
    """`tree` writable; `repo`, its git directory and the `private` folders out of sight."""
    repo, tree = repo.resolve(), tree.resolve()
    common = git_common_dir(repo).resolve()
    linked = (tree / ".git").is_file()
    hidden = [repo, *(p.resolve() for p in private), *_user_state(), *_services()]
    if not common.is_relative_to(repo):
        hidden.append(common)
    return Confinement(
        tree=tree,
        writable=(common,) if linked else (),
        hidden=tuple(hidden),
        readonly=() if linked else (common / "objects",),
    )


def for_run(mode: str, *, repo: Path, tree: Path, private: Sequence[Path]) -> Sandbox:
    """The run's sandbox (`[agent] sandbox`); SandboxUnavailable when the one named cannot run."""
    return make(resolve(mode), run_confinement(repo, tree, private))
