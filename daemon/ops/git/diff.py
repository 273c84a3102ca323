"""The patch and numbers a result records for an experiment, as `git diff --numstat -p` made them.

Renames are detected here as git does by default; the protected-paths check
(`lookup.changed_paths`) deliberately does not, so a rename there is a deletion plus an addition.
"""

from __future__ import annotations

import pygit2
from pygit2.enums import DeltaStatus, DiffFind

from shared.schema import DiffStat


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
