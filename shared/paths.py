"""Where everything lives: the repository's `.expd/` tree, run directories and the user index."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from shared.errors import UserError

PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROGRAM_FILES = ("program.toml", "program.md", "measure.sh", "build.sh")


def check_name(value: str, what: str) -> str:
    """Names that are also path components and git ref components: programs, bakeoffs, tasks,
    variants."""
    if not PROGRAM_NAME.match(value) or value.endswith((".", ".lock")) or ".." in value:
        raise UserError(
            f"invalid {what} {value!r}: use letters, digits, '-', '_' or '.' (at most 64, "
            "no '..', not ending in '.' or '.lock')"
        )
    return value


def check_program_name(name: str) -> str:
    # Also a valid git branch name component (the run's branch is expd/<name>/<stamp>).
    return check_name(name, "program name")


@dataclass(frozen=True)
class RunPaths:
    """The files of one run directory (see docs/architecture.md for who writes each)."""

    dir: Path

    @property
    def run_json(self) -> Path:
        return self.dir / "run.json"

    @property
    def state_json(self) -> Path:
        return self.dir / "state.json"

    @property
    def results(self) -> Path:
        return self.dir / "results.jsonl"

    @property
    def events(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def control(self) -> Path:
        return self.dir / "control.json"

    @property
    def control_lock(self) -> Path:
        return self.dir / "control.lock"

    @property
    def daemon_json(self) -> Path:
        return self.dir / "daemon.json"

    @property
    def daemon_lock(self) -> Path:
        return self.dir / "daemon.lock"

    @property
    def daemon_log(self) -> Path:
        return self.dir / "daemon.log"

    @property
    def guidance(self) -> Path:
        return self.dir / "guidance.md"

    @property
    def ideas(self) -> Path:
        return self.dir / "ideas.md"

    @property
    def diagnostics(self) -> Path:
        """Where the measure command may write diagnostics (`$EXPD_DIAGNOSTICS_FILE`)."""
        return self.dir / "diagnostics.txt"

    @property
    def summary(self) -> Path:
        return self.dir / "summary.md"

    @property
    def agent_dir(self) -> Path:
        return self.dir / "agent"

    @property
    def patches_dir(self) -> Path:
        return self.dir / "patches"

    @property
    def prompts_dir(self) -> Path:
        return self.dir / "prompts"

    @property
    def agent_git(self) -> Path:
        """expd's own git dir for the agent's tree (the agent's `.git` is never read)."""
        return self.dir / "git" / "agent"

    @property
    def eval_git(self) -> Path:
        """expd's own git dir for the measurement tree."""
        return self.dir / "git" / "eval"

    def lane_git(self, lane: int) -> Path:
        """expd's own git dir for lane `lane`'s agent tree (lane 0 uses `agent_git`)."""
        return self.agent_git if lane == 0 else self.dir / "git" / f"agent-L{lane}"

    def slot_git(self, slot: int) -> Path:
        """expd's own git dir for measurement slot `slot`'s tree (slot 0 uses `eval_git`)."""
        return self.eval_git if slot == 0 else self.dir / "git" / f"eval-S{slot}"

    @property
    def tune_db(self) -> Path:
        return self.dir / "tune.sqlite3"

    def agent_log(self, experiment: int) -> Path:
        return self.agent_dir / f"{experiment:04d}.log"

    def patch(self, experiment: int) -> Path:
        return self.patches_dir / f"{experiment:04d}.diff"

    def prompt(self, experiment: int) -> Path:
        return self.prompts_dir / f"{experiment:04d}.md"


@dataclass(frozen=True)
class ProgramPaths:
    repo: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.repo / ".expd" / "programs" / self.name

    @property
    def toml(self) -> Path:
        return self.dir / "program.toml"

    @property
    def md(self) -> Path:
        return self.dir / "program.md"

    @property
    def measure_sh(self) -> Path:
        return self.dir / "measure.sh"

    @property
    def build_sh(self) -> Path:
        return self.dir / "build.sh"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def start_lock(self) -> Path:
        """Serialises `expd start`/`resume` of this program (check, lock, check again)."""
        return self.dir / "start.lock"

    @property
    def active_lock(self) -> Path:
        """Held by the program's running daemon: at most one active run per program."""
        return self.dir / "active.lock"

    def run(self, stamp: str) -> RunPaths:
        return RunPaths(self.runs_dir / stamp)


@dataclass(frozen=True)
class RepoPaths:
    root: Path

    @property
    def expd(self) -> Path:
        return self.root / ".expd"

    @property
    def programs_dir(self) -> Path:
        return self.expd / "programs"

    @property
    def worktrees_dir(self) -> Path:
        return self.expd / "worktrees"

    def program(self, name: str) -> ProgramPaths:
        return ProgramPaths(self.root, name)

    @property
    def eval_dir(self) -> Path:
        return self.expd / "eval"

    def worktree(self, program: str, stamp: str) -> Path:
        """The agent's tree of a run."""
        return self.worktrees_dir / f"{program}-{stamp}"

    def eval_tree(self, program: str, stamp: str) -> Path:
        """Where a run's measurements happen, checked out by expd at the commit measured."""
        return self.eval_dir / f"{program}-{stamp}"

    def lane_worktree(self, program: str, stamp: str, lane: int) -> Path:
        """Lane `lane`'s agent tree (lane 0's is the run's `worktree`)."""
        base = self.worktree(program, stamp)
        return base if lane == 0 else base.with_name(f"{base.name}-L{lane}")

    def slot_eval_tree(self, program: str, stamp: str, slot: int) -> Path:
        """Measurement slot `slot`'s tree (slot 0's is the run's `eval_tree`)."""
        base = self.eval_tree(program, stamp)
        return base if slot == 0 else base.with_name(f"{base.name}-S{slot}")

    def program_names(self) -> list[str]:
        if not self.programs_dir.is_dir():
            return []
        return sorted(p.name for p in self.programs_dir.iterdir() if (p / "program.toml").exists())


def find_repo_root(start: Path | None = None) -> Path:
    """The main checkout's root for `start` (a worktree resolves to its main repository)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        git = candidate / ".git"
        if (
            candidate.parent.name in ("worktrees", "eval")
            and candidate.parent.parent.name == ".expd"
        ):
            continue  # a run's tree (its own repository): the user's repository is further up
        if git.is_dir():
            return candidate
        if git.is_file():
            # A linked worktree: ".git" names <main>/.git/worktrees/<name>.
            text = git.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                gitdir = (candidate / text[7:].strip()).resolve()
                if gitdir.parent.name == "worktrees":
                    return gitdir.parent.parent.parent
            return candidate
    raise UserError(f"{here}: not inside a git repository (run `git init` first)")


def branch_name(program: str, stamp: str) -> str:
    return f"expd/{program}/{stamp}"


def run_id(program: str, stamp: str) -> str:
    return f"{program}/{stamp}"


def state_dir() -> Path:
    """The user-wide state directory (index of runs), created private and checked for safety."""
    override = os.environ.get("EXPD_STATE_DIR")
    if override:
        base = Path(override)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "expd"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = base.stat()
    if mode.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or mode.st_uid != os.getuid():
        raise UserError(
            f"{base}: unsafe permissions (must be owned by you and not group/world-writable)"
        )
    return base


def index_dir() -> Path:
    path = state_dir() / "runs"
    path.mkdir(exist_ok=True, mode=0o700)
    return path
