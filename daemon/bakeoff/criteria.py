"""Judging an attempt: its task's criteria, run by expd at the attempt's commit.

Criteria never run in the agent's tree. Each command runs in the slot's criteria tree, checked out
afresh at the commit first (what an earlier command left untracked is gone), and confined like a
measurement (`for_criteria`): it executes the agent's code. The bakeoff folder is readable (hidden
tests may live there) but not its runs; the run directory, the agents' trees and expd's git dirs
are out of sight. A failing criterion, a timeout or a checkout that fails is a result, never an
exception: an attempt is always scored.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.ops import children as process
from daemon.ops.confine import measure_confinement
from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.store import TreeError
from daemon.ops.measure import parse_metrics
from daemon.ops.sandbox import Sandbox, make, resolve
from shared.bakeoffs.schema import Criterion, CriterionResult

COMMANDS = frozenset({"test_pass", "command", "metric"})
IN_TREE = COMMANDS | {"file_exists"}
"""The criteria that look at the checkout (the others read the answer, or wait for a person)."""
DETAILS_MAX = 500
OUTPUT_KEPT = 64 * 1024
"""The end of a command's output (both streams) kept for its details and test counts."""
LOG_HEAD, LOG_TAIL, LOG_LINE = 100, 100, 2000
"""A command's output in criteria.log: its first and last lines, each cut to LOG_LINE characters."""
WAITING = "waiting for a mark (expd bakeoff mark)"


@dataclass
class CriteriaContext:
    tree: EvalTree
    """The slot's criteria tree; `evaluate` checks `commit` out itself."""
    commit: str
    """What the criteria judge."""
    answer: str
    """The agent's final answer (what `contains:` looks in)."""
    sandbox: Sandbox
    """Confines the commands (`for_criteria`)."""
    env: dict[str, str]
    """The commands' base environment."""
    default_timeout: float
    """A command's timeout when its criterion names none (the bakeoff's `criteria_timeout`)."""
    log: Callable[[str], None]
    """One line at a time into the attempt's criteria.log."""
    on_process_start: Callable[[int], None] = lambda pgid: None
    bakeoff_dir: Path | None = None
    """`$EXPD_BAKEOFF_DIR` for the commands (else whatever `env` says)."""


def for_criteria(
    mode: str, *, repo: Path, tree: Path, bakeoff_dir: Path, private: Sequence[Path]
) -> Sandbox:
    """The criteria's sandbox (`criteria_sandbox`): a measurement's confinement with the bakeoff
    folder read-only in place of the program folder (its `runs/` hidden); `private` hides the run
    directory, the agents' trees and expd's git dirs. SandboxUnavailable when the mode cannot run."""
    confinement = measure_confinement(repo, tree, private, program_dir=bakeoff_dir)
    return make(resolve(mode, "criteria_sandbox"), confinement)


async def evaluate(criteria: list[Criterion], ctx: CriteriaContext) -> list[CriterionResult]:
    """Every criterion's result, in order. A checkout that fails fails every remaining one."""
    results: list[CriterionResult] = []
    fresh = False  # the tree is a clean checkout of ctx.commit that no command has run in yet
    broken: str | None = None
    for index, criterion in enumerate(criteria, 1):
        started = time.monotonic()
        ctx.log(f"[{index}] {criterion.type}:{criterion.target}")
        if broken is None and criterion.type in IN_TREE and not fresh:
            try:
                await ctx.tree.checkout(ctx.commit, clean=True)
                fresh = True
            except (TreeError, ValueError) as exc:
                broken = str(exc) or type(exc).__name__
        if broken is not None:
            result = CriterionResult(passed=False, details=broken)
        else:
            result = await _judge(criterion, ctx)
            fresh = fresh and criterion.type not in COMMANDS
        result.type, result.target, result.weight = (
            criterion.type,
            criterion.target,
            criterion.weight,
        )
        result.seconds = round(time.monotonic() - started, 3)
        verdict = {True: "passed", False: "failed", None: "undecided"}[result.passed]
        ctx.log(f"    → {verdict} in {result.seconds:.1f}s: {_first_line(result.details)}")
        results.append(result)
    return results


