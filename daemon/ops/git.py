"""Every git process expd starts: the run's worktree, worktrees for resume/validate/finalize,
the replay onto a review branch, the `tune` agent's commits and the demo repository.

Uses GitPython's command wrapper (`git.Git`), not a long-lived `Repo`: each call is one git process,
so nothing leaks over a night-long run. Calls block, so the loop runs them in a worker thread. The
few commands with their own `-c` settings (tune, demo) run git directly through `_run`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import git

from shared.errors import UserError
from shared.protect import PathChange
from shared.schema import DiffStat

FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "expd",
    "GIT_AUTHOR_EMAIL": "expd@localhost",
    "GIT_COMMITTER_NAME": "expd",
    "GIT_COMMITTER_EMAIL": "expd@localhost",
}


class GitError(Exception):
    """A git command failed; the message names the command and git's last line of output."""


def identity_env(repo: Path) -> dict[str, str]:
    """Identity variables to add when the repository has no committer configured."""
    try:
        git.Git(repo).config("user.email")
    except git.GitCommandError:
        return {k: v for k, v in FALLBACK_IDENTITY.items() if k not in os.environ}
    return {}


@dataclass
class Capture:
    commit: str
    patch: str = ""
    stat: DiffStat = field(default_factory=DiffStat)
    subject: str = ""
    refused: str = ""
    """Why `vet` refused the change (then nothing is pinned and the patch is not kept)."""


@dataclass
class Worktree:
    path: Path
    branch: str
    env: dict[str, str]

    def _git(self) -> git.Git:
        g = git.Git(self.path)
        g.update_environment(**self.env)
        return g

    # --- blocking primitives -------------------------------------------------------------------

    def snapshot_sync(self) -> tuple[str, str, list[str]]:
        """HEAD's commit, the checked-out branch and the uncommitted entries, in one git call."""
        status = self._git().status("--porcelain=v2", "--branch", "--untracked-files=all")
        head = oid = ""
        left = []
        for line in status.splitlines():
            if line.startswith("# branch.oid "):
                oid = line.split()[-1]
            elif line.startswith("# branch.head "):
                head = line.split(maxsplit=2)[-1]
            elif not line.startswith("#"):
                left.append(line)
        return oid, head, left

    def commit_all_sync(self, message: str) -> str:
        """Commit everything the agent left; no hooks, and no auto-gc forked mid-run."""
        g = self._git()
        g.add("-A")
        g.execute(
            [
                "git",
                "-c",
                "gc.auto=0",
                "-c",
                "maintenance.auto=false",
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty-message",
                "-m",
                message,
            ]
        )
        return g.rev_parse("HEAD")

    def subject_sync(self, commit: str) -> str:
        return self._git().log("-1", "--format=%s", commit)

    def diff_sync(self, base: str, head: str) -> tuple[str, DiffStat]:
        """The patch from `base` to `head` and its numstat, in one git call."""
        out = self._git().diff("--numstat", "-p", "--no-color", "--no-ext-diff", base, head)
        stat_part, _, _ = out.partition("\n\n")
        files: list[str] = []
        added = removed = 0
        for line in stat_part.splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue
            a, r, name = parts
            added += int(a) if a.isdigit() else 0
            removed += int(r) if r.isdigit() else 0
            files.append(name)
        patch_start = out.find("diff --git ")
        patch = out[patch_start:] if patch_start >= 0 else ""
        return patch + ("\n" if patch and not patch.endswith("\n") else ""), DiffStat(
            files=files, added=added, removed=removed
        )

    def pin_sync(self, ref: str, commit: str) -> None:
        """Keep `commit` reachable under `ref`, so recorded ids never dangle after a reset."""
        self._git().update_ref(ref, commit)

    def checkout_sync(self, target: str) -> None:
        """Detach at a commit (to measure the incumbent) or return to the run's branch."""
        if target == self.branch:
            self._git().checkout("-q", self.branch)
        else:
            self._git().checkout("-q", "--detach", target)

    def reset_sync(self, commit: str) -> None:
        """Put the run's branch back at `commit`, checked out and clean; raise if it is not."""
        g = self._git()
        g.checkout("-f", "-q", "-B", self.branch, commit)
        oid, head, left = self.snapshot_sync()
        if left:
            g.clean("-fdq")
            oid, head, left = self.snapshot_sync()
        if left or oid != commit or head != self.branch:
            raise RuntimeError(
                f"worktree not clean after reset to {commit[:10]} on {self.branch}: "
                f"head={head} oid={oid[:10]} left={left[:3]}"
            )

    def capture_sync(
        self,
        incumbent: str,
        *,
        message: str,
        ref: str,
        want_subject: bool,
        after_commit: Callable[[], None] = lambda: None,
        vet: Callable[[str, str], str | None] = lambda patch, messages: None,
    ) -> Capture:
        """Turn what the agent left into one pinned commit on the run's branch, with its patch.

        `vet` sees the patch and the agent's own commit messages before anything is pinned; a
        reason it returns refuses the change. One worker-thread hop for the whole sequence: this
        is the per-experiment hot path.
        """
        oid, branch, uncommitted = self.snapshot_sync()
        agent_commits = oid != incumbent
        if uncommitted:
            oid = self.commit_all_sync(message)
            after_commit()
        if branch != self.branch:
            # The agent switched branches or detached HEAD: its work belongs on the run's branch.
            self.reset_sync(oid)
        if oid == incumbent:
            return Capture(commit=oid)
        patch, stat = self.diff_sync(incumbent, oid)
        messages = self._git().log("--format=%B", f"{incumbent}..{oid}") if agent_commits else ""
        if refused := vet(patch, messages):
            return Capture(commit=oid, refused=refused)
        self.pin_sync(ref, oid)
        subject = self.subject_sync(oid) if want_subject else ""
        return Capture(commit=oid, patch=patch, stat=stat, subject=subject)

    # --- async wrappers for the loop ------------------------------------------------------------

    async def capture(
        self,
        incumbent: str,
        *,
        message: str,
        ref: str,
        want_subject: bool,
        after_commit: Callable[[], None] = lambda: None,
        vet: Callable[[str, str], str | None] = lambda patch, messages: None,
    ) -> Capture:
        return await anyio.to_thread.run_sync(
            functools.partial(
                self.capture_sync,
                incumbent,
                message=message,
                ref=ref,
                want_subject=want_subject,
                after_commit=after_commit,
                vet=vet,
            )
        )

    async def checkout(self, target: str) -> None:
        await anyio.to_thread.run_sync(self.checkout_sync, target)

    async def reset(self, commit: str) -> None:
        await anyio.to_thread.run_sync(self.reset_sync, commit)


