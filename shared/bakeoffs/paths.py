"""Where a bakeoff and its runs live: `.expd/bakeoffs/<name>/` and `runs/<stamp>/` inside it.

A bakeoff run directory has the files of a program run that every run has (run.json, state.json,
events.jsonl, control.json, daemon.*, run.key) and its own: `attempts.jsonl` (the daemon's record),
`marks.jsonl` (verdicts on manual criteria, written by `expd bakeoff mark`) and one folder per
attempt under `attempts/` (agent log, prompt, patch, criteria log).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.paths import RunPaths, check_name

check_id = check_name
"""Task, variant and bakeoff names: also path components and ref components."""


@dataclass(frozen=True)
class AttemptPaths:
    dir: Path

    @property
    def agent_log(self) -> Path:
        return self.dir / "agent.log"

    @property
    def prompt(self) -> Path:
        return self.dir / "prompt.md"

    @property
    def patch(self) -> Path:
        return self.dir / "patch.diff"

    @property
    def criteria_log(self) -> Path:
        return self.dir / "criteria.log"


@dataclass(frozen=True)
class BakeoffRunPaths(RunPaths):
    @property
    def attempts(self) -> Path:
        return self.dir / "attempts.jsonl"

    @property
    def marks(self) -> Path:
        return self.dir / "marks.jsonl"

    @property
    def attempts_dir(self) -> Path:
        return self.dir / "attempts"

    def attempt(self, task: str, variant: str, attempt: int) -> AttemptPaths:
        return AttemptPaths(self.attempts_dir / task / f"{variant}-{attempt}")

    def slot_git(self, slot: int, which: str) -> Path:
        """expd's git dir for slot `slot`'s agent tree (`agent`) or criteria tree (`eval`)."""
        return self.dir / "git" / f"{which}-{slot}"


@dataclass(frozen=True)
class BakeoffPaths:
    repo: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.repo / ".expd" / "bakeoffs" / self.name

    @property
    def toml(self) -> Path:
        return self.dir / "bakeoff.toml"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def start_lock(self) -> Path:
        return self.dir / "start.lock"

    def run(self, stamp: str) -> BakeoffRunPaths:
        return BakeoffRunPaths(self.runs_dir / stamp)

    def slot_tree(self, stamp: str, slot: int) -> Path:
        """Slot `slot`'s agent tree (made afresh for every attempt it runs)."""
        return self.repo / ".expd" / "worktrees" / f"{self.name}-{stamp}-{slot}"

    def slot_eval(self, stamp: str, slot: int) -> Path:
        """Where slot `slot`'s criteria run, at the attempt's commit."""
        return self.repo / ".expd" / "eval" / f"{self.name}-{stamp}-{slot}"


def bakeoffs_dir(repo: Path) -> Path:
    return repo / ".expd" / "bakeoffs"


def bakeoff_names(repo: Path) -> list[str]:
    where = bakeoffs_dir(repo)
    if not where.is_dir():
        return []
    return sorted(p.name for p in where.iterdir() if (p / "bakeoff.toml").exists())


def attempt_ref(run_id: str, task: str, variant: str, attempt: int) -> str:
    """The ref that pins an attempt's work in the user's repository."""
    return f"refs/expd/bakeoffs/{run_id}/{task}/{variant}/{attempt}"