async def _judge(criterion: Criterion, ctx: CriteriaContext) -> CriterionResult:
    kind, target = criterion.type, criterion.target
    if kind == "contains":
        found = target in ctx.answer
        return CriterionResult(
            passed=found, details="found in the answer" if found else "not in the answer"
        )
    if kind == "manual":
        return CriterionResult(passed=None, details=WAITING)
    if kind == "file_exists":
        passed, details = file_exists(ctx.tree.path, target)
        return CriterionResult(passed=passed, details=details)
    if kind in COMMANDS:
        return await _command(criterion, ctx)
    return CriterionResult(passed=False, details=f"unknown criterion type {kind!r}")


def file_exists(root: Path, target: str) -> tuple[bool, str]:
    """Whether `target` (relative to `root`) exists there, never followed outside `root`."""
    rel = Path(target)
    if rel.is_absolute():
        return False, f"{target} is absolute: name a path inside the tree"
    if ".." in rel.parts:
        return False, f"{target} climbs out of the tree ('..')"
    if rel.parts[:1] == (".git",):
        return False, ".git is expd's, not the commit's"
    base = os.path.realpath(root)
    real = os.path.realpath(root / rel)
    if real != base and not real.startswith(base + os.sep):
        return False, f"{target} leads outside the tree (a symlink on the way)"
    if os.path.isdir(real):
        return True, f"{target} exists (a folder)"
    if os.path.exists(real):
        return True, f"{target} exists"
    if os.path.lexists(root / rel):
        return False, f"{target} is a symlink to nothing"
    return False, f"{target} is missing"


