"""A bakeoff from start to verdict through the real CLI and daemon: agents of known skill on a
generated repository, the ranking's order, a winner only on a decisive matrix, manual marks that
change the verdict, and the dashboard's grid on the finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.bakeoffs.paths import BakeoffRunPaths
from shared.runs import ref_for_dir
from tests.bakeoff_repos import make_bakeoff_repo, wait_done
from tests.repos import expd as run_expd
from tests.tui_util import until
from tui.app import ExpdApp
from tui.screens.bakeoff import BakeoffScreen
from tui.widgets.bakeoff_grid import BakeoffGrid

# Fails only t1: as good as `solver` nearly everywhere (a matrix that cannot settle them).
MOST = """#!/bin/bash
cat > /dev/null
mkdir -p answers
if [ "$EXPD_TASK" = t1 ]; then echo wrong > answers/t1.txt
else echo "solved-$EXPD_TASK" > "answers/$EXPD_TASK.txt"; fi
"""


def expd(repo: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_expd(*args, cwd=repo, env=env)


def run_bakeoff(repo: Path, name: str = "bk") -> tuple[str, BakeoffRunPaths]:
    out = expd(repo, "bakeoff", "start", name, "--json")
    assert out.returncode == 0, out.stderr
    started = json.loads(out.stdout)
    paths = BakeoffRunPaths(Path(started["run_dir"]))
    state = wait_done(paths, timeout=120)
    assert (state.phase, state.termination_reason) == ("complete", "finished"), state.message
    return started["run_id"], paths


def report(repo: Path, run_id: str) -> dict[str, Any]:
    out = expd(repo, "bakeoff", "report", run_id, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_a_decisive_matrix_names_its_winner_and_orders_by_skill(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(tmp_path / "repo", tasks=12, timeout="30s")
    run_id, _ = run_bakeoff(bk.repo)
    doc = report(bk.repo, run_id)
    rows = doc["ranking"]
    assert [r["variant"] for r in rows] == ["solver", "half", "breaker"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [(r["passed"], r["attempts"]) for r in rows] == [(12, 12), (6, 12), (0, 12)]
    lo, hi = rows[0]["interval"]
    assert lo < 1.0 and hi == pytest.approx(1.0)
    # solver beats half on the 6 odd tasks and ties the rest: 6-0, p = 0.03 < 0.05.
    assert doc["winner"]["variant"] == "solver" and doc["winner"]["significant"] is True
    term = expd(bk.repo, "bakeoff", "report", run_id, env={"NO_COLOR": "1"})
    assert term.returncode == 0 and "solver" in term.stdout and "\x1b[" not in term.stdout
    status = json.loads(expd(bk.repo, "status", run_id, "--json").stdout)
    assert (status["kind"], status["done"], status["total"]) == ("bakeoff", 36, 36)
    errors = expd(bk.repo, "bakeoff", "errors", run_id, "--json")
    causes = {g["cause"]: g["count"] for g in json.loads(errors.stdout)["groups"]}
    assert causes.get("crash") == 12  # breaker exits 1 every time
    assert any(c.startswith("criterion:") for c in causes)  # half's wrong answers


def test_an_undecided_matrix_names_no_winner_and_says_how_many_more_tasks(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=6,
        variants={"solver": "solver", "most": "most"},
        agents={"most": MOST},
    )
    run_id, _ = run_bakeoff(bk.repo)
    doc = report(bk.repo, run_id)
    assert [r["variant"] for r in doc["ranking"]] == ["solver", "most"]
    assert doc["winner"]["variant"] is None and doc["winner"]["significant"] is False
    assert "no clear winner" in doc["winner"]["reason"]
    more = doc["comparison"]["more_tasks"]
    assert isinstance(more, int) and more > 0


def test_manual_criteria_wait_for_a_mark_that_changes_the_verdict(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(
        tmp_path / "repo",
        tasks=2,
        variants={"solver": "solver", "half": "half"},
        task_extra="",
    )
    text = bk.toml.read_text().replace(
        'criteria = ["test_pass:test -f answers/t0.txt"',
        'criteria = ["manual:Is the answer well written?", "test_pass:test -f answers/t0.txt"',
    )
    bk.toml.write_text(text)
    run_id, _ = run_bakeoff(bk.repo)

    def result(variant: str) -> dict[str, Any]:
        out = expd(bk.repo, "bakeoff", "results", run_id, "--json", "--task", "t0")
        [only] = [r for r in json.loads(out.stdout) if r["variant"] == variant]
        return only

    before = result("solver")
    assert before["criteria"][0]["passed"] is None and before["status"] == "passed"
    marked = expd(
        bk.repo,
        "bakeoff",
        "mark",
        run_id,
        "--task",
        "t0",
        "--variant",
        "solver",
        "fail",
        "--note",
        "terse",
    )
    assert marked.returncode == 0, marked.stderr
    after = result("solver")
    assert after["criteria"][0]["passed"] is False and after["status"] == "failed"
    assert after["score"] == pytest.approx(2 / 3)
    refused = expd(
        bk.repo,
        "bakeoff",
        "mark",
        run_id,
        "--task",
        "t0",
        "--variant",
        "solver",
        "--criterion",
        "1",
        "pass",
    )
    assert refused.returncode == 1 and "manual" in refused.stderr


async def test_the_dashboard_grid_shows_the_finished_run(tmp_path: Path) -> None:
    bk = make_bakeoff_repo(tmp_path / "repo", tasks=3)
    _, paths = run_bakeoff(bk.repo)
    app = ExpdApp(run=ref_for_dir(paths.dir))
    async with app.run_test(size=(130, 40)) as pilot:
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, BakeoffScreen)
                and app.screen.query_one(BakeoffGrid).row_count == 3
            ),
            timeout=15,
        )
        grid = app.screen.query_one(BakeoffGrid)
        assert grid.glyphs("t0", "solver") == "✓"
        assert grid.glyphs("t1", "half") == "✗"
        assert grid.glyphs("t2", "breaker") == "E"
