"""An attempt's criteria, run by expd in a real repository's criteria tree at the attempt's commit.

Every criterion type passes and fails; each command sees a fresh checkout (an untracked file one
command left does not reach the next); metrics with field and bounds; timeouts kill the whole
process group; a checkout that fails fails what remains; and under bwrap a criterion reads the
bakeoff folder (hidden tests) but not the run directory, the bakeoff's runs or the agent's tree.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.bakeoff.criteria import (
    DETAILS_MAX,
    WAITING,
    CriteriaContext,
    evaluate,
    for_criteria,
    summarize_tests,
)
from daemon.ops import sandbox
from daemon.ops.git.eval_tree import EvalTree
from shared.bakeoffs.config import Where, parse_criterion
from shared.bakeoffs.paths import BakeoffPaths
from shared.bakeoffs.schema import Criterion, CriterionResult
from tests.repos import git, make_repo, wait_for


class Judge:
    """A real repository, its criteria tree, and `evaluate` with a log to read."""

    def __init__(self, root: Path) -> None:
        self.repo = make_repo(root / "repo")
        self.bakeoff = BakeoffPaths(self.repo, "b")
        self.bakeoff.dir.mkdir(parents=True)
        self.run = self.bakeoff.run("s1")
        self.run.dir.mkdir(parents=True)
        self.tree = EvalTree(
            repo=self.repo,
            path=self.bakeoff.slot_eval("s1", 0),
            gitdir=self.run.slot_git(0, "eval"),
        )
        self.head = git(self.repo, "rev-parse", "HEAD")
        self.log: list[str] = []
        self.started: list[int] = []

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            (self.repo / name).write_text(text)
        git(self.repo, "add", "-A", *files)
        git(self.repo, "commit", "-qm", message)
        return git(self.repo, "rev-parse", "HEAD")

    async def __call__(
        self,
        *entries: Any,
        commit: str | None = None,
        answer: str = "",
        box: sandbox.Sandbox = sandbox.UNCONFINED,
        timeout: float = 30.0,
    ) -> list[CriterionResult]:
        criteria = [
            e if isinstance(e, Criterion) else parse_criterion(e, Where(Path("bakeoff.toml")))
            for e in entries
        ]
        ctx = CriteriaContext(
            tree=self.tree,
            commit=commit or self.head,
            answer=answer,
            sandbox=box,
            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")},
            default_timeout=timeout,
            log=self.log.append,
            on_process_start=self.started.append,
            bakeoff_dir=self.bakeoff.dir,
        )
        return await evaluate(criteria, ctx)


@pytest.fixture
def judge(tmp_path: Path) -> Judge:
    return Judge(tmp_path)


def verdicts(results: list[CriterionResult]) -> list[bool | None]:
    return [r.passed for r in results]


async def test_commands_pass_on_exit_0_in_a_fresh_checkout_each(judge: Judge) -> None:
    results = await judge(
        "command:echo built > junk.txt; echo 'x = 99' > f.py; echo done",
        "command:test ! -e junk.txt && grep -qx 'x = 0' f.py",
        "command:echo first; echo broken >&2; exit 3",
        "command:true",
    )
    assert verdicts(results) == [True, True, False, True]
    assert results[0].details == "done"
    assert results[2].details == "exit code 3: first\nbroken"
    assert results[3].details == "exit 0"
    assert [(r.type, r.weight) for r in results] == [("command", 1.0)] * 4
    assert all(r.seconds > 0 for r in results)
    assert len(judge.started) == 4
    log = "\n".join(judge.log)
    assert "[3] command:echo first; echo broken >&2; exit 3\n    first\n    broken\n" in log
    assert "    → failed in " in log


async def test_commands_see_the_tree_the_commit_and_the_bakeoff(judge: Judge) -> None:
    (judge.bakeoff.dir / "check.sh").write_text("echo hidden test ran\n")
    results = await judge(
        'command:test "$PWD" = "$EXPD_WORKTREE" && test "$EXPD_COMMIT" = "$(cat .git/HEAD)"',
        'command:bash "$EXPD_BAKEOFF_DIR/check.sh"',
    )
    assert verdicts(results) == [True, True], results
    assert results[1].details == "hidden test ran"


async def test_criteria_judge_the_commit_they_are_given(judge: Judge) -> None:
    changed = judge.commit({"new.txt": "hello\n", "f.py": "x = 5\n"})
    at_change = await judge("file_exists:new.txt", "command:grep -q 5 f.py", commit=changed)
    at_base = await judge("file_exists:new.txt", "command:grep -q 5 f.py", commit=judge.head)
    assert verdicts(at_change) == [True, True]
    assert verdicts(at_base) == [False, False]
    assert at_base[0].details == "new.txt is missing"


async def test_test_pass_reports_test_counts_else_the_last_lines(judge: Judge) -> None:
    results = await judge(
        "test_pass:echo noise; echo '==== 12 passed, 2 skipped in 0.31s ===='",
        "test_pass:echo '=== 1 failed, 3 passed in 0.1s ==='; exit 1",
        "test_pass:printf 'Ran 4 tests in 0.001s\\n\\nFAILED (failures=1)\\n' >&2; exit 1",
        "test_pass:echo compiling; echo all good",
        "test_pass:echo oops; exit 2",
    )
    assert verdicts(results) == [True, False, False, True, False]
    assert [r.details for r in results] == [
        "12 passed, 2 skipped",
        "exit code 1: 3 passed, 1 failed",
        "exit code 1: 3 passed, 1 failed",
        "compiling\nall good",
        "exit code 2: oops",
    ]


@pytest.mark.parametrize(
    ("output", "summary"),
    [
        (
            "tests/t.py ..F\n=== 1 failed, 2 passed, 1 error in 0.2s ===",
            "2 passed, 1 failed, 1 error",
        ),
        ("3 passed, 1 xfailed, 1 xpassed in 0.1s", "4 passed, 1 skipped"),
        ("Ran 5 tests in 0.002s\n\nOK (skipped=1)", "4 passed, 1 skipped"),
        ("Ran 1 test in 0.000s\n\nOK", "1 passed"),
        (
            "Ran 6 tests in 0.1s\n\nFAILED (failures=1, errors=2, expected failures=1)",
            "2 passed, 1 failed, 2 errors, 1 skipped",
        ),
        (
            "running 3 tests\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured\n"
            "test result: FAILED. 1 passed; 1 failed; 2 ignored; 0 measured",
            "4 passed, 1 failed, 2 skipped",
        ),
        (
            "=== RUN   TestA\n--- PASS: TestA (0.00s)\n    --- PASS: TestA/sub (0.00s)\n"
            "--- FAIL: TestB (0.00s)\n--- SKIP: TestC (0.00s)\nFAIL\nFAIL\tex.com/m\t0.01s",
            "1 passed, 1 failed, 1 skipped",
        ),
        (
            "ok  \tex.com/a\t0.01s\nok  \tex.com/b\t(cached)\nFAIL\tex.com/c\t0.2s",
            "2 packages ok, 1 failed",
        ),
        ("Tests:       1 failed, 5 passed, 6 total", "5 passed, 1 failed"),
        ("suite: 7 passed, 0 failed", "7 passed"),
        ("all done, nothing to count", None),
    ],
)
def test_test_summaries_of_each_runner(output: str, summary: str | None) -> None:
    assert summarize_tests(output) == summary


async def test_a_chatty_command_is_logged_head_and_tail_with_short_details(judge: Judge) -> None:
    (result,) = await judge(
        "command:for i in $(seq 1 1000); do echo line-$i-$(printf 'x%.0s' $(seq 1 30)); done; exit 1"
    )
    assert result.passed is False
    assert len(result.details) <= DETAILS_MAX
    assert result.details.startswith("exit code 1: ") and result.details.endswith(
        "line-1000-" + "x" * 30
    )
    log = judge.log
    assert log[1].startswith("    line-1-") and log[100].startswith("    line-100-")
    assert log[101] == "    … 800 lines not logged …"
    assert log[102].startswith("    line-901-") and log[201].startswith("    line-1000-")
    assert len(log) == 203


async def test_file_exists_stays_inside_the_tree(judge: Judge, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (judge.repo / "docs").mkdir()
    (judge.repo / "link").symlink_to(outside)
    (judge.repo / "etc").symlink_to("/etc")
    (judge.repo / "inner").symlink_to("f.py")
    git(judge.repo, "add", "link", "etc", "inner")
    changed = judge.commit({"docs/a.md": "a\n"}, "links and docs")
    results = await judge(
        "file_exists:f.py",
        "file_exists:docs",
        "file_exists:inner",
        "file_exists:link",
        "file_exists:etc/passwd",
        "file_exists:../repo/f.py",
        f"file_exists:{judge.repo / 'f.py'}",
        "file_exists:.git/HEAD",
        "file_exists:nope/x",
        commit=changed,
    )
    assert verdicts(results) == [True, True, True, False, False, False, False, False, False]
    assert [r.details for r in results] == [
        "f.py exists",
        "docs exists (a folder)",
        "inner exists",
        "link leads outside the tree (a symlink on the way)",
        "etc/passwd leads outside the tree (a symlink on the way)",
        "../repo/f.py climbs out of the tree ('..')",
        f"{judge.repo / 'f.py'} is absolute: name a path inside the tree",
        ".git is expd's, not the commit's",
        "nope/x is missing",
    ]


async def test_file_exists_ignores_what_an_earlier_command_left(judge: Judge) -> None:
    results = await judge("command:touch made.txt", "file_exists:made.txt")
    assert verdicts(results) == [True, False]


async def test_contains_and_manual(judge: Judge) -> None:
    results = await judge(
        "contains:DONE", "contains:done", "manual:Is it idiomatic?", answer="All DONE here."
    )
    assert verdicts(results) == [True, False, None]
    assert [r.details for r in results] == ["found in the answer", "not in the answer", WAITING]


async def test_metrics_with_field_and_bounds(judge: Judge) -> None:
    json_line = 'echo noise; echo \'{"ms": 12.5, "mb": 3}\''
    results = await judge(
        "metric:echo 'METRIC ms=7'",
        {"metric": json_line, "field": "ms", "max": 20},
        {"metric": json_line, "field": "ms", "max": 10},
        {"metric": json_line, "field": "mb", "min": 4},
        {"metric": json_line, "field": "gb"},
        f"metric:{json_line}",
        "metric:echo nothing here",
        "metric:echo 'METRIC ms=nan'",
        "metric:echo 'METRIC ms=1'; exit 4",
        {"metric": json_line, "field": "mb", "min": 3, "max": 3, "weight": 2.5},
    )
    assert verdicts(results) == [True, True, False, False, False, False, False, False, False, True]
    assert [r.value for r in results] == [7.0, 12.5, 12.5, 3.0, None, None, None, None, None, 3.0]
    assert [r.details for r in results] == [
        "ms=7",
        "ms=12.5",
        "ms=12.5, above max 10",
        "mb=3, below min 4",
        "metric 'gb' missing (found mb, ms)",
        "several metrics printed (mb, ms): name one with field",
        "no metric printed (a JSON object line or METRIC name=value); output ends: nothing here",
        "ms is nan: not a finite number",
        "exit code 4: METRIC ms=1",
        "mb=3",
    ]
    assert results[-1].weight == 2.5


async def test_a_timeout_kills_the_process_group(judge: Judge, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    slow = Criterion(type="command", target=f"sleep 60 & echo $! > {pidfile}; wait", timeout_s=0.5)
    started = time.monotonic()
    results = await judge(slow, "metric:sleep 60", "command:true", timeout=0.5)
    assert time.monotonic() - started < 20
    assert verdicts(results) == [False, False, True]
    assert [r.details for r in results[:2]] == ["timed out after 0.5s"] * 2
    child = int(pidfile.read_text())
    wait_for(lambda: not alive(child), 10, "the timed-out command's child to die")


def alive(pid: int) -> bool:
    """A live process (a zombie left to a subreaper that does not reap it is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_checkout_that_fails_fails_every_remaining_criterion(judge: Judge) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    results = await judge(
        "contains:yes", "command:true", "manual:ok?", "contains:yes", answer="yes", commit=missing
    )
    assert verdicts(results) == [True, False, False, False]
    assert results[1].details.startswith("cannot check 0123456789 out")
    assert results[1].details == results[2].details == results[3].details


async def test_under_bwrap_a_criterion_reads_the_bakeoff_but_not_the_run(judge: Judge) -> None:
    if not sandbox.probe("bwrap").ok:
        pytest.skip(f"bwrap is not available here: {sandbox.probe('bwrap').detail}")
    (judge.bakeoff.dir / "hidden").mkdir()
    (judge.bakeoff.dir / "hidden" / "test.sh").write_text("echo hidden test ran\n")
    (judge.run.dir / "run.key").write_text("secret\n")
    agent_tree = judge.bakeoff.slot_tree("s1", 0)
    agent_tree.mkdir(parents=True)
    (agent_tree / "work.txt").write_text("the agent's\n")
    private = (judge.run.dir, agent_tree, judge.tree.gitdir)
    box = for_criteria(
        "bwrap",
        repo=judge.repo,
        tree=judge.tree.path,
        bakeoff_dir=judge.bakeoff.dir,
        private=private,
    )
    results = await judge(
        'command:bash "$EXPD_BAKEOFF_DIR/hidden/test.sh"',
        f"command:cat {judge.run.dir / 'run.key'}",
        f"command:ls {judge.bakeoff.runs_dir / 's1'}/run.key",
        f"command:cat {agent_tree / 'work.txt'}",
        f"command:cat {judge.repo / 'agent.sh'}",
        'command:echo x > "$EXPD_BAKEOFF_DIR/planted"',
        "command:echo x > written.txt && cat f.py",
        box=box,
    )
    assert box.backend == "bwrap"
    assert verdicts(results) == [True, False, False, False, False, False, True], results
    assert results[0].details == "hidden test ran"
    assert not (judge.bakeoff.dir / "planted").exists()
    assert "secret" not in "\n".join(judge.log)