def repo_head(repo: Path) -> str:
    try:
        return git.Git(repo).rev_parse("--verify", "-q", "HEAD")
    except git.GitCommandError:
        raise UserError(
            f"{repo}: the repository has no commits yet (commit something first)"
        ) from None


def add_worktree(repo: Path, path: Path, branch: str, base: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        git.Git(repo).worktree("add", "-q", "-b", branch, str(path), base)
    except git.GitCommandError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise UserError(f"cannot create worktree {path}: {detail[-1] if detail else exc}") from None


def remove_worktree(repo: Path, path: Path, branch: str) -> None:
    """Undo `add_worktree` after a failed start, so no run is left half-created."""
    g = git.Git(repo)
    with contextlib.suppress(git.GitCommandError):
        g.worktree("remove", "--force", str(path))
    with contextlib.suppress(git.GitCommandError):
        g.branch("-D", branch)


def restore_worktree(repo: Path, path: Path, branch: str) -> None:
    """Check the run's existing branch out again where its deleted worktree was (resume)."""
    g = git.Git(repo)
    g.worktree("prune")
    try:
        g.worktree("add", "-q", str(path), branch)
    except git.GitCommandError as exc:
        raise UserError(f"cannot restore worktree {path}: {exc.stderr.strip()}") from None


@contextlib.contextmanager
def detached_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A temporary `git worktree add --detach`, removed on any exit (error, Ctrl-C, SIGTERM)."""
    parent = Path(tempfile.mkdtemp(prefix="expd-validate-"))
    path = parent / "worktree"
    g = git.Git(repo)
    try:
        try:
            g.worktree("add", "-q", "--detach", str(path), commit)
        except git.GitCommandError as exc:
            detail = (exc.stderr or "").strip().splitlines()
            raise UserError(
                f"cannot create a worktree of {commit[:12]}: {detail[-1] if detail else exc}"
            ) from None
        yield path
    finally:
        with contextlib.suppress(git.GitCommandError):
            g.worktree("remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with contextlib.suppress(git.GitCommandError):
            g.worktree("prune")


def is_tracked(repo: Path, name: str) -> bool:
    """Whether `name` is committed, so a new worktree of the repository will have it."""
    try:
        git.Git(repo).ls_files("--error-unmatch", name)
    except git.GitCommandError:
        return False
    return True


# --- what a change touches: protected paths ----------------------------------------------------


def changed_paths(repo: Path, base: str, head: str) -> list[PathChange]:
    """Every path that differs between two commits, renames as a deletion plus an addition."""
    out = git.Git(repo).diff("--raw", "-z", "--no-renames", "--no-ext-diff", base, head)
    fields = out.split("\0")
    changes = []
    for meta, path in zip(fields[::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) == 5:
            changes.append(PathChange(path, parts[4][:1], old_mode=parts[0], new_mode=parts[1]))
    return changes


def tracked_files(repo: Path, commit: str) -> list[str]:
    """The files committed at `commit`, relative to the repository root."""
    out = git.Git(repo).ls_tree("-r", "-z", "--name-only", commit)
    return [name for name in out.split("\0") if name]


# --- finalize: replay kept commits onto the base -------------------------------------------------


def valid_branch_name(repo: Path, name: str) -> bool:
    try:
        git.Git(repo).check_ref_format("--branch", name)
    except git.GitCommandError:
        return False
    return True


def branch_exists(repo: Path, name: str) -> bool:
    try:
        git.Git(repo).rev_parse("--verify", "-q", f"refs/heads/{name}")
    except git.GitCommandError:
        return False
    return True


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The commit `rev` names, or None when the repository does not have it."""
    try:
        return git.Git(repo).rev_parse("--verify", "-q", f"{rev}^{{commit}}")
    except git.GitCommandError:
        return None


def cherry_pick(path: Path, env: dict[str, str], commit: str) -> list[str] | None:
    """Apply `commit` onto HEAD; None when it applied, else the conflicting files (maybe none)."""
    g = git.Git(path)
    g.update_environment(**env)
    try:
        g.cherry_pick("--allow-empty", "--keep-redundant-commits", commit)
    except git.GitCommandError:
        try:
            return g.diff("--name-only", "--diff-filter=U").split()
        except git.GitCommandError:
            return []
    return None


def head_commit(path: Path) -> str:
    return git.Git(path).rev_parse("HEAD")


def checkout_detached(path: Path, commit: str) -> None:
    git.Git(path).checkout("-q", "--detach", commit)


def create_branch(repo: Path, name: str, commit: str) -> None:
    git.Git(repo).branch(name, commit)


# --- commits with their own identity: the tune agent and the demo repository --------------------


def _run(
    cwd: Path, args: Sequence[str], config: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *config, *args], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )


def commit_files(
    worktree: Path, files: Sequence[str], message: str, identity: Sequence[str]
) -> str:
    """Commit exactly `files` (hooks skipped) and return the new short commit id.

    `identity` is git `-c` options (user.name, user.email); raises GitError naming the command.
    """
    config = (*identity, "-c", "commit.gpgsign=false")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    out = ""
    for args in (
        ("add", "--", *files),
        ("commit", "--quiet", "--no-verify", "-m", message, "--", *files),
        ("rev-parse", "--short", "HEAD"),
    ):
        result = _run(worktree, args, config, env)
        if result.returncode:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise GitError(f"git {args[0]} failed: {lines[-1] if lines else result.returncode}")
        out = result.stdout.strip()
    return out


def init_repo(root: Path, files: Sequence[str], message: str, identity: Sequence[str]) -> None:
    """`git init` on branch main and one commit of `files`; raises UserError naming the command."""
    config = (*identity, "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")
    for args in (
        ("init", "--quiet"),
        ("add", "--", *files),
        ("commit", "--quiet", "--no-verify", "-m", message),
    ):
        result = _run(root, args, config)
        if result.returncode:
            raise UserError(f"git {args[0]} failed in {root}: {result.stderr.strip()}")
