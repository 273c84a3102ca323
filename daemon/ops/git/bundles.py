"""Git bundles: how a repository reaches a machine with no shared filesystem, and how the change
made there comes back.

Out: `make_bundle` packs the incumbent and its whole history (the worker has no repository to be
thin against). There: `unpack` makes a fresh bare repository from it and the agent's tree at the
commit (an `AgentTree`, so the change is captured exactly as on the daemon's machine), and
`candidate_bundle` packs only the candidate's new objects, its base a prerequisite. Back:
`fetch_candidate` takes the bundle into a private git dir of expd's (the user's objects through
alternates) and refuses it unless its one commit has exactly the base as parent; the caller checks
the `Candidate` and publishes it with `publish`, or `apply_candidate` does both with no check.

The git processes run with no hooks, no system or global config and no replace refs, and every
object fetched is checked (`transfer.fsckObjects`): the bundle was made where an agent ran.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pygit2

from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.candidate import Candidate, Capture, Check, changes
from daemon.ops.git.cli import run_git
from daemon.ops.git.diff import diff_patch
from daemon.ops.git.store import common_dir, open_user_repo
from daemon.ops.git.user_writes import copy_commits, set_own_ref

BUNDLE_REF = "refs/expd/bundle"
"""The one ref a bundle carries (its head), in the repositories expd makes for it."""
FETCH = ("-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true")


class BundleError(Exception):
    """A bundle could not be made or was refused; the message says why, on one line."""


def _git(cwd: Path, *args: str, config: tuple[str, ...] = ()) -> str:
    result = run_git(cwd, args, config)
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise BundleError(f"git {args[0]} failed: {lines[-1] if lines else result.returncode}")
    return result.stdout


def _bare(path: Path, objects: Path | None = None) -> Path:
    """A new bare repository at `path`, borrowing `objects` through alternates when given."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "--quiet", "--bare", "--template=")
    if objects is not None:
        (path / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    return path


def _pack(gitdir: Path, tip: str, *exclude: str) -> bytes:
    _git(gitdir, "update-ref", BUNDLE_REF, tip)
    out = gitdir / "out.bundle"
    _git(gitdir, "bundle", "create", "--quiet", str(out), BUNDLE_REF, *(f"^{e}" for e in exclude))
    try:
        return out.read_bytes()
    finally:
        out.unlink(missing_ok=True)


def _head(gitdir: Path, bundle: Path) -> str:
    """The commit the bundle's one head names (BundleError for any other shape)."""
    heads = _git(gitdir, "bundle", "list-heads", str(bundle)).split()
    if len(heads) != 2 or heads[1] != BUNDLE_REF:
        raise BundleError(f"not one of expd's bundles (heads: {' '.join(heads[1::2])[:200]})")
    return heads[0]


def make_bundle(repo: Path, commit: str) -> bytes:
    """`commit` and all of its history from the user's repository at `repo`, as a bundle that
    unpacks with no repository at all. Nothing is written into the user's repository."""
    objects = common_dir(open_user_repo(repo)) / "objects"
    scratch = Path(tempfile.mkdtemp(prefix="expd-bundle-"))
    try:
        return _pack(_bare(scratch / "git", objects), commit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def unpack(bundle: bytes, dest: Path, commit: str) -> AgentTree:
    """A fresh bare repository (`dest/repo.git`) from `bundle`, and the agent's tree
    (`dest/tree`, expd's git dir `dest/git`) at `commit`, which must be the bundle's head."""
    gitdir = _bare(dest / "repo.git")
    if (head := _fetch_bundle(gitdir, bundle, dest / "in.bundle")) != commit:
        raise BundleError(f"the bundle holds {head[:10]}, not {commit[:10]}")
    tree = AgentTree(repo=gitdir, path=dest / "tree", gitdir=dest / "git", branch=None)
    tree.reset_sync(commit)
    return tree


def _fetch_bundle(gitdir: Path, bundle: bytes, path: Path) -> str:
    """Fetch `bundle` (written at `path` for the time of it) into `gitdir`; its head commit."""
    path.write_bytes(bundle)
    try:
        head = _head(gitdir, path)
        _git(
            gitdir,
            "fetch",
            "--quiet",
            "--no-tags",
            str(path),
            f"{BUNDLE_REF}:{BUNDLE_REF}",
            config=FETCH,
        )
    finally:
        path.unlink(missing_ok=True)
    return head


def candidate_bundle(worker_repo: Path, base: str, commit: str) -> bytes:
    """`commit`'s objects that `base` does not have, `base` a prerequisite (the daemon has it)."""
    return _pack(worker_repo, commit, base)


def fetch_candidate(user_root: Path, bundle: bytes, base: str, gitdir: Path) -> Candidate:
    """The candidate in `bundle`, fetched into a new private git dir `gitdir` (the user's objects
    through alternates; nothing is written into the user's repository). Refused (BundleError)
    unless the bundle holds exactly one commit whose only parent is `base`."""
    if gitdir.exists():
        shutil.rmtree(gitdir)
    objects = common_dir(open_user_repo(user_root)) / "objects"
    _bare(gitdir, objects)
    head = _fetch_bundle(gitdir, bundle, gitdir / "in.bundle")
    repo = pygit2.Repository(str(gitdir))
    commit = repo[head].peel(pygit2.Commit)
    parents = [str(p) for p in commit.parent_ids]
    if parents != [base]:
        raise BundleError(
            f"the candidate {head[:10]} is not one commit on {base[:10]} (parents: "
            f"{', '.join(p[:10] for p in parents) or 'none'})"
        )
    parent = repo[base].peel(pygit2.Commit)
    changed = changes(repo, parent.tree, commit.tree)
    return Candidate(head, base, commit.message.rstrip("\n"), changed, repo)


def publish(candidate: Candidate, user_root: Path, ref: str) -> str:
    """Copy the candidate's objects into the user's repository and pin it under `ref` (one of
    expd's own refs)."""
    user = open_user_repo(user_root)
    copy_commits(candidate.repo, user, candidate.commit, candidate.parent)
    set_own_ref(user, ref, candidate.commit)
    return candidate.commit


def apply_candidate(user_root: Path, bundle: bytes, base: str, ref: str) -> str:
    """`fetch_candidate` then `publish`, through a temporary git dir: the candidate's commit."""
    scratch = Path(tempfile.mkdtemp(prefix="expd-candidate-"))
    try:
        return publish(fetch_candidate(user_root, bundle, base, scratch / "git"), user_root, ref)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def capture_candidate(
    user_root: Path, bundle: bytes, base: str, gitdir: Path, ref: str, check: Check
) -> Capture:
    """A remote turn's candidate as the local capture gives it: fetched aside, refused (nothing
    written into the user's repository) when `check` says so, else pinned under `ref` with its
    patch and diff stat. BundleError when the bundle is not one commit on `base`."""
    try:
        candidate = fetch_candidate(user_root, bundle, base, gitdir)
        if refused := check(candidate):
            return Capture(refused=refused)
        publish(candidate, user_root, ref)
        patch, stat = diff_patch(open_user_repo(user_root), base, candidate.commit)
        subject = (candidate.message.splitlines() or [""])[0]
        return Capture(commit=candidate.commit, patch=patch, stat=stat, subject=subject)
    finally:
        shutil.rmtree(gitdir, ignore_errors=True)
