"""The places a bakeoff worker runs its attempts in, and what confines them.

Worker k owns slot k: an agent tree (`.expd/worktrees/<name>-<stamp>-<k>`), a criteria tree
(`.expd/eval/<name>-<stamp>-<k>`), expd's git dir for each in the run directory, and a folder for
the agent kinds' private state. All of them are removed and made again for every attempt, so
nothing one attempt leaves (files, ignored build output, a CLI's history) reaches the next.

An agent sees its slot's tree and nothing else of the user's repository: the whole repository is
hidden (so every other slot's tree, every criteria tree and the bakeoff folder with it), and so are
the run directory and the user's state. Its prompt file is let in read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from daemon.bakeoff.criteria import for_criteria
from daemon.ops.confine import run_confinement
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.sandbox import Sandbox, make, resolve
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths

STRENGTH = {"none": 0, "landlock": 1, "bwrap": 2}


def wipe(path: Path) -> None:
    """Remove `path` whatever stands there: a tree the agent made read-only, a symlink (never its
    target), a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        path.unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _ in os.walk(path):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in dirs:  # before os.walk lists it: a folder the agent made unreadable
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def weakest(backends: list[str]) -> str:
    """What a run confines its agents with when variants differ: the weakest backend."""
    return min(backends, key=lambda b: STRENGTH.get(b, 0)) if backends else "none"


@dataclass
class Slot:
    number: int
    agent: AgentTree
    criteria: EvalTree
    home: Path
    """Where agent kinds keep their private state folders (`AgentTask.run_dir`)."""
    _sandboxes: dict[str, Sandbox] = field(default_factory=dict)

    def fresh_sync(self, base: str) -> None:
        """Everything of this slot removed, then the agent's tree made at `base` (detached)."""
        for path in (self.agent.path, self.agent.gitdir, self.criteria.path, self.criteria.gitdir):
            wipe(path)
        wipe(self.home)
        self.home.mkdir(parents=True)
        self.agent.reset_sync(base)

    def agent_sandbox(self, mode: str, private: tuple[Path, ...], prompt: Path) -> Sandbox:
        """The agent's sandbox for `mode` (`[agent] sandbox`), its prompt file readable;
        SandboxUnavailable when the mode cannot run here."""
        if mode not in self._sandboxes:
            confinement = run_confinement(self.agent.repo, self.agent.path, private)
            self._sandboxes[mode] = make(resolve(mode), confinement)
        sandbox = self._sandboxes[mode]
        if sandbox.confinement is None:
            return sandbox
        readonly = (*sandbox.confinement.readonly, prompt.resolve())
        return replace(sandbox, confinement=replace(sandbox.confinement, readonly=readonly))


def make_slots(paths: BakeoffRunPaths, bakeoff: BakeoffPaths, stamp: str, count: int) -> list[Slot]:
    return [
        Slot(
            number=k,
            agent=AgentTree(
                repo=bakeoff.repo,
                path=bakeoff.slot_tree(stamp, k),
                gitdir=paths.slot_git(k, "agent"),
                branch=None,
            ),
            criteria=EvalTree(
                repo=bakeoff.repo,
                path=bakeoff.slot_eval(stamp, k),
                gitdir=paths.slot_git(k, "eval"),
            ),
            home=paths.dir / "homes" / str(k),
        )
        for k in range(count)
    ]


def criteria_sandboxes(
    mode: str, slots: list[Slot], paths: BakeoffRunPaths, bakeoff: BakeoffPaths
) -> list[Sandbox]:
    """Each slot's criteria sandbox (`criteria_sandbox`): the run directory and every agent tree
    hidden, the bakeoff folder readable; SandboxUnavailable when the mode cannot run here."""
    private = (paths.dir, *(s.agent.path for s in slots))
    return [
        for_criteria(
            mode, repo=bakeoff.repo, tree=s.criteria.path, bakeoff_dir=bakeoff.dir, private=private
        )
        for s in slots
    ]


def remove_slots(slots: list[Slot]) -> None:
    """At the end of a run: its scratch trees and expd's git dirs for them (the work is pinned
    under its refs)."""
    for slot in slots:
        for path in (slot.agent.path, slot.agent.gitdir, slot.criteria.path, slot.criteria.gitdir):
            wipe(path)
        wipe(slot.home)
