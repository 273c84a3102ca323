"""`expd clean` and `expd delete` on a finished bakeoff run (real daemon): what its slots leave
goes, the attempts' refs stay through a clean (they are the record) and go with a delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.commands.bakeoff import start_bakeoff
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.footprint import run_trees
from tests.bakeoff_repos import make_bakeoff_repo, wait_done
from tests.repos import expd, git

pytestmark = pytest.mark.timeout(120)


def test_clean_then_delete_a_bakeoff_run(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(tmp_path / "repo", tasks=2, variants={"solver": "solver"})
    paths = BakeoffRunPaths(start_bakeoff(bk.repo, "bk").run_dir)
    wait_done(paths)
    run_id = f"bk/{paths.dir.name}"
    pins = git(bk.repo, "for-each-ref", "--format=%(refname)", f"refs/expd/bakeoffs/{run_id}")
    assert len(pins.split()) == 2
    assert (paths.dir / "git").is_dir()  # expd's git dirs for the slots' trees stay at the end
    before = _listed(bk.repo, run_id)
    assert before["cleaned_at"] is None and before["disk_bytes"] > 0

    proc = expd("clean", "--yes", "--json", cwd=bk.repo)
    assert proc.returncode == 0, proc.stderr
    assert [c["run_id"] for c in json.loads(proc.stdout)["cleaned"]] == [run_id]
    assert run_trees(bk.repo, "bk", paths.dir.name, "bakeoff") == []
    assert not (paths.dir / "git").exists()
    again = git(bk.repo, "for-each-ref", "--format=%(refname)", f"refs/expd/bakeoffs/{run_id}")
    assert again == pins
    assert expd("bakeoff", "results", run_id, "--json", cwd=bk.repo).returncode == 0
    after = _listed(bk.repo, run_id)
    assert after["cleaned_at"] is not None and after["disk_bytes"] > 0
    line = [ln for ln in expd("list", cwd=bk.repo).stdout.splitlines() if run_id in ln]
    assert len(line) == 1 and line[0].endswith("  cleaned"), line

    proc = expd("delete", run_id, "--yes", cwd=bk.repo)
    assert proc.returncode == 0, proc.stderr
    assert git(bk.repo, "for-each-ref", "--format=%(refname)", "refs/expd") == ""
    assert not paths.dir.exists()
    assert git(bk.repo, "status", "--porcelain") == ""


def _listed(repo: Path, run_id: str) -> dict:
    """The bakeoff run's entry in `expd list --json`."""
    listing = json.loads(expd("list", "--json", cwd=repo).stdout)
    found = [
        r for b in listing if b["kind"] == "bakeoff" for r in b["runs"] if r["run_id"] == run_id
    ]
    assert len(found) == 1, listing
    return found[0]