class _Output:
    """A command's output: its end kept for the details, its head and end logged."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.kept = process.BoundedTail(OUTPUT_KEPT)
        self.logged = 0
        self.skipped = 0
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)

    def add(self, _stream: str, line: str) -> None:
        self.kept.add(line)
        line = line[:LOG_LINE]
        if self.logged < LOG_HEAD:
            self.logged += 1
            self.log(f"    {line}")
            return
        if len(self.tail) == self.tail.maxlen:
            self.skipped += 1
        self.tail.append(line)

    def close(self) -> str:
        if self.skipped:
            self.log(f"    … {self.skipped} lines not logged …")
        for line in self.tail:
            self.log(f"    {line}")
        return self.kept.text()


def _environment(ctx: CriteriaContext) -> dict[str, str]:
    env = {**ctx.env, "EXPD_WORKTREE": str(ctx.tree.path), "EXPD_COMMIT": ctx.commit}
    if ctx.bakeoff_dir is not None:
        env["EXPD_BAKEOFF_DIR"] = str(ctx.bakeoff_dir)
    # Bytecode left in the shared tree by one attempt could pass for another's: libgit2 writes
    # same-sized sources within the same second, and Python checks only mtime and size.
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


async def _command(criterion: Criterion, ctx: CriteriaContext) -> CriterionResult:
    timeout = criterion.timeout_s or ctx.default_timeout
    output = _Output(ctx.log)
    try:
        result = await process.run(
            criterion.target,
            cwd=ctx.tree.path,
            env=_environment(ctx),
            timeout=timeout,
            on_line=output.add,
            on_start=ctx.on_process_start,
            sandbox=ctx.sandbox,
        )
    except OSError as exc:
        output.close()
        return CriterionResult(passed=False, details=f"could not start the command: {exc}")
    text = output.close()
    if result.timed_out:
        return CriterionResult(passed=False, details=f"timed out after {timeout:g}s")
    code = result.returncode
    if criterion.type == "metric":
        if code:
            return CriterionResult(passed=False, details=_failed(code, text))
        return _metric(criterion, result.stdout)
    counts = summarize_tests(text) if criterion.type == "test_pass" else None
    if code:
        details = f"exit code {code}: {counts}" if counts else _failed(code, text)
        return CriterionResult(passed=False, details=details)
    return CriterionResult(passed=True, details=counts or last_lines(text) or "exit 0")


def _metric(criterion: Criterion, stdout: str) -> CriterionResult:
    parsed = parse_metrics(stdout)
    found = ", ".join(sorted(parsed))
    if criterion.field is not None:
        name = criterion.field
        if name not in parsed:
            why = f"found {found}" if parsed else "no metrics printed"
            return CriterionResult(passed=False, details=f"metric {name!r} missing ({why})")
    elif len(parsed) == 1:
        name = next(iter(parsed))
    elif parsed:
        return CriterionResult(
            passed=False, details=f"several metrics printed ({found}): name one with field"
        )
    else:
        last = last_lines(stdout, 200) or "(empty output)"
        return CriterionResult(
            passed=False,
            details=f"no metric printed (a JSON object line or METRIC name=value); output ends: {last}",
        )
    value = parsed[name]
    if not math.isfinite(value):
        return CriterionResult(passed=False, details=f"{name} is {value}: not a finite number")
    details = f"{name}={value:.10g}"
    if criterion.min is not None and value < criterion.min:
        return CriterionResult(
            passed=False, value=value, details=f"{details}, below min {criterion.min:g}"
        )
    if criterion.max is not None and value > criterion.max:
        return CriterionResult(
            passed=False, value=value, details=f"{details}, above max {criterion.max:g}"
        )
    return CriterionResult(passed=True, value=value, details=details)


def _failed(code: int | None, text: str) -> str:
    head = f"exit code {code}"
    tail = last_lines(text, DETAILS_MAX - len(head) - 2)
    return f"{head}: {tail}" if tail else head


def last_lines(text: str, limit: int = DETAILS_MAX) -> str:
    """The last non-blank lines of `text` that fit in `limit` characters (the last one cut)."""
    out: list[str] = []
    size = 0
    for line in reversed([x.rstrip() for x in text.splitlines() if x.strip()]):
        if size + len(line) + (1 if out else 0) > limit:
            if not out:
                out.append("…" + line[-(limit - 1) :])
            break
        size += len(line) + (1 if out else 0)
        out.append(line)
    return "\n".join(reversed(out))


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


# --------------------------------------------------------------------------- test summaries

_CARGO = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ", re.M)
_UNITTEST_END = re.compile(r"^(?:OK|FAILED)(?: \((.*)\))?\s*$", re.M)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")
_GO_TEST = re.compile(r"^--- (PASS|FAIL|SKIP): ", re.M)
_GO_PACKAGE = re.compile(r"^(ok|FAIL)\s+\S+\s+(?:[\d.]+s|\(cached\))", re.M)
_WORDS = {"xpassed": "passed", "error": "errors", "xfailed": "skipped"}


def _counts(passed: int, failed: int = 0, errors: int = 0, skipped: int = 0) -> str:
    parts = [f"{passed} passed"]
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{errors} error{'s' if errors != 1 else ''}"] if errors else []
    parts += [f"{skipped} skipped"] if skipped else []
    return ", ".join(parts)


def summarize_tests(output: str) -> str | None:
    """ "12 passed, 1 failed" from a pytest, unittest, go test, cargo test (or any "N passed,
    N failed") summary in `output`; None when it has none."""
    cargo = _CARGO.findall(output)
    if cargo:
        passed, failed, ignored = (sum(int(row[i]) for row in cargo) for i in range(3))
        return _counts(passed, failed, skipped=ignored)
    ran, end = _UNITTEST_RAN.findall(output), _UNITTEST_END.findall(output)
    if ran and end:
        fields = dict(
            (k.strip(), int(v)) for k, _, v in (f.partition("=") for f in end[-1].split(",") if f)
        )
        failed, errors = fields.get("failures", 0), fields.get("errors", 0)
        skipped = fields.get("skipped", 0) + fields.get("expected failures", 0)
        passed = int(ran[-1]) - failed - errors - skipped - fields.get("unexpected successes", 0)
        return _counts(max(passed, 0), failed, errors, skipped)
    for line in reversed(output.splitlines()):
        found = _COUNT.findall(line)
        if found:
            total = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
            for number, word in found:
                total[_WORDS.get(word, word)] += int(number)
            return _counts(**total)
    tests = _GO_TEST.findall(output)
    if tests:
        return _counts(tests.count("PASS"), tests.count("FAIL"), skipped=tests.count("SKIP"))
    packages = _GO_PACKAGE.findall(output)
    if packages:
        ok, failed = packages.count("ok"), packages.count("FAIL")
        return f"{ok} packages ok" + (f", {failed} failed" if failed else "")
    return None
