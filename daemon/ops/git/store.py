"""The user's repository and expd's private git dirs, in-process through libgit2 (pygit2).

In-process, because libgit2 runs no hooks, no fsmonitor and no external filter drivers, never signs,
and costs no process start-ups (they were most of expd's own time per experiment). Private git dirs,
because a tree the agent or a measured program can write is never read as a repository: each tree
expd works in is the work directory of a git dir of expd's own in the run directory (its own config,
index, HEAD and objects; the user's objects through alternates), and every checkout first removes
the symlinks and hard links that would make it write outside that tree.

What expd writes into the user's repository: objects, and refs in its own namespace (`refs/expd/…`,
`refs/heads/expd/…`), plus the review branch `expd finalize` is asked for. Never its index, HEAD,
config, hooks or worktree list.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, DeltaStatus, DiffFind, RepositoryOpenFlag

from shared.schema import DiffStat

OWN_REFS = ("refs/expd/", "refs/heads/expd/")
"""The only refs of the user's repository a run writes."""


class TreeError(Exception):
    """A tree or repository expd works in is missing, moved or unusable; the message says which."""


def open_user_repo(root: Path) -> pygit2.Repository:
    """The user's repository, opened at exactly `root` (no search upwards, no environment)."""
    try:
        return pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise TreeError(f"{root}: cannot open the repository ({exc})") from None


def common_dir(repo: pygit2.Repository) -> Path:
    """The git dir that holds the objects and shared refs (a linked worktree's main git dir)."""
    gitdir = Path(repo.path)
    link = gitdir / "commondir"
    if link.is_file():
        return (gitdir / link.read_text().strip()).resolve()
    return gitdir


def _remove(path: Path) -> None:
    """Remove whatever is at `path` (a directory tree, a file or a symlink; never its target)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def ensure_tree(path: Path) -> None:
    """Make `path` a real directory where it is: a symlink or file put there is removed, and a path
    whose parent leads elsewhere (a symlink on the way) is refused, never followed."""
    parent = path.parent
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
    if os.path.realpath(parent) != os.path.abspath(parent):
        raise TreeError(f"{parent} leads elsewhere (a symlink on the way): refusing to use it")
    if _is_real_dir(path):
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.mkdir()


def tree_problem(path: Path) -> str:
    """Why `path` is not the tree expd made (deleted, replaced, moved), or "" when it is."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return f"the agent's tree {path} was deleted"
    if not stat.S_ISDIR(mode):
        return f"the agent's tree {path} was replaced by a {'symlink' if stat.S_ISLNK(mode) else 'file'}"
    if os.path.realpath(path) != os.path.abspath(path):
        return f"the agent's tree {path} was moved (a symlink on the way)"
    return ""


def private_repo(gitdir: Path, workdir: Path, user: pygit2.Repository) -> pygit2.Repository:
    """expd's git dir for `workdir`, created when missing: its own config, index, HEAD and objects,
    the user's objects through alternates, the user's exclude patterns plus `.expd/`. The work
    directory is made when missing (libgit2 will not open a git dir whose work tree is gone)."""
    ensure_tree(workdir)
    if not (gitdir / "HEAD").is_file():
        _remove(gitdir)
        repo = pygit2.init_repository(str(gitdir), bare=True)
        repo.config["core.bare"] = False
        repo.config["core.worktree"] = str(workdir)
        repo.config["gc.auto"] = 0
        (gitdir / "objects" / "info" / "alternates").write_text(f"{common_dir(user) / 'objects'}\n")
        (gitdir / "info").mkdir(exist_ok=True)
        (gitdir / "info" / "exclude").write_text(_user_excludes(user) + "/.expd/\n")
    # Only this process writes here (the run's daemon, or the CLI before it starts): a lock is stale.
    for lock in ("index.lock", "HEAD.lock", "config.lock"):
        with contextlib.suppress(FileNotFoundError):
            (gitdir / lock).unlink()
    try:
        repo = pygit2.Repository(str(gitdir), RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError as exc:
        raise TreeError(f"{gitdir}: cannot open expd's git dir ({exc})") from None
    if repo.workdir is None or Path(repo.workdir) != workdir:
        raise TreeError(f"{gitdir} is not the git dir of {workdir}")
    return repo


def _user_excludes(user: pygit2.Repository) -> str:
    try:
        text = (common_dir(user) / "info" / "exclude").read_text()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if not text or text.endswith("\n") else text + "\n"


def defuse(workdir: Path, paths: Iterable[str]) -> None:
    """Remove what would make a checkout of `paths` write outside `workdir`: a symlink on the way
    to a path, and a symlink or a hard link at the path itself (libgit2 writes through both)."""
    root = Path(workdir)
    for name in paths:
        parts = name.rstrip("/").split("/")
        here = root
        for i, part in enumerate(parts):
            here = here / part
            try:
                info = os.lstat(here)
            except OSError:
                break
            last = i == len(parts) - 1
            if stat.S_ISLNK(info.st_mode) or (
                last and info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode)
            ):
                here.unlink()
                break
            if not stat.S_ISDIR(info.st_mode):
                break


