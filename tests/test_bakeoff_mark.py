"""`expd bakeoff mark`: which criterion a mark names, what it refuses, what it changes, and that
marks from several processes land whole while the run's record grows beside them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared.bakeoffs.grading import load_graded, read_marks
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import CriterionResult
from shared.cli.main import main
from shared.locking import lock_blocking, unlock
from tests import bakeoff_fakes as bf
from tests.fake_runs import git_repo
from tests.repos import GIT_ENV, wait_for

Capsys = pytest.CaptureFixture[str]
ROOT = Path(__file__).resolve().parent.parent


def crit(*manual: str, test: bool | None = True) -> list[CriterionResult]:
    out = []
    if test is not None:
        out.append(CriterionResult(type="test_pass", target="pytest -q", passed=test))
    out += [CriterionResult(type="manual", target=q, passed=None) for q in manual]
    return out


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def run(repo: Path) -> BakeoffRunPaths:
    paths = bf.make_run(repo, bf.spec(3, ("a", "b")))
    bf.append(
        paths,
        bf.record("t000", "a", "passed", criteria=crit("Is it readable?")),
        bf.record(
            "t000", "b", "failed", criteria=crit("Is it readable?", "Is it tested?", test=None)
        ),
        bf.record("t001", "a", "passed"),
        bf.record("t001", "b", "error", error="exit 1"),
    )
    return paths


def cli(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["bakeoff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def graded(paths: BakeoffRunPaths, key: str) -> tuple[str, float | None]:
    record = next(r for r in load_graded(paths) if r.key == key)
    return record.status, record.score


def test_mark_the_only_manual_criterion(run: BakeoffRunPaths, capsys: Capsys) -> None:
    assert graded(run, "t000/a/1") == ("passed", 1.0)  # the manual one is not decided yet
    code, out, _ = cli(
        capsys, "mark", "bk", "--task", "t000", "--variant", "a", "fail", "--note", "dense"
    )
    assert code == 0
    assert out.strip() == "t000/a/1: criterion 1 (Is it readable?) marked fail → failed, score 0.50"
    [mark] = read_marks(run)
    assert (mark.key, mark.criterion, mark.passed, mark.note) == ("t000/a/1", 1, False, "dense")
    assert mark.at > 0
    assert graded(run, "t000/a/1") == ("failed", 0.5)
    _, results, _ = cli(capsys, "results", "--json", "--task", "t000", "--variant", "a")
    [row] = json.loads(results)
    assert row["criteria"][1] == {
        "type": "manual",
        "target": "Is it readable?",
        "passed": False,
        "details": "marked fail: dense",
    }
    # The newest mark of a criterion wins.
    assert cli(capsys, "mark", "bk", "--task", "t000", "--variant", "a", "pass")[0] == 0
    assert graded(run, "t000/a/1") == ("passed", 1.0)


def test_marks_turn_a_pending_attempt_into_a_ranked_one(
    run: BakeoffRunPaths, capsys: Capsys
) -> None:
    _, before, _ = cli(capsys, "report", "--format", "json")
    b = next(r for r in json.loads(before)["ranking"] if r["variant"] == "b")
    assert (b["attempts"], b["pending"], b["unmarked"]) == (1, 1, 2)
    base = ["mark", "bk", "--task", "t000", "--variant", "b"]
    code, out, _ = cli(capsys, *base, "--criterion", "Is it r", "pass", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["mark"]["criterion"] == 0 and doc["mark"]["passed"] is True
    assert (doc["result"]["status"], doc["result"]["score"]) == ("passed", 1.0)
    assert cli(capsys, *base, "--criterion", "1", "fail")[0] == 0
    assert graded(run, "t000/b/1") == ("failed", 0.5)
    _, after, _ = cli(capsys, "report", "--format", "json")
    b = next(r for r in json.loads(after)["ranking"] if r["variant"] == "b")
    assert (b["attempts"], b["pending"], b["unmarked"], b["score"]) == (2, 0, 0, 0.25)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "b", "pass"], "has 2 manual criteria: name one with --criterion"),
        (["--variant", "b", "--criterion", "Is it", "pass"], "matches 2 manual criteria"),
        (["--variant", "b", "--criterion", "Does it", "pass"], "no manual criterion of t000/b/1"),
        (["--variant", "b", "--criterion", "7", "pass"], "has 2 criteria: no criterion 7"),
        (["--variant", "a", "--criterion", "0", "pass"], "criterion 0 of t000/a/1 is test_pass"),
        (["--variant", "a", "--criterion", "pytest", "pass"], "names a test_pass criterion"),
        (["--variant", "c", "pass"], "no variant 'c'"),
        (["--variant", "a", "--attempt", "2", "pass"], "no attempt 2 of t000/a"),
    ],
)
def test_mark_refusals_are_one_line(
    run: BakeoffRunPaths, capsys: Capsys, argv: list[str], message: str
) -> None:
    code, out, err = cli(capsys, "mark", "bk", "--task", "t000", *argv)
    assert code == 1 and out == ""
    assert message in err and len(err.splitlines()) == 1
    assert read_marks(run) == []


def test_mark_refuses_attempts_without_manual_criteria_or_not_finished(
    run: BakeoffRunPaths, capsys: Capsys
) -> None:
    for task, variant, message in [
        ("t001", "a", "t001/a/1 has no manual criterion"),
        ("t001", "b", "t001/b/1 has no manual criterion"),
        ("t002", "a", "t002/a/1 of bk/20261130-080000 has not finished"),
        ("t999", "a", "no task 't999'"),
    ]:
        code, _, err = cli(capsys, "mark", "bk", "--task", task, "--variant", variant, "pass")
        assert code == 1 and message in err
    assert not run.marks.exists()


def _proc_locks_waiting(inode: int) -> bool:
    """Whether /proc/locks shows a process blocked on a flock of this inode."""
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts and "FLOCK" in parts:
            dev_inode = parts[parts.index("->") + 5]
            if int(dev_inode.rsplit(":", 1)[1]) == inode:
                return True
    return False


def _mark_process(repo: Path, task: str, variant: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT)}
    argv = ["bakeoff", "mark", "bk", "--task", task, "--variant", variant, *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", *argv],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_mark_waits_for_the_lock(repo: Path, run: BakeoffRunPaths) -> None:
    lock = run.dir / "marks.lock"
    fd = lock_blocking(lock)
    try:
        proc = _mark_process(repo, "t000", "a", "pass")
        try:
            wait_for(
                lambda: _proc_locks_waiting(lock.stat().st_ino),
                timeout=60,
                what="the mark to block on marks.lock",
            )
            assert not run.marks.exists()
        except BaseException:
            proc.kill()
            raise
    finally:
        unlock(fd)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "marked pass → passed, score 1.00" in out
    assert len(read_marks(run)) == 1


def test_concurrent_marks_while_the_record_grows(repo: Path, run: BakeoffRunPaths) -> None:
    """Six processes mark at once while a writer appends attempts as the daemon does: every
    mark lands as one whole line and every record stays readable."""
    many = [f"Q{i}?" for i in range(6)]
    bf.append(run, bf.record("t002", "a", "passed", criteria=crit(*many)))
    stop = threading.Event()

    def daemon() -> None:
        while not stop.wait(0.002):  # paced like attempts finishing, for as long as marks run
            bf.append(run, bf.record("t002", "b", "failed"))

    writer = threading.Thread(target=daemon)
    writer.start()
    try:
        procs = [
            _mark_process(repo, "t002", "a", "--criterion", q, "pass", "--note", "x" * 3000)
            for q in many
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        stop.set()
        writer.join()
    marks = read_marks(run)
    assert sorted(m.criterion for m in marks) == [1, 2, 3, 4, 5, 6]
    assert all(m.note == "x" * 3000 for m in marks)
    assert len(run.marks.read_text().splitlines()) == 6
    assert graded(run, "t002/a/1") == ("passed", 1.0)
