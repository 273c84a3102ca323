"""Checkouts that write only what differs (daemon/ops/git/tree_sync.py): the tree ends exactly at
the target whatever the agent left (symlinks, hard links, modes, untracked files, directories in
the way), files not in the difference keep their stat data, and anything odd falls back to the
full checkout with the same result."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pygit2
import pytest

from daemon.ops.git import tree_sync
from daemon.ops.git.agent_tree import AgentTree
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.index_file import invalidate_trees, read_index, write_index
from tests.repos import git, make_repo


def _commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository whose second commit adds 40 files (a lane's reset after many keeps), changes
    one, deletes one and adds a file below a new directory."""
    repo = make_repo(tmp_path / "repo")
    first = _commit(repo, {"keep.py": "k\n", "gone.py": "g\n", "sub/a.py": "a\n"}, "one")
    files: dict[str, str | None] = {f"d{i}.py": f"x = {i}\n" for i in range(40)}
    files |= {"f.py": "x = 7\n", "gone.py": None, "new/deep/b.py": "b\n"}
    second = _commit(repo, files, "two")
    return repo, [first, second]


def _lane(repo: Path, tmp_path: Path) -> AgentTree:
    return AgentTree(repo=repo, path=tmp_path / "lane", gitdir=tmp_path / "lane.git", branch=None)