def checkout(repo: pygit2.Repository, workdir: Path, commit: str, *, clean: bool) -> None:
    """Make `workdir`'s tracked files exactly `commit`'s, with the index and a detached HEAD to
    match; untracked files are removed when `clean`, ignored ones stay."""
    ensure_tree(workdir)
    target = repo[commit].peel(pygit2.Commit)
    status = repo.status(untracked_files="all")
    if clean:
        for name in status:
            if name.endswith("/"):  # a nested repository: libgit2 leaves those alone
                _remove(workdir / name.rstrip("/"))
    touched = set(status)
    for delta in repo.index.diff_to_tree(target.tree).deltas:
        touched.update((delta.old_file.path, delta.new_file.path))
    defuse(workdir, touched)
    strategy = CheckoutStrategy.FORCE
    if clean:
        strategy |= CheckoutStrategy.REMOVE_UNTRACKED
    repo.checkout_tree(target.tree, strategy=strategy)
    repo.set_head(target.id)


DOTGIT_CONFIG = (
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
    "\tlogallrefupdates = true\n"
)
DOTGIT_KEEP = frozenset(
    {"HEAD", "config", "index", "objects", "refs", "info", "logs", "packed-refs"}
)
"""What may stay in a tree's `.git` between rewrites (the agent's own objects and branches do no
harm); anything else there (hooks, `commondir`, locks, …) is removed."""


def write_dotgit(
    workdir: Path, repo: pygit2.Repository, user: pygit2.Repository, commit: str, branch: str | None
) -> None:
    """Give a tree others use (the agent, a measured program) a sane `.git`, so git works there and
    shows it clean at `commit`: expd's config, HEAD (on `branch`, else detached), the index of
    expd's git dir, the user's objects through alternates. expd never reads it as a repository.

    Repaired in place when that is safe (creating files is what costs here); rebuilt from nothing
    when a symlink, hard link or odd file stands where expd writes."""
    dotgit = workdir / ".git"
    files = {
        "HEAD": f"ref: refs/heads/{branch}\n" if branch else f"{commit}\n",
        "config": DOTGIT_CONFIG,
        "objects/info/alternates": f"{common_dir(user) / 'objects'}\n",
        "info/exclude": (Path(repo.path) / "info" / "exclude").read_text(),
    }
    if branch:
        files[f"refs/heads/{branch}"] = f"{commit}\n"
    index = (Path(repo.path) / "index").read_bytes()
    if _is_real_dir(dotgit):
        for entry in os.listdir(dotgit):
            if entry not in DOTGIT_KEEP:
                _remove(dotgit / entry)
        if all(_put(dotgit, name, text.encode()) for name, text in files.items()) and _put(
            dotgit, "index", index, compare=False
        ):
            return
    _remove(dotgit)
    for sub in ("objects/pack", "refs/tags"):
        (dotgit / sub).mkdir(parents=True)
    for name, text in files.items():
        _put(dotgit, name, text.encode())
    _put(dotgit, "index", index, compare=False)


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _put(root: Path, name: str, data: bytes, *, compare: bool = True) -> bool:
    """Write `data` to `root/name` unless it is there already; False (nothing written) when a
    symlink, a hard link or a non-directory stands on the way, so nothing is written elsewhere."""
    here = root
    parts = name.split("/")
    for part in parts[:-1]:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            here.mkdir()
            continue
        if not stat.S_ISDIR(mode):
            return False
    here = here / parts[-1]
    try:
        info = os.lstat(here)
    except FileNotFoundError:
        here.write_bytes(data)
        return True
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        return False
    if compare and info.st_size == len(data) and here.read_bytes() == data:
        return True
    here.write_bytes(data)
    return True


# --- objects and refs in the user's repository ----------------------------------------------------


def _copy(src: pygit2.Repository, dst: pygit2.Repository, oid: pygit2.Oid) -> None:
    kind, data = src.odb.read(oid)
    dst.odb.write(kind, data)


