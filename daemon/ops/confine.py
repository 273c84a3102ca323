"""The confinement of one run's agent: its own tree, and nothing of the user's or of expd's.

The agent's tree is a repository of its own whose objects come from the user's repository through
alternates (daemon/ops/git/dotgit.py, `write_dotgit`): that objects directory — and the ones it
borrows in turn — is all of the user's repository the agent needs, and it gets it read-only.

Hidden: the user's repository (its checkout and its git directory: refs, config, hooks, index),
the measurement tree and expd's private git dirs, the program folder, the run directory (with
`run.key`), the user-wide state directory, and the sockets of daemons that would act for the agent
outside the sandbox (container engines, the user's runtime directory with its D-Bus, SSH and GPG
agents): a read-only file system still lets a process connect to a socket on it. Writable: the
agent's tree; each agent kind adds its private state folders (daemon/agents/homes.py).

A measurement (the build and every run of the measure command) executes the agent's committed
code, so it is confined too (`measure_confinement`): it writes only the measurement tree, its
private temporary directory, the diagnostics file and `[measure] writable`; it reads the program
folder; the user's checkout and git directory (but the objects the tree borrows), the agent's
tree, the run directories, expd's git dirs and the user's state are out of its sight.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from daemon.ops.git.store import TreeError, common_dir, open_user_repo
from daemon.ops.sandbox import Confinement, Sandbox, make, resolve
from shared.errors import UserError
from shared.paths import state_dir
from shared.schema import MeasureConfig

SOCKETS = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
)
ALTERNATES_DEPTH = 5
"""How deep git follows alternates of alternates; the agent's reads stop where git's do."""


def _services() -> list[Path]:
    """Sockets whose daemons would do for the agent what the sandbox forbids it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return [Path(s) for s in SOCKETS] + ([Path(runtime)] if runtime else [])


def _user_state() -> list[Path]:
    try:
        return [state_dir()]
    except (UserError, OSError):
        return []


def user_git_dir(repo: Path) -> Path:
    """The user's git directory that holds the objects (a linked worktree's main git dir), found
    as the agent tree's alternates find it; `repo/.git` when the repository cannot be opened."""
    try:
        return common_dir(open_user_repo(repo)).resolve()
    except TreeError:
        return (repo / ".git").resolve()


def borrowed_objects(objects: Path) -> list[Path]:
    """`objects` and every objects directory it borrows through alternates, as git follows them:
    what the agent's git needs to read, and nothing else of the user's git directory."""
    found: list[Path] = []
    todo = [(objects.resolve(), 0)]
    while todo:
        here, depth = todo.pop(0)
        if here in found or depth > ALTERNATES_DEPTH:
            continue
        found.append(here)
        try:
            lines = (here / "info" / "alternates").read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                todo.append(((here / line).resolve(), depth + 1))
    return found


def run_confinement(
    repo: Path, tree: Path, private: Sequence[Path], *, gitdir: Path | None = None
) -> Confinement:
    """`tree` writable; the user's repository and git directory, and the `private` folders (the
    program folder, the run directory, the measurement tree, …), out of sight; the user's objects
    read-only. `gitdir` is the user's git directory holding the objects (found when None)."""
    repo, tree = repo.resolve(), tree.resolve()
    common = (gitdir or user_git_dir(repo)).resolve()
    hidden = [repo, common, *(p.resolve() for p in private), *_user_state(), *_services()]
    if common.name == ".git" and not common.is_relative_to(repo):
        hidden.append(common.parent)  # the main checkout of which the user's is a linked worktree
    return Confinement(
        tree=tree, hidden=tuple(hidden), readonly=tuple(borrowed_objects(common / "objects"))
    )


def for_run(mode: str, *, repo: Path, tree: Path, private: Sequence[Path]) -> Sandbox:
    """The run's sandbox (`[agent] sandbox`); SandboxUnavailable when the one named cannot run."""
    return make(resolve(mode), run_confinement(repo, tree, private))


def measure_confinement(
    repo: Path,
    tree: Path,
    private: Sequence[Path],
    *,
    program_dir: Path,
    writable: Sequence[Path] = (),
) -> Confinement:
    """`tree` (the measurement tree) and `writable` (the diagnostics file, `[measure] writable`)
    writable; the program folder read-only; the rest as `run_confinement` hides it for the
    agent, `private` included (the agent's tree, the run directory, expd's git dirs). Every run
    directory of the program is hidden, and the program's locks."""
    runs = program_dir / "runs"
    locks = (program_dir / "start.lock", program_dir / "active.lock")
    base = run_confinement(repo, tree, (*private, runs, *locks))
    return replace(
        base,
        writable=tuple(Path(p).resolve() for p in writable),
        readonly=(*base.readonly, program_dir.resolve()),
        host_dev=True,
    )


def measure_writable(entries: Sequence[str], repo: Path) -> list[Path]:
    """`[measure] writable` as paths: `~` expanded, relative ones from the repository; created
    when missing (a cache folder), so the sandbox can bind it."""
    out = []
    for entry in entries:
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else repo / path
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)
        out.append(path)
    return out


def for_measure(
    config: MeasureConfig,
    *,
    repo: Path,
    tree: Path,
    program_dir: Path,
    private: Sequence[Path] = (),
    diagnostics: Path | None = None,
) -> Sandbox:
    """The measurement's sandbox (`[measure] sandbox`); SandboxUnavailable when the one named
    cannot run. The diagnostics file is created here, so there is a file to bind."""
    choice = resolve(config.sandbox, "[measure] sandbox")
    writable = measure_writable(config.writable, repo)
    if diagnostics is not None:
        diagnostics.parent.mkdir(parents=True, exist_ok=True)
        diagnostics.touch(exist_ok=True)
        writable.append(diagnostics)
    confinement = measure_confinement(
        repo, tree, private, program_dir=program_dir, writable=writable
    )
    return make(choice, confinement)