def _exactly_at(tree: AgentTree | EvalTree, commit: str) -> None:
    _, repo = tree.open()
    assert repo.status(untracked_files="all") == {}
    assert str(repo.head.target) == commit
    assert read_index(Path(repo.path) / "index").entries.keys() == {
        os.fsencode(p) for p in git(tree.repo, "ls-tree", "-r", "--name-only", commit).split()
    }


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fell: list[str] = []
    real = tree_sync.sync_tree

    def sync(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except tree_sync.FallBack as exc:
            fell.append(str(exc))
            raise

    monkeypatch.setattr("daemon.ops.git.store.sync_tree", sync)
    return fell


def test_a_reset_writes_only_the_difference_and_keeps_stat_data(
    history: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, (first, second) = history
    fell = _no_fallback(monkeypatch)
    lane = _lane(repo, tmp_path)
    lane.reset_sync(first)
    kept = os.stat(lane.path / "keep.py")
    lane.reset_sync(second)
    _exactly_at(lane, second)
    assert fell == []
    assert os.stat(lane.path / "keep.py").st_ino == kept.st_ino  # not rewritten
    assert (lane.path / "new/deep/b.py").read_text() == "b\n"
    assert not (lane.path / "gone.py").exists()
    # More files than RACY_WRITES were written: the index is newer than all of them, so a status
    # trusts their stat data instead of re-reading them.
    index = os.stat(Path(lane.open()[1].path) / "index").st_mtime_ns
    assert all(os.stat(p).st_mtime_ns < index for p in lane.path.glob("d*.py"))
    # Back again: what the second commit added is removed, with its directories.
    lane.reset_sync(first)
    _exactly_at(lane, first)
    assert not (lane.path / "new").exists()
    assert fell == []


def test_whatever_the_agent_left_the_tree_ends_exactly_at_the_target(
    history: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, (first, second) = history
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("the user's\n")
    fell = _no_fallback(monkeypatch)
    lane = _lane(repo, tmp_path)
    lane.reset_sync(first)
    t = lane.path
    (t / "keep.py").unlink()
    (t / "keep.py").symlink_to(secret)  # a tracked file now a symlink out of the tree
    os.link(secret, t / "d3.py")  # a hard link where the target adds a file
    (t / "sub" / "a.py").chmod(0o755)  # a changed mode
    (t / "untracked.txt").write_text("left\n")
    (t / "new").symlink_to(
        outside, target_is_directory=True
    )  # a symlink on the way to new/deep/b.py
    lane.reset_sync(second)
    _exactly_at(lane, second)
    assert fell == []
    assert secret.read_text() == "the user's\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (t / "new").is_symlink() and (t / "new/deep/b.py").read_text() == "b\n"
    assert stat.S_IMODE(os.stat(t / "sub" / "a.py").st_mode) & 0o111 == 0
    assert os.stat(t / "d3.py").st_nlink == 1


@pytest.mark.parametrize("odd", ["directory where a file goes", "nested repository"])
def test_odd_trees_fall_back_to_the_full_checkout(
    odd: str, history: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, (first, second) = history
    fell = _no_fallback(monkeypatch)
    lane = _lane(repo, tmp_path)
    lane.reset_sync(first)
    if odd == "nested repository":
        (lane.path / "inner").mkdir()
        git(lane.path / "inner", "init", "-q")
        (lane.path / "inner" / "x").write_text("x\n")
    else:
        (lane.path / "d5.py").mkdir()
        (lane.path / "d5.py" / "ignored.o").write_text("")
        (lane.path / ".gitignore").write_text("*.o\n")
    lane.reset_sync(second)
    _exactly_at(lane, second)
    assert len(fell) == 1
    assert not (lane.path / "inner").exists()


def test_a_measurement_tree_keeps_untracked_files_when_not_cleaning(
    history: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, (first, second) = history
    tree = EvalTree(repo=repo, path=tmp_path / "eval", gitdir=tmp_path / "eval.git")
    tree.checkout_sync(first)
    (tree.path / "cache.bin").write_text("built\n")
    (tree.path / "keep.py").write_text("changed by the measured code\n")
    tree.checkout_sync(second, clean=False)
    assert (tree.path / "cache.bin").read_text() == "built\n"
    assert (tree.path / "keep.py").read_text() == "k\n"
    _, r = tree.open()
    assert r.status(untracked_files="all") == {"cache.bin": pygit2.enums.FileStatus.WT_NEW}
    tree.checkout_sync(second)
    assert not (tree.path / "cache.bin").exists()
    _exactly_at(tree, second)


def test_an_index_written_here_is_read_back_by_libgit2(
    history: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, (_, second) = history
    lane = _lane(repo, tmp_path)
    lane.reset_sync(second)
    _, r = lane.open()
    path = Path(r.path) / "index"
    r.index.write_tree()
    r.index.write()  # libgit2's own index, with its tree cache
    index = read_index(path)
    assert index.trees
    write_index(path, index)
    assert read_index(path) == index
    r.index.read(True)
    assert r.index.write_tree() == r[second].peel(pygit2.Commit).tree_id
    assert r.status(untracked_files="all") == {}


def test_the_tree_cache_is_invalidated_where_files_changed(tmp_path: Path) -> None:
    """A cached tree id that survived a change would make a capture commit the wrong tree."""
    repo = make_repo(tmp_path / "repo")
    files = {f"{d}/{s}/f{i}.py": f"{d}{s}{i}\n" for d in "ab" for s in "xy" for i in range(3)}
    first = _commit(repo, files, "one")
    second = _commit(
        repo, {"a/x/f0.py": "changed\n", "b/y/new.py": "n\n", "a/y/f1.py": None}, "two"
    )
    lane = _lane(repo, tmp_path)
    lane.reset_sync(first)
    _, r = lane.open()
    r.index.write_tree()
    r.index.write()  # every directory cached
    lane.reset_sync(second)
    r.index.read(True)
    assert r.index.write_tree() == r[second].peel(pygit2.Commit).tree_id
    (lane.path / "b" / "x" / "f2.py").write_text("the agent's\n")  # a directory the reset kept
    capture = lane.capture_sync(second, description="d", fallback="f", ref="refs/expd/t/0001")
    assert git(repo, "show", f"{capture.commit}:b/x/f2.py") == "the agent's"
    assert git(repo, "diff", "--name-only", second, capture.commit) == "b/x/f2.py"


def test_invalidating_the_tree_cache() -> None:
    oid = bytes(20)
    trees = b"\x002 2\n" + oid + b"a\x001 0\n" + oid + b"b\x001 1\n" + oid + b"c\x001 0\n" + oid
    assert invalidate_trees(trees, ["b/c/x.py"]) == (
        b"\x00-1 2\n" + b"a\x001 0\n" + oid + b"b\x00-1 1\n" + b"c\x00-1 0\n"
    )
    assert invalidate_trees(trees, ["top.py"]) == b"\x00-1 2\n" + trees[25:]
    assert invalidate_trees(b"garbage", ["x"]) == b""


def test_symlinks_and_deep_directories_of_the_target(
    history: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, (first, _) = history
    (repo / "link").symlink_to("f.py")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    third = _commit(repo, {f"p/q/r/m{i}.py": f"{i}\n" for i in range(20)}, "three")
    fell = _no_fallback(monkeypatch)
    lane = _lane(repo, tmp_path)
    lane.reset_sync(first)
    lane.reset_sync(third)
    _exactly_at(lane, third)
    assert os.readlink(lane.path / "link") == "f.py"
    assert os.stat(lane.path / "run.sh").st_mode & 0o111
    lane.reset_sync(first)
    _exactly_at(lane, first)
    assert not (lane.path / "p").exists() and not (lane.path / "link").is_symlink()
    assert fell == []
