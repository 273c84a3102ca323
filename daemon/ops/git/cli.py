"""The only git processes expd starts: the `tune` agent's commits inside the agent's own tree, the
demo repository, and bundles (daemon/ops/git/bundles.py; libgit2 has none). Each runs with no system or global config, no hooks, no fsmonitor and no
signing, whatever the repository says."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from shared.errors import UserError

SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
)


class GitError(Exception):
    """A git command failed; the message names the command and git's last line of output."""


def _run(
    cwd: Path, args: Sequence[str], config: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    safe_env = {
        **(env if env is not None else os.environ),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }
    safe_env["GIT_NO_REPLACE_OBJECTS"] = "1"
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS"):
        safe_env.pop(name, None)
    return subprocess.run(
        ["git", *SAFE_CONFIG, *config, "-C", str(cwd), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=safe_env,
        check=False,
    )


def run_git(
    cwd: Path, args: Sequence[str], config: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """One git command in `cwd` with the safe configuration; the caller reads its result."""
    return _run(cwd, args, config)


def commit_files(
    worktree: Path, files: Sequence[str], message: str, identity: Sequence[str]
) -> str:
    """Commit exactly `files` (hooks skipped) and return the new short commit id.

    `identity` is git `-c` options (user.name, user.email); raises GitError naming the command.
    """
    out = ""
    for args in (
        ("add", "--", *files),
        ("commit", "--quiet", "--no-verify", "-m", message, "--", *files),
        ("rev-parse", "--short", "HEAD"),
    ):
        result = _run(worktree, args, identity)
        if result.returncode:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise GitError(f"git {args[0]} failed: {lines[-1] if lines else result.returncode}")
        out = result.stdout.strip()
    return out


def init_repo(root: Path, files: Sequence[str], message: str, identity: Sequence[str]) -> None:
    """`git init` on branch main and one commit of `files`; raises UserError naming the command."""
    config = (*identity, "-c", "init.defaultBranch=main")
    for args in (
        ("init", "--quiet"),
        ("add", "--", *files),
        ("commit", "--quiet", "--no-verify", "-m", message),
    ):
        result = _run(root, args, config)
        if result.returncode:
            raise UserError(f"git {args[0]} failed in {root}: {result.stderr.strip()}")
