"""The bakeoff contract on its own: grading with marks, the newest record per attempt, progress,
finding bakeoff runs beside program runs, and the status of a run no daemon holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import runs
from shared.bakeoffs.grading import apply_marks, graded, latest, load_graded, score, verdict
from shared.bakeoffs.progress import overall_eta, variant_progress
from shared.bakeoffs.schema import AttemptRecord, CriterionResult, Mark
from shared.bakeoffs.status import build_bakeoff_status
from shared.errors import UserError
from shared.status import exit_code, run_status
from tests import bakeoff_fakes as fakes


def _c(passed: bool | None, weight: float = 1.0, kind: str = "command") -> CriterionResult:
    return CriterionResult(type=kind, target="x", passed=passed, weight=weight)


def test_score_weights_decided_criteria_and_ignores_pending() -> None:
    assert score([_c(True, 3), _c(False, 1)]) == 0.75
    assert score([_c(True), _c(None, kind="manual")]) == 1.0
    assert score([_c(None, kind="manual")]) is None
    assert verdict([_c(True), _c(True)]) == ("passed", 1.0)
    assert verdict([_c(True), _c(False)]) == ("failed", 0.5)
    assert verdict([_c(None, kind="manual")]) == ("failed", None)


def test_newest_record_per_attempt_wins() -> None:
    first = fakes.record("t1", "a", "cancelled")
    again = fakes.record("t1", "a", "passed")
    other = fakes.record("t2", "a", "failed")
    assert list(latest([first, other, again]).values()) == [other, again]


def test_marks_decide_manual_criteria_only_and_the_newest_mark_wins() -> None:
    record = fakes.record("t1", "a", "passed", criteria=[_c(True), _c(None, kind="manual")])
    assert record.score == 1.0
    marks = [
        Mark(task="t1", variant="a", attempt=1, criterion=1, passed=True),
        Mark(task="t1", variant="a", attempt=1, criterion=1, passed=False, note="ugly"),
        Mark(task="t1", variant="a", attempt=1, criterion=0, passed=False),  # not manual: ignored
        Mark(task="t1", variant="b", attempt=1, criterion=1, passed=True),  # another attempt
    ]
    out = apply_marks(record, marks)
    assert [c.passed for c in out.criteria] == [True, False]
    assert out.criteria[1].details == "marked fail: ugly"
    assert (out.status, out.score) == ("failed", 0.5)
    assert record.criteria[1].passed is None  # the record itself is not changed


def test_marks_do_not_turn_an_error_into_a_pass() -> None:
    record = fakes.record("t1", "a", "error", criteria=[_c(None, kind="manual")])
    out = apply_marks(record, [Mark(task="t1", variant="a", criterion=0, passed=True)])
    assert out.status == "error"


def test_progress_counts_per_variant_and_leaves_replays_out() -> None:
    spec = fakes.spec(tasks=2, variants=("a", "b"), attempts=2)
    records: list[AttemptRecord] = [
        fakes.record("t000", "a", "passed", duration=4.0, cost=0.5),
        fakes.record("t000", "a", "error", attempt=2, duration=2.0),
        fakes.record("t000", "b", "failed"),
        fakes.record("t000", "b", "cancelled", attempt=2),
        fakes.record("t000", "b", "passed", attempt=3, replay_of="t000/a/1"),
    ]
    rows = {r.variant: r for r in variant_progress(spec, records, {"b": 1})}
    a, b = rows["a"], rows["b"]
    assert (a.done, a.total, a.passed, a.errors, a.success_rate) == (2, 4, 1, 1, 0.5)
    assert a.cost_usd == pytest.approx(0.51)
    assert a.mean_duration_s == 3.0
    assert (b.done, b.passed, b.failed, b.running) == (1, 0, 1, 1)
    assert a.eta_s is not None and a.eta_s > 0
    assert overall_eta(list(rows.values()), 2) is not None


def test_bakeoff_runs_are_found_beside_program_runs(tmp_path: Path) -> None:
    paths = fakes.make_run(tmp_path, fakes.spec(), name="bk")
    (tmp_path / ".git").mkdir()
    refs = runs.repo_runs(tmp_path)
    assert [(r.kind, r.run_id) for r in refs] == [("bakeoff", f"bk/{fakes.STAMP}")]
    assert runs.resolve(None, tmp_path).paths.dir == paths.dir
    assert runs.resolve("bk", tmp_path, kind="bakeoff").is_bakeoff
    assert runs.ref_for_dir(paths.dir).is_bakeoff
    with pytest.raises(UserError, match="is a bakeoff run"):
        runs.resolve("bk", tmp_path, kind="program")
    with pytest.raises(UserError, match="no runs in"):
        runs.resolve(None, tmp_path, kind="program")


def test_status_of_a_bakeoff_run_without_daemon(tmp_path: Path) -> None:
    paths = fakes.make_run(tmp_path, fakes.spec(tasks=2), phase="complete")
    fakes.append(
        paths,
        fakes.record("t000", "a", "passed"),
        fakes.record("t000", "b", "timeout"),
        fakes.record("t001", "a", "failed", criteria=[_c(None, kind="manual")]),
    )
    status = build_bakeoff_status(paths)
    assert (status.daemon, status.total, status.done) == ("finished", 4, 3)
    assert (status.passed, status.failed, status.timeouts, status.pending_marks) == (1, 1, 1, 1)
    assert status.eta_s is None
    assert exit_code(status) == 3
    assert run_status(paths, kind="bakeoff").run_id == f"bk/{fakes.STAMP}"


def test_graded_reads_the_files(tmp_path: Path) -> None:
    paths = fakes.make_run(tmp_path, fakes.spec(tasks=1))
    fakes.append(paths, fakes.record("t000", "a", "failed", criteria=[_c(None, kind="manual")]))
    paths.attempts.open("ab").write(b'{"task": "t000", "varia')  # a torn last line is skipped
    fakes.mark(paths, Mark(task="t000", variant="a", criterion=0, passed=True))
    [only] = load_graded(paths)
    assert (only.status, only.score) == ("passed", 1.0)
    assert graded([], []) == []
