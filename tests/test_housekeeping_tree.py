"""`[loop] keep_tree` with real daemons: by default a run that ends complete gives its trees back,
a crashed one keeps them for a look and a resume; `always` and `never` do what they say."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.errors import UserError
from shared.footprint import run_trees
from shared.programs import parse_program
from tests.repos import MEASURE_SH, expd, make_repo, results, start, wait_finished

pytestmark = pytest.mark.timeout(120)

FAILING_MEASURE = "#!/bin/bash\necho 'no metric today' >&2\nexit 1\n"


@pytest.mark.parametrize(
    ("keep_tree", "measure", "phase", "kept"),
    [
        (None, MEASURE_SH, "complete", False),  # the default: a finished run's tree goes
        (None, FAILING_MEASURE, "crashed", True),  # ... a crashed one's stays
        ("never", FAILING_MEASURE, "crashed", False),
        ("always", MEASURE_SH, "complete", True),
    ],
    ids=["default-complete", "default-crashed", "never-crashed", "always-complete"],
)
def test_keep_tree_at_the_end_of_a_run(
    tmp_path: Path, keep_tree: str | None, measure: str, phase: str, kept: bool
) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=2, keep_tree=keep_tree, measure_sh=measure)
    paths = start(repo, "p")
    assert wait_finished(paths).phase == phase
    assert bool(run_trees(repo, "p", paths.dir.name)) == kept
    assert (paths.dir / "git").is_dir() == kept
    ends = [json.loads(line) for line in paths.events.read_text().splitlines()]
    removed = [e for e in ends if e["kind"] == "trees_removed"]
    assert bool(removed) != kept
    if removed:
        assert removed[0]["data"]["bytes"] > 0
    # The record is untouched either way.
    assert len(results(paths)) == (3 if phase == "complete" else 0)
    run_id = f"p/{paths.dir.name}"
    assert expd("results", run_id, "--json", cwd=repo).returncode == 0


def test_keep_tree_takes_only_known_values(tmp_path: Path) -> None:
    base = 'metric = "s"\ndirection = "lower"\n[agent]\ncommand = "true"\n[loop]\n'
    assert parse_program(base + "keep_tree = true", source=tmp_path).loop.keep_tree is True
    assert parse_program(base, source=tmp_path).loop.keep_tree == "on_crash"
    with pytest.raises(UserError, match="keep_tree"):
        parse_program(base + 'keep_tree = "sometimes"', source=tmp_path)


def test_removal_never_follows_a_symlink_and_gets_through_read_only_folders(
    tmp_path: Path,
) -> None:
    from daemon.ops.tree_removal import remove_leftovers, run_leftovers

    repo = tmp_path / "repo"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    tree = repo / ".expd" / "worktrees" / "p-20260101-000000"
    (tree / "ro" / "deep").mkdir(parents=True)
    (tree / "ro" / "deep" / "f").write_text("x")
    (tree / "ro" / "deep").chmod(0o500)
    (tree / "ro").chmod(0o500)
    (tree / "link").symlink_to(outside)
    lane = tree.with_name("p-20260101-000000-L1")
    lane.symlink_to(outside)  # a lane's tree replaced by a link: the link goes, not its target
    other = tree.with_name("p-20260101-000000-2")  # another run of the same second: not this one
    other.mkdir()
    run_dir = repo / ".expd" / "programs" / "p" / "runs" / "20260101-000000"
    (run_dir / "git" / "agent").mkdir(parents=True)
    found = run_leftovers(repo, "p", "20260101-000000", "program", run_dir)
    assert found == [tree, lane, run_dir / "git"]
    remove_leftovers(repo, run_dir, found)
    assert not tree.exists() and not lane.is_symlink() and not (run_dir / "git").exists()
    assert (outside / "keep.txt").read_text() == "mine" and other.is_dir()

    # A tree folder that leads elsewhere is refused, not followed.
    (repo / ".expd" / "eval").symlink_to(outside)
    (outside / "p-20260101-000000").mkdir()
    with pytest.raises(OSError, match="symlink on the way"):
        remove_leftovers(
            repo, run_dir, run_leftovers(repo, "p", "20260101-000000", "program", run_dir)
        )
    assert (outside / "p-20260101-000000").is_dir()


def test_a_dead_run_cleaned_with_include_dead_still_resumes(tmp_path: Path) -> None:
    import signal

    from shared import codec
    from shared.schema import DaemonInfo
    from tests.repos import wait_dead, wait_for

    repo = make_repo(tmp_path / "repo", max_experiments=3)
    paths = start(repo, "p", env={"AGENT_EXTRA": "sleep 1"})
    wait_for(lambda: len(results(paths)) >= 2, 60, "the first experiment")
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_dead(paths)
    run_id = f"p/{paths.dir.name}"
    left = json.loads(expd("clean", "--yes", "--json", cwd=repo).stdout)
    assert left["skipped"] == [{"run_id": run_id, "reason": "resumable (--include-dead cleans it)"}]
    proc = expd("clean", "--yes", "--include-dead", "--json", cwd=repo)
    assert [c["run_id"] for c in json.loads(proc.stdout)["cleaned"]] == [run_id]
    assert run_trees(repo, "p", paths.dir.name) == []
    status = json.loads(expd("status", run_id, "--json", cwd=repo).stdout)
    assert status["daemon"] == "dead" and status["cleaned_at"]

    assert expd("resume", run_id, cwd=repo).returncode == 0
    final = wait_finished(paths)
    assert final.phase == "complete" and [r.experiment for r in results(paths)] == [0, 1, 2, 3]
    assert run_trees(repo, "p", paths.dir.name)  # made again (and kept: keep_tree = "always")
    assert json.loads(expd("status", run_id, "--json", cwd=repo).stdout)["cleaned_at"] is None


@pytest.mark.parametrize("writer", ["libgit2", "git"])
def test_an_object_written_again_by_a_live_writer_is_not_pruned(
    tmp_path: Path, writer: str
) -> None:
    # A finished run's dropped experiment wrote blob X; a running run (through libgit2, as the
    # daemon writes, or git) writes the same content before it has a ref to it: X is unreachable
    # now, yet in use. Writing an existing loose object refreshes its file's time, which is what
    # `expd clean` goes by (anything touched after the finished run's daemon last lived stays).
    import subprocess

    import pygit2

    from daemon.ops.git.reclaim import objects_dir, prune_objects

    repo = make_repo(tmp_path / "repo")
    content = b"a discarded experiment's file\n"
    oid = str(pygit2.Repository(str(repo)).create_blob(content))
    path = objects_dir(repo) / oid[:2] / oid[2:]
    os.utime(path, (1_000_000, 1_000_000))  # written long before the run ended
    ended = 2_000_000.0
    if writer == "libgit2":
        assert str(pygit2.Repository(str(repo)).create_blob(content)) == oid
    else:
        got = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=content, capture_output=True
        )
        assert got.stdout.decode().strip() == oid
    assert path.stat().st_mtime > ended  # freshened
    assert prune_objects(repo, [oid], ended).count == 0 and path.exists()
    os.utime(path, (1_000_000, 1_000_000))  # nobody wrote it again: it goes
    assert prune_objects(repo, [oid], ended).count == 1 and not path.exists()