def new_objects(
    repo: pygit2.Repository,
    new: pygit2.Tree,
    old: pygit2.Tree | None,
    skip: Callable[[pygit2.Oid], bool] = lambda oid: False,
) -> Iterator[pygit2.Oid]:
    """The trees and blobs of `new` that `old` does not share (what writing `new` added), children
    before their tree; a tree or blob `skip` accepts is passed over (a tree with all below it)."""
    if (old is not None and new.id == old.id) or skip(new.id):
        return
    before = {e.name: e for e in old} if old is not None else {}
    for entry in new:
        was = before.get(entry.name)
        if was is not None and was.id == entry.id:
            continue
        if entry.type_str == "tree":
            was_tree = repo[was.id] if was is not None and was.type_str == "tree" else None
            yield from new_objects(repo, repo[entry.id], was_tree, skip)  # type: ignore[arg-type]
        elif entry.type_str == "blob" and not skip(entry.id):
            yield entry.id
    yield new.id


def copy_commits(src: pygit2.Repository, dst: pygit2.Repository, tip: str, stop: str) -> None:
    """Copy commit `tip` and its first-parent ancestors down to `stop` (with their new trees and
    blobs) from expd's private store into the user's repository: oldest first, commit last."""
    chain: list[pygit2.Commit] = []
    commit = src[tip].peel(pygit2.Commit)
    while str(commit.id) != stop and commit.id not in dst.odb:
        chain.append(commit)
        if not commit.parents:
            break
        commit = commit.parents[0]
    for c in reversed(chain):
        # Children before their tree: a tree found in `dst` always has all below it.
        old = c.parents[0].tree if c.parents else None
        for oid in new_objects(src, c.tree, old, lambda o: o in dst.odb):
            _copy(src, dst, oid)
        _copy(src, dst, c.id)


def set_own_ref(user: pygit2.Repository, name: str, commit: str) -> None:
    """Point one of expd's own refs at `commit`; any other ref of the user's is refused."""
    if not name.startswith(OWN_REFS):
        raise ValueError(f"{name} is not one of expd's refs")
    with contextlib.suppress(FileNotFoundError):
        (common_dir(user) / f"{name}.lock").unlink()  # only expd writes its refs: a lock is stale
    user.references.create(name, pygit2.Oid(hex=commit), force=True)


def delete_own_ref(user: pygit2.Repository, name: str) -> None:
    if not name.startswith(OWN_REFS):
        raise ValueError(f"{name} is not one of expd's refs")
    with contextlib.suppress(KeyError, pygit2.GitError):
        user.references.delete(name)


def diff_patch(repo: pygit2.Repository, base: str, head: str) -> tuple[str, DiffStat]:
    """The patch from `base` to `head` and its numbers, as `git diff --numstat -p` reports them:
    git's default rename detection (renames only, 50% similar), a renamed file one entry named the
    way numstat names it (`old => new`, or `dir/{old => new}` for the part that differs)."""
    diff = repo.diff(repo[base].peel(pygit2.Tree), repo[head].peel(pygit2.Tree))
    diff.find_similar(DiffFind.FIND_RENAMES)
    files = [_numstat_name(d) for d in diff.deltas]
    stats = diff.stats
    patch = diff.patch or ""
    return patch + ("\n" if patch and not patch.endswith("\n") else ""), DiffStat(
        files=files, added=stats.insertions, removed=stats.deletions
    )


def _numstat_name(delta: pygit2.DiffDelta) -> str:
    if delta.status == DeltaStatus.DELETED:
        return delta.old_file.path
    if delta.status == DeltaStatus.RENAMED:
        return rename_name(delta.old_file.path, delta.new_file.path)
    return delta.new_file.path


def rename_name(old: str, new: str) -> str:
    """A rename as git's numstat prints it (its `pprint_rename`): the common leading and trailing
    directories once, the part that differs as `{old => new}`."""
    prefix = 0
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            break
        if a == "/":
            prefix = i + 1
    suffix = 0
    i, j = len(old) - 1, len(new) - 1
    floor = prefix - 1 if prefix else 0
    while i >= floor and j >= floor and old[i] == new[j]:
        if old[i] == "/":
            suffix = len(old) - i
        i -= 1
        j -= 1
    old_mid = old[prefix : max(prefix, len(old) - suffix)]
    new_mid = new[prefix : max(prefix, len(new) - suffix)]
    if not prefix + suffix:
        return f"{old_mid} => {new_mid}"
    return f"{old[:prefix]}{{{old_mid} => {new_mid}}}{old[len(old) - suffix :]}"
