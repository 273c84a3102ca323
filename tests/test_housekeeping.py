"""`expd clean` and `expd delete` on real repositories with real daemons: finished runs give their
disk back and stay readable, a running run is never touched, a deleted run leaves no trace."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from shared.footprint import run_trees
from shared.housekeeping import CLEANED, CLEANING
from shared.paths import RepoPaths, RunPaths, index_dir
from tests.repos import expd, git, make_repo, results, start, state, wait_finished, wait_for

pytestmark = pytest.mark.timeout(240)


def rid(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)").split()


def refs_of(repo: Path, run_id: str) -> list[str]:
    """The refs of one run (its pins, its branch, its review branch), not a run named alike."""
    return [
        r
        for r in refs(repo)
        if f"/{run_id}/" in r or r.endswith((f"/{run_id}", f"/{run_id}-final"))
    ]


def commit_of(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", ref)


def exists(repo: Path, oid: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", oid], cwd=repo, check=False).returncode == 0


def add_slow_program(repo: Path, name: str = "q") -> None:
    """A second program whose agent sleeps: its run stays running while a test works."""
    p = RepoPaths(repo).program("p")
    q = RepoPaths(repo).program(name)
    q.runs_dir.mkdir(parents=True)
    q.toml.write_text(p.toml.read_text().replace('command = "./agent.sh"', 'command = "sleep 50"'))
    q.md.write_text(p.md.read_text())
    q.measure_sh.write_text(p.measure_sh.read_text())


def finished_run(repo: Path) -> RunPaths:
    """A run of p: experiments 1-3 kept, 4 discarded (x overshoots the target)."""
    paths = start(repo, "p")
    assert wait_finished(paths).phase == "complete"
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep", "keep", "discard"]
    return paths


def test_clean_reclaims_finished_runs_and_never_touches_a_running_one(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=4)
    add_slow_program(repo)
    head_before = git(repo, "rev-parse", "HEAD")
    done = [finished_run(repo), finished_run(repo)]
    discarded = {rid(p): commit_of(repo, f"refs/expd/{rid(p)}/0004") for p in done}
    running = start(repo, "q")
    try:
        wait_for(lambda: state(running).phase == "agent_running", 60, "q's first turn")
        q_trees = run_trees(repo, "q", running.dir.name)
        q_refs = refs_of(repo, rid(running))
        assert q_trees and all(run_trees(repo, "p", p.dir.name) for p in done)

        listed = json.loads(expd("list", "--json", cwd=repo).stdout)
        sizes = {r["run_id"]: r["disk_bytes"] for prog in listed for r in prog["runs"]}
        assert all(sizes[rid(p)] > 0 for p in done)

        dry = expd("clean", "--dry-run", "--json", cwd=repo)
        assert dry.returncode == 0, dry.stderr
        preview = json.loads(dry.stdout)
        assert preview["dry_run"] and {c["run_id"] for c in preview["cleaned"]} == set(discarded)
        assert all(run_trees(repo, "p", p.dir.name) for p in done)  # a dry run removes nothing

        proc = expd("clean", "--yes", "--json", cwd=repo)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert {c["run_id"] for c in out["cleaned"]} == set(discarded)
        assert {"run_id": rid(running), "reason": "running"} in out["skipped"]
        assert out["reclaimed_bytes"] > 0 and all(c["refs"] == 1 for c in out["cleaned"])

        for paths in done:
            run_id = rid(paths)
            assert run_trees(repo, "p", paths.dir.name) == []
            assert not (paths.dir / "git").exists() and not (paths.dir / CLEANING).exists()
            assert (paths.dir / CLEANED).is_file()
            assert refs_of(repo, run_id) == [
                *(f"refs/expd/{run_id}/{n:04d}" for n in (1, 2, 3)),
                f"refs/heads/expd/{run_id}",
            ]
            assert not exists(repo, discarded[run_id])  # the discarded commit itself is gone
            assert exists(repo, commit_of(repo, f"refs/heads/expd/{run_id}"))
            # Still readable: results, report, status (as cleaned).
            got = json.loads(expd("results", run_id, "--json", cwd=repo).stdout)
            assert [r["status"] for r in got] == ["baseline", "keep", "keep", "keep", "discard"]
            report = expd("report", run_id, cwd=repo)
            assert report.returncode == 0 and "x from 3 to 4" in report.stdout
            status = json.loads(expd("status", run_id, "--json", cwd=repo).stdout)
            assert status["cleaned_at"] and status["daemon"] == "finished"
        listed = expd("list", cwd=repo)
        assert listed.stdout.count("cleaned") == 2

        # The running run: untouched, still running.
        assert run_trees(repo, "q", running.dir.name) == q_trees
        assert refs_of(repo, rid(running)) == q_refs
        assert (running.dir / "git").is_dir() and not (running.dir / CLEANED).exists()
        assert expd("status", rid(running), cwd=repo).returncode == 0

        # Deleting it is refused, with the way to stop it.
        refused = expd("delete", rid(running), "--yes", cwd=repo)
        assert refused.returncode == 1
        assert refused.stderr == (
            f"expd: error: run {rid(running)} is running; stop it first: expd stop {rid(running)}\n"
        )
        assert running.dir.is_dir() and run_trees(repo, "q", running.dir.name) == q_trees
        named = expd("clean", rid(running), "--yes", cwd=repo)
        assert named.returncode == 1 and "is running; stop it first" in named.stderr

        # finalize re-measures in a tree of its own: a cleaned run still finalizes.
        final = expd("finalize", rid(done[0]), cwd=repo)
        assert final.returncode == 0, final.stderr
        assert f"expd clean {rid(done[0])}" in final.stdout
        assert f"refs/heads/expd/{rid(done[0])}-final" in refs(repo)
    finally:
        expd("abort", rid(running), "--wait", cwd=repo)
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == ""


def test_delete_leaves_no_trace(tmp_path: Path, isolated_state_dir: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=4)
    git(repo, "branch", "expd-mine")  # the user's own branch, close to expd's names
    gone = finished_run(repo)
    # A commit between the runs: two runs in the same second would make the very same commits.
    git(repo, "commit", "-q", "--allow-empty", "-m", "between runs")
    kept = finished_run(repo)
    run_id = rid(gone)
    final = expd("finalize", run_id, "--json", cwd=repo)
    assert final.returncode == 0, final.stderr
    kept_refs = refs_of(repo, rid(kept))
    indexed = lambda: [json.loads(p.read_text())["run_id"] for p in index_dir().glob("*.json")]  # noqa: E731
    assert run_id in indexed()
    objects = [commit_of(repo, f"refs/expd/{run_id}/{n:04d}") for n in (1, 2, 3, 4)]

    # Its branch checked out in the user's checkout: refused, nothing removed.
    git(repo, "checkout", "-q", f"expd/{run_id}")
    refused = expd("delete", run_id, "--yes", cwd=repo)
    assert refused.returncode == 1 and "is checked out in" in refused.stderr
    assert gone.dir.is_dir() and len(refs_of(repo, run_id)) == 6
    git(repo, "checkout", "-q", "main")

    proc = expd("delete", run_id, "--yes", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["deleted"][0]["run_id"] == run_id

    assert refs_of(repo, run_id) == []
    assert git(repo, "worktree", "list").count("\n") == 0  # only the user's checkout
    assert run_id not in indexed() and rid(kept) in indexed()
    assert not gone.dir.exists() and run_trees(repo, "p", gone.dir.name) == []
    assert list((repo / ".expd" / "trash").iterdir()) == []
    # Only its refs reached the discarded commit: gone. The kept ones stay, as HEAD's reflog (the
    # checkout above) still reaches them: a reflog is the user's, and git keeps what it reaches.
    assert not exists(repo, objects[3])
    assert all(exists(repo, oid) for oid in objects[:3])
    listed = json.loads(expd("list", "--json", cwd=repo).stdout)
    assert [r["run_id"] for r in listed[0]["runs"]] == [rid(kept)]
    assert expd("status", run_id, cwd=repo).returncode == 1
    # The other run and the user's refs are untouched.
    assert refs_of(repo, rid(kept)) == kept_refs
    assert {"refs/heads/main", "refs/heads/expd-mine"} <= set(refs(repo))

    # A program and its runs go the same way.
    proc = expd("delete", "--program", "p", "--yes", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert not RepoPaths(repo).program("p").dir.exists()
    assert [r for r in refs(repo) if "expd" in r and r != "refs/heads/expd-mine"] == []
    assert indexed() == []
    assert git(repo, "status", "--porcelain") == ""


def test_kill_9_in_the_middle_of_a_clean_or_delete_then_again_finishes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=4)
    first, second = finished_run(repo), finished_run(repo)
    for fault in ("clean_after_intent", "clean_after_trees"):
        proc = expd("clean", rid(first), "--yes", cwd=repo, env={"EXPD_FAULT": fault})
        assert proc.returncode == -9, (fault, proc.stdout, proc.stderr)
        assert (first.dir / CLEANING).is_file()
        # Interrupted: the run still lists and reads whole.
        status = json.loads(expd("status", rid(first), "--json", cwd=repo).stdout)
        assert status["cleaned_at"] is None and status["experiment"] == 4
    assert run_trees(repo, "p", first.dir.name) == []  # the trees went before the kill
    assert f"refs/expd/{rid(first)}/0004" in refs(repo)  # the refs had not
    again = expd("clean", "--yes", "--json", cwd=repo)
    assert again.returncode == 0, again.stderr
    cleaned = {c["run_id"]: c for c in json.loads(again.stdout)["cleaned"]}
    assert cleaned[rid(first)]["finished_interrupted"] and cleaned[rid(first)]["refs"] == 1
    assert not (first.dir / CLEANING).exists() and (first.dir / CLEANED).is_file()
    assert f"refs/expd/{rid(first)}/0004" not in refs(repo)
    assert json.loads(expd("clean", "--yes", "--json", cwd=repo).stdout)["cleaned"] == []

    # A delete killed after the run directory moved to the trash: the run is already invisible.
    proc = expd("delete", rid(second), "--yes", cwd=repo, env={"EXPD_FAULT": "delete_after_move"})
    assert proc.returncode == -9
    listed = json.loads(expd("list", "--json", cwd=repo).stdout)
    assert rid(second) not in [r["run_id"] for r in listed[0]["runs"]]
    assert refs_of(repo, rid(second))
    proc = expd("delete", rid(second), "--yes", cwd=repo, env={"EXPD_FAULT": "delete_after_trees"})
    assert proc.returncode == -9
    again = expd("clean", "--yes", "--json", cwd=repo)
    assert json.loads(again.stdout)["deletes_finished"] == [rid(second)]
    assert refs_of(repo, rid(second)) == []
    assert list((repo / ".expd" / "trash").iterdir()) == []
    assert os.listdir(RepoPaths(repo).program("p").runs_dir) == [first.dir.name]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["clean", "--older-than", "soon"], "--older-than: invalid duration 'soon'"),
        (["clean", "--older-than", "7"], "--older-than: invalid duration '7'"),
        (["clean", "nope"], "no run matching 'nope'"),
        (["clean", "--yes", "--bogus"], "unrecognized arguments: --bogus"),
        (["delete"], "one of the arguments RUN --program is required"),
        (["delete", "nope", "--yes"], "no run matching 'nope'"),
        (["delete", "--program", "nope", "--yes"], "no program 'nope'"),
        (["delete", "--program", "../x", "--yes"], "invalid program name '../x'"),
        (["delete", "RUN", "--program", "p"], "not allowed with argument"),
        (["delete", "p/"], "cannot be undone: pass --yes to confirm"),
        (["clean", "p/", "--include-dead"], "cannot be undone: pass --yes to confirm"),
        (["clean", "p/"], "can still be resumed (expd resume p/20260101-000000)"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    repo = make_repo(tmp_path / "repo")
    dead = RepoPaths(repo).program("p").run("20260101-000000")
    dead.dir.mkdir()
    dead.run_json.write_text(json.dumps({"run_id": "p/20260101-000000", "program": "p"}))
    (dead.dir / "git").mkdir()  # something a clean would remove
    proc = expd(*argv, cwd=repo)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("expd: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr
    assert (dead.dir / "git").is_dir()  # nothing was removed


@pytest.mark.parametrize(("answer", "deleted"), [("n\n", False), ("y\n", True)])
def test_on_a_terminal_delete_asks_first(tmp_path: Path, answer: str, deleted: bool) -> None:
    import pty
    import sys

    from tests.fake_runs import git_repo, make_run

    repo = git_repo(tmp_path / "repo")
    run = make_run(repo, "prog", "20260101-100000", phase="complete")
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        proc = subprocess.run(
            [sys.executable, "-m", "shared.cli.main", "delete", run.run_id],
            cwd=repo,
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert f"Delete run {run.run_id} (" in proc.stderr and "[y/N]" in proc.stderr
    assert proc.returncode == (0 if deleted else 1), proc.stderr
    assert run.paths.dir.exists() != deleted
