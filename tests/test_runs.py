"""Finding runs: RUN arguments (ids, prefixes, stamps, paths) and the user-wide index."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shared import runs
from shared.errors import UserError
from shared.paths import RunPaths, index_dir
from tests.fake_runs import git_repo, make_run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = git_repo(tmp_path / "repo")
    make_run(root, "prog", "20260101-120000")
    make_run(root, "prog", "20260102-090000")
    make_run(root, "other", "20260103-080000")
    return root


def test_repo_runs_are_oldest_first(repo: Path) -> None:
    ids = [r.run_id for r in runs.repo_runs(repo)]
    assert ids == ["prog/20260101-120000", "prog/20260102-090000", "other/20260103-080000"]
    assert [r.run_id for r in runs.repo_runs(repo, "prog")] == ids[:2]


def test_half_created_run_dir_is_ignored(repo: Path) -> None:
    (repo / ".expd/programs/prog/runs/20270101-000000").mkdir()
    assert runs.resolve(None, repo).run_id == "other/20260103-080000"


def test_default_is_newest_run(repo: Path) -> None:
    assert runs.resolve(None, repo).run_id == "other/20260103-080000"


def test_default_from_a_subdirectory(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    assert runs.resolve(None, sub).run_id == "other/20260103-080000"


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("prog/20260101-120000", "prog/20260101-120000"),
        ("prog/20260102", "prog/20260102-090000"),
        ("oth", "other/20260103-080000"),
        ("20260101", "prog/20260101-120000"),
        ("20260103-08", "other/20260103-080000"),
        ("20260102-090000", "prog/20260102-090000"),
    ],
)
def test_unique_prefixes(repo: Path, arg: str, expected: str) -> None:
    ref = runs.resolve(arg, repo)
    assert ref.run_id == expected
    assert ref.paths.dir == repo / ".expd/programs" / expected.replace("/", "/runs/")


@pytest.mark.parametrize("arg", ["prog", "prog/2026", "2026"])
def test_ambiguous_prefix_lists_candidates(repo: Path, arg: str) -> None:
    with pytest.raises(UserError, match="ambiguous") as info:
        runs.resolve(arg, repo)
    assert "prog/20260101-120000" in str(info.value)
    assert "prog/20260102-090000" in str(info.value)


def test_exact_id_wins_over_longer_ids(tmp_path: Path) -> None:
    root = git_repo(tmp_path / "r")
    make_run(root, "p", "20260101-120000")
    make_run(root, "p", "20260101-120000-2")
    assert runs.resolve("p/20260101-120000", root).stamp == "20260101-120000"
    assert runs.resolve("20260101-120000-2", root).stamp == "20260101-120000-2"


def test_unknown_run(repo: Path) -> None:
    with pytest.raises(UserError) as info:
        runs.resolve("nope", repo)
    assert str(info.value) == f"no run matching 'nope' in {repo}"


def test_no_runs_at_all(tmp_path: Path) -> None:
    root = git_repo(tmp_path / "empty")
    with pytest.raises(UserError, match=r"no runs in .*expd start NAME"):
        runs.resolve(None, root)


def test_run_directory_path(repo: Path, tmp_path: Path) -> None:
    run_dir = repo / ".expd/programs/prog/runs/20260101-120000"
    ref = runs.resolve(str(run_dir), tmp_path)
    assert ref.run_id == "prog/20260101-120000"
    assert ref.paths == RunPaths(run_dir)


def test_linked_worktree_resolves_to_main_repo(repo: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "wt")], cwd=repo, check=True)
    assert runs.resolve(None, tmp_path / "wt").run_id == "other/20260103-080000"


def test_register_and_index(repo: Path, tmp_path: Path) -> None:
    for ref in runs.repo_runs(repo):
        runs.register(ref.paths, repo, ref.run_id)
    files = sorted(index_dir().glob("*.json"))
    assert len(files) == 3
    assert not list(index_dir().glob("*.tmp"))
    entries = runs.index_entries()
    assert {e.run_id for e in entries} == {r.run_id for r in runs.repo_runs(repo)}
    assert all(e.repo == str(repo) for e in entries)
    # registering again replaces the entry instead of adding one
    ref = runs.repo_runs(repo)[0]
    runs.register(ref.paths, repo, ref.run_id)
    assert len(list(index_dir().glob("*.json"))) == 3


def test_index_skips_vanished_and_corrupt_entries(tmp_path: Path) -> None:
    root = git_repo(tmp_path / "r")
    keep = make_run(root, "p", "20260101-120000")
    gone = make_run(root, "p", "20260102-120000")
    runs.register(keep.paths, root, keep.run_id)
    runs.register(gone.paths, root, gone.run_id)
    (index_dir() / "broken.json").write_text("{not json")
    for f in gone.paths.dir.iterdir():
        f.unlink()
    gone.paths.dir.rmdir()
    assert [e.run_id for e in runs.index_entries()] == [keep.run_id]


def test_outside_a_repo_the_index_is_searched(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(UserError, match="not inside a git repository"):
        runs.resolve(None, elsewhere)
    for ref in runs.repo_runs(repo):
        runs.register(ref.paths, repo, ref.run_id)
    ref = runs.resolve("other", elsewhere)
    assert ref.run_id == "other/20260103-080000"
    assert ref.repo == repo
    with pytest.raises(UserError, match="no run matching 'zzz' in the run index"):
        runs.resolve("zzz", elsewhere)
