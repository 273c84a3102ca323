"""`expd finalize` on real repositories after real daemon runs: replay, exclusion, conflicts."""

from __future__ import annotations

import json
from pathlib import Path

from shared.paths import RunPaths
from tests.repos import expd, git, make_repo, results, start, wait_finished

# Experiments 1 and 2 each add their own file (one point better each); later ones add a "bad"
# file (worse, discarded). Kept changes touch different files, so any subset replays cleanly.
FILES_AGENT = """#!/bin/bash
cat > /dev/null
n=$EXPD_EXPERIMENT
if [ "$n" -le 2 ]; then
  echo "good $n" > "good_$n.txt"
  echo "EXPD-DESCRIPTION: add good_$n"
else
  echo "bad $n" > "bad_$n.txt"
  echo "EXPD-DESCRIPTION: add bad_$n"
fi
${AGENT_EXTRA:-true}
"""

FILES_MEASURE = """#!/bin/bash
good=$(ls good_*.txt 2>/dev/null | wc -l)
bad=$(ls bad_*.txt 2>/dev/null | wc -l)
echo "{\\"score\\": $((10 - good + 5 * bad))}"
"""


def finished_run(repo: Path, env: dict[str, str] | None = None) -> tuple[RunPaths, str]:
    paths = start(repo, env=env)
    assert wait_finished(paths).phase == "complete"
    return paths, f"p/{paths.dir.name}"


def files_repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo", agent_sh=FILES_AGENT, measure_sh=FILES_MEASURE, max_experiments=3
    )


def checkout_state(repo: Path) -> tuple[str, str, str]:
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "status", "--porcelain"),
    )


def worktrees(repo: Path) -> list[str]:
    return [
        line
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if "worktree" in line
    ]


def test_finalize_replays_the_kept_experiments(tmp_path: Path) -> None:
    repo = files_repo(tmp_path)
    paths, run = finished_run(repo)
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep", "discard"]
    before, trees = checkout_state(repo), worktrees(repo)

    proc = expd("finalize", run, "--json", cwd=repo, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    branch = f"expd/p/{paths.dir.name}-final"
    assert out["branch"] == branch and out["applied"] == [1, 2] and out["excluded"] == []
    assert out["confirmation"]["status"] == "confirmed"
    assert out["confirmation"]["metric"] == 8 and out["confirmation"]["base_metric"] == 10
    files = git(repo, "ls-tree", "--name-only", branch).split()
    assert "good_1.txt" in files and "good_2.txt" in files and "bad_3.txt" not in files
    base = json.loads(paths.run_json.read_text())["base_commit"]
    assert git(repo, "rev-list", "--count", f"{base}..{branch}") == "2"
    assert checkout_state(repo) == before and worktrees(repo) == trees

    summary = paths.summary.read_text()
    assert f"Branch `{branch}`" in summary
    assert "## Kept changes" in summary and "add good_1" in summary and "add good_2" in summary
    assert "confirmed" in summary and "final tree 8 vs base 10 (+20.00%)" in summary
    assert "#3 discard" in summary

    again = expd("finalize", run, cwd=repo)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_finalize_excludes_and_validates_exclusions(tmp_path: Path) -> None:
    repo = files_repo(tmp_path)
    paths, run = finished_run(repo)

    for bad, words in (("3", "not a kept experiment"), ("9", "not a kept"), ("x", "not an")):
        proc = expd("finalize", run, "--exclude", bad, cwd=repo)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = expd("finalize", run, "--exclude", "1,2", cwd=repo)
    assert proc.returncode == 1 and "nothing to finalize" in proc.stderr

    proc = expd("finalize", run, "--exclude", "1", "--branch", "review", cwd=repo, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "branch review" in proc.stdout and "excluded: 1" in proc.stdout
    files = git(repo, "ls-tree", "--name-only", "review").split()
    assert "good_2.txt" in files and "good_1.txt" not in files
    summary = paths.summary.read_text()
    assert "## Excluded\n\n- experiment 1" in summary and "| 1 (excluded) |" in summary


def test_conflict_creates_no_branch(tmp_path: Path) -> None:
    """Both keeps edit f.py (x 0→1→2): without the first, the second does not apply."""
    repo = make_repo(tmp_path / "repo", max_experiments=3)
    paths, run = finished_run(repo, env={"TARGET": "2"})
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep", "discard"]
    before, trees = checkout_state(repo), worktrees(repo)

    proc = expd("finalize", run, "--exclude", "1", cwd=repo, timeout=120)
    assert proc.returncode == 1
    assert "experiment 2" in proc.stderr and "f.py" in proc.stderr and "no branch" in proc.stderr
    assert git(repo, "branch", "--list", "expd/p/*-final") == ""
    assert checkout_state(repo) == before and worktrees(repo) == trees
    assert not paths.summary.exists()


def test_running_run_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo, env={"AGENT_EXTRA": "sleep 30"})
    run = f"p/{paths.dir.name}"
    try:
        proc = expd("finalize", run, cwd=repo)
        assert proc.returncode == 1 and "still running" in proc.stderr, proc.stderr
        assert f"expd stop {run}" in proc.stderr
    finally:
        expd("abort", run, "--wait", cwd=repo)
        wait_finished(paths)


def test_a_gain_the_remeasurement_contradicts_creates_no_branch_unless_forced(
    tmp_path: Path,
) -> None:
    """The machine (here: $FLIP) changed since the run: the final tree measures worse than the
    base, so no review branch is made; `--force` makes it anyway and says what was measured."""
    measure = FILES_MEASURE.replace(
        'echo "{', 'if [ -n "$FLIP" ]; then good=$(( -good )); fi\necho "{'
    )
    repo = make_repo(tmp_path / "repo", agent_sh=FILES_AGENT, measure_sh=measure, max_experiments=3)
    paths, run = finished_run(repo)
    assert [r.status for r in results(paths)] == ["baseline", "keep", "keep", "discard"]
    before, trees = checkout_state(repo), worktrees(repo)
    branch = f"expd/p/{paths.dir.name}-final"

    proc = expd("finalize", run, cwd=repo, env={"FLIP": "1"}, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does not confirm" in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert git(repo, "branch", "--list", branch) == ""
    assert checkout_state(repo) == before and worktrees(repo) == trees

    proc = expd("finalize", run, "--force", "--json", cwd=repo, env={"FLIP": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["confirmation"]["status"] == "not_confirmed" and out["branch"] == branch
    assert git(repo, "rev-parse", branch) == out["commit"]
