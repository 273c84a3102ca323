"""Helpers for hostile-agent tests: a user's repository with work in progress, a snapshot of
everything a run must leave alone in it, and the invariants every hostile scenario checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shared import codec
from shared.paths import RunPaths
from shared.schema import ResultRecord, RunManifest
from tests.repos import AGENT_SH, git, make_repo, results
from tests.repos import state as read_state

USER_EDIT = "x = 0  # the user's uncommitted edit\n"
USER_UNTRACKED = "the user's untracked notes\n"

HOSTILE_AGENT = """#!/bin/bash
cat > /dev/null
R=$(cd "$EXPD_WORKTREE/../../.." && pwd)
n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py 2>/dev/null || echo 0)
echo "EXPD-DESCRIPTION: x from $n to $((n + 1))"
echo "x = $((n + 1))" > f.py
{hostile}
exit 0
"""


def hostile_agent(hostile: str) -> str:
    """The usual agent (x += 1), then `hostile` (bash; `$R` is the user's repository)."""
    assert "cat > /dev/null" in AGENT_SH
    return HOSTILE_AGENT.replace("{hostile}", hostile)


def unconfined_repo(root: Path, **kwargs: object) -> Path:
    """`make_repo` with `[agent] sandbox = "none"`: the git and record scenarios test each defence
    without the sandbox's help, as on a machine that has none (a sandbox would refuse most of their
    attacks before expd's own defences are reached; tests/test_hostile_confined.py and
    tests/test_sandbox.py attack the sandbox itself)."""
    kwargs.setdefault("sandbox", "none")
    return make_repo(root, **kwargs)  # type: ignore[arg-type]


def user_repo(root: Path, hostile: str, **kwargs: object) -> Path:
    """`make_repo` with a hostile agent (unconfined unless `sandbox` says otherwise), then the
    user's work in progress: an uncommitted edit of a tracked file and an untracked file, which no
    run may touch."""
    repo = unconfined_repo(root, agent_sh=hostile_agent(hostile), **kwargs)
    (repo / "f.py").write_text(USER_EDIT)
    (repo / "notes.txt").write_text(USER_UNTRACKED)
    return repo


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path, skip: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if str(rel / d) not in skip and d not in skip]
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            out[str(rel / name)] = _digest(Path(dirpath) / name)
    return out


def snapshot(repo: Path) -> dict[str, object]:
    """Everything of the user's a run must leave byte-identical: the checkout (tracked, edited and
    untracked files), and `.git` except expd's own refs, their logs and objects (which only grow)."""
    gitdir = repo / ".git"
    own = ("refs/expd", "refs/heads/expd", "logs/refs/heads/expd", "logs/refs/expd")
    meta = {
        name: digest
        for name, digest in _files(gitdir, ("objects", *own)).items()
        if not name.startswith(own)
    }
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return {
        "checkout": _files(repo, (".git", ".expd")),
        "git": meta,
        "refs": sorted(r for r in refs if not r.startswith(("refs/expd/", "refs/heads/expd/"))),
        "head": (gitdir / "HEAD").read_text(),
    }


def assert_untouched(repo: Path, before: dict[str, object]) -> None:
    after = snapshot(repo)
    for key in before:
        assert after[key] == before[key], f"the user's {key} changed: {before[key]} → {after[key]}"
    assert (repo / "f.py").read_text() == USER_EDIT
    assert (repo / "notes.txt").read_text() == USER_UNTRACKED


def assert_no_worse_kept(recs: list[ResultRecord], lower_is_better: bool = True) -> None:
    """Each keep beats the incumbent it replaced (the metric is deterministic in these tests)."""
    best = None
    for r in recs:
        if r.status == "baseline":
            best = r.metric
        elif r.status == "keep":
            assert best is not None and r.metric is not None
            assert (r.metric < best) if lower_is_better else (r.metric > best), r
            best = r.metric


def manifest(paths: RunPaths) -> RunManifest:
    return codec.read(paths.run_json, RunManifest)


def assert_agent_tree_sane(paths: RunPaths) -> None:
    """The agent's tree is back at the incumbent, on the run's branch, clean."""
    mf = manifest(paths)
    st = read_state(paths)
    wt = Path(mf.worktree)
    assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(wt, "rev-parse", "HEAD") == st.incumbent_commit
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD") == mf.branch
    assert git(Path(mf.repo), "rev-parse", mf.branch) == st.incumbent_commit


def statuses(paths: RunPaths) -> list[str]:
    return [r.status for r in results(paths)]


def survivors(mark: str) -> list[str]:
    """Command lines of live processes carrying the marker (none may outlive the agent)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if mark in cmdline and "hostile-" in cmdline:
            found.append(cmdline)
    return found
