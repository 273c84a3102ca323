"""The Ray executor's parts: git bundles there and back (no Ray needed), then agent turns and
measurements as Ray tasks on a real local cluster (a head and a worker process on 127.0.0.1),
including a worker killed mid-turn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.ops.git.bundles import (
    BundleError,
    apply_candidate,
    candidate_bundle,
    fetch_candidate,
    make_bundle,
    unpack,
)
from daemon.ops.git.store import open_user_repo
from tests.repos import GIT_ENV, git


def _repo(root: Path) -> tuple[Path, str]:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "f.py").write_text("x = 1\n")
    (root / "measure.sh").write_text(
        'x=$(sed -E "s/x = ([0-9-]+)/\\1/" f.py)\necho "{\\"score\\": $x}"\n'
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    (root / "g.txt").write_text("two\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two")
    return root, git(root, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def _agent_change(tree_path: Path) -> None:
    (tree_path / "f.py").write_text("x = 2\n")
    (tree_path / "new.txt").write_text("new\n")
    os.remove(tree_path / "g.txt")


def test_bundle_round_trip(tmp_path: Path) -> None:
    user, head = _repo(tmp_path / "user")
    refs_before = git(user, "for-each-ref")
    bundle = make_bundle(user, head)
    assert git(user, "for-each-ref") == refs_before  # nothing written into the user's repository

    tree = unpack(bundle, tmp_path / "worker", head)
    assert (tree.path / "f.py").read_text() == "x = 1\n"
    assert (tree.path / "g.txt").is_file()
    assert git(tree.path, "rev-parse", "HEAD") == head  # the tree's .git is usable by the agent

    _agent_change(tree.path)
    staged = tree.stage_sync(head, lambda: "x to 2")
    assert staged is not None and not isinstance(staged, str)
    tree.publish_sync(staged, "refs/expd/candidate")
    back = candidate_bundle(tree.repo, head, staged.commit)
    assert len(back) < len(bundle)  # only the new objects travel back

    candidate = fetch_candidate(user, back, head, tmp_path / "scratch")
    assert candidate.commit == staged.commit and candidate.message == "x to 2"
    assert {c.path: c.status for c in candidate.changes} == {
        "f.py": "modified",
        "g.txt": "deleted",
        "new.txt": "added",
    }
    with pytest.raises(KeyError):
        open_user_repo(user)[candidate.commit]  # fetched, not yet published

    commit = apply_candidate(user, back, head, "refs/expd/lane/1")
    assert commit == staged.commit
    assert git(user, "rev-parse", "refs/expd/lane/1") == commit
    assert git(user, "show", f"{commit}:f.py") == "x = 2"
    assert git(user, "rev-parse", f"{commit}^") == head
    assert git(user, "status", "--porcelain") == ""


def test_a_candidate_not_on_its_base_is_refused(tmp_path: Path) -> None:
    user, head = _repo(tmp_path / "user")
    first = git(user, "rev-parse", "HEAD^")
    tree = unpack(make_bundle(user, head), tmp_path / "worker", head)
    _agent_change(tree.path)
    staged = tree.stage_sync(head, lambda: "change")
    assert staged is not None and not isinstance(staged, str)
    tree.publish_sync(staged, "refs/expd/candidate")
    # Two commits on the older base: their bundle needs `first` only, but the parent is not it.
    back = candidate_bundle(tree.repo, first, staged.commit)
    with pytest.raises(BundleError, match="not one commit on"):
        apply_candidate(user, back, first, "refs/expd/lane/1")
    # A bundle of something else entirely is no candidate.
    with pytest.raises(BundleError):
        apply_candidate(user, b"not a bundle", head, "refs/expd/lane/1")
    with pytest.raises(BundleError, match="holds"):
        unpack(make_bundle(user, head), tmp_path / "worker2", first)
    assert "refs/expd/lane/1" not in git(user, "for-each-ref")
