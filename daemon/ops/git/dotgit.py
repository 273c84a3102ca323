"""A tree's `.git`, written afresh by expd so git works there for the agent and measured programs.

expd never reads it as a repository: it is what the agent or a measured program sees, rewritten
after every capture, reset and checkout, never followed through a symlink or hard link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pygit2

from daemon.ops.git.store import common_dir, is_real_dir, remove_path

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
    if is_real_dir(dotgit):
        for entry in os.listdir(dotgit):
            if entry not in DOTGIT_KEEP:
                remove_path(dotgit / entry)
        if all(_put(dotgit, name, text.encode()) for name, text in files.items()) and _put(
            dotgit, "index", index, compare=False
        ):
            return
    remove_path(dotgit)
    for sub in ("objects/pack", "refs/tags"):
        (dotgit / sub).mkdir(parents=True)
    for name, text in files.items():
        _put(dotgit, name, text.encode())
    _put(dotgit, "index", index, compare=False)


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
