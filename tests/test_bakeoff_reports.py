"""`expd bakeoff report|results|errors|diff` on bakeoff run directories written from the contract's
structs (the daemon's own tests run the real thing)."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import CriterionResult, RunningAttempt
from shared.bakeoffs.status import read_state
from shared.cli.main import main
from shared.codec import encode
from tests import bakeoff_fakes as bf
from tests.fake_runs import git_repo

Capsys = pytest.CaptureFixture[str]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PATCH = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old = 1\n+new = 2\t# tab\n"
RESULT_KEYS = [
    "task",
    "variant",
    "attempt",
    "status",
    "score",
    "criteria",
    "cost_usd",
    "tokens",
    "duration_s",
    "commit",
    "error",
    "replay_of",
    "ref",
    "error_class",
]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    return root


def cli(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["bakeoff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def three_variants(
    repo: Path, variants: tuple[str, str, str] = ("best", "half", "broken")
) -> BakeoffRunPaths:
    """One variant solves every task, one every other, one always breaks (errors and timeouts)."""
    best, half, broken = variants
    paths = bf.make_run(repo, bf.spec(6, variants), phase="complete")
    for i in range(6):
        t = f"t{i:03d}"
        bf.append(paths, bf.record(t, best, "passed", patch_files=["x.py"], cost=0.03, duration=9))
        bf.write_attempt_files(paths, t, best, log="thinking\n", patch=PATCH)
        ok = i % 2 == 0
        bf.append(
            paths,
            bf.record(t, half, "passed" if ok else "failed", patch_files=["x.py"] if ok else None),
        )
        bf.write_attempt_files(paths, t, half, patch=PATCH if ok else "")
        if i < 4:
            bf.append(paths, bf.record(t, broken, "error", error="exit 1"))
        else:
            bf.append(paths, bf.record(t, broken, "timeout"))
        log = "".join(f"line {n}\n" for n in range(20))
        bf.write_attempt_files(paths, t, broken, log=log)
    return paths


# --------------------------------------------------------------------------- report


def test_report_json(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "report", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    for key in ("run_id", "name", "spec", "ranking", "winner", "comparison", "tasks", "variants"):
        assert key in doc
    assert "generated_at" in doc
    assert doc["run_id"] == "bk/" + bf.STAMP and doc["name"] == "bk"
    assert [r["variant"] for r in doc["ranking"]] == ["best", "half", "broken"]
    assert doc["ranking"][0]["interval"][1] == 1.0
    assert doc["spec"]["tasks"] == 6 and doc["spec"]["total"] == 18
    assert doc["winner"]["variant"] is None  # 3–0 over six tasks is not enough
    assert doc["comparison"]["wins_a"] == 3 and doc["comparison"]["more_tasks"] == 6
    assert doc["tasks"][1] == {
        "task": "t001",
        "results": {"best": ["passed"], "half": ["failed"], "broken": ["error"]},
        "scores": {"best": 1.0, "half": 0.0, "broken": 0.0},
    }
    assert doc["variants"][0] == {
        "id": "best",
        "kind": "command",
        "model": None,
        "prompt_prefix": "",
    }


def test_term_report_plain_off_a_terminal(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "report")
    assert code == 0
    assert not ANSI.search(out)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#"))
    rows = lines[header + 1 : header + 4]
    assert [row.split()[1] for row in rows] == ["best", "half", "broken"]
    assert "6/6" in rows[0] and "100% [61–100%]" in rows[0] and "█" in rows[0]
    assert "3/6" in rows[1] and "50% [19–81%]" in rows[1]
    assert re.search(r"\b6\b", rows[2].split("%]")[1])  # six errors and timeouts
    winner = next(line for line in lines if line.startswith("no clear winner"))
    assert "about 6 more tasks" in winner
    assert "order: best ranks above half by score (1.00 vs 0.50)" in out


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_term_report_colour_on_a_terminal_unless_no_color(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_variants(repo)
    screen = Tty()
    monkeypatch.setattr("sys.stdout", screen)
    assert main(["bakeoff", "report"]) == 0
    coloured = screen.getvalue()
    assert ANSI.search(coloured)
    monkeypatch.setenv("NO_COLOR", "1")
    screen = Tty()
    monkeypatch.setattr("sys.stdout", screen)
    assert main(["bakeoff", "report"]) == 0
    plain = screen.getvalue()
    assert not ANSI.search(plain)
    assert ANSI.sub("", coloured) == plain  # colour never moves a column


def test_term_report_compact_one_line_per_variant(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    _, out, _ = cli(capsys, "report", "--compact")
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["1.", "best"],
        ["2.", "half"],
        ["3.", "broken"],
    ]
    assert "no pass" in lines[2]
    assert lines[3].startswith("no clear winner") and len(lines) == 4


def test_term_report_of_a_partial_run_with_pending_marks(repo: Path, capsys: Capsys) -> None:
    paths = bf.make_run(repo, bf.spec(4, ("a", "b")))
    manual = [CriterionResult(type="manual", target="Readable?", passed=None)]
    bf.append(
        paths, bf.record("t000", "a", "passed"), bf.record("t000", "b", "failed", criteria=manual)
    )
    _, out, _ = cli(capsys, "report")
    assert "partial: 2 of 8 attempts finished" in out
    assert "1 manual criteria await a verdict" in out
    _, md, _ = cli(capsys, "report", "--format", "md")
    assert "| t000 | ✓ | ? |" in md and "| t001 | · | · |" in md


def test_markdown_report(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "report", "--format", "md")
    assert code == 0
    assert out.startswith("# Bakeoff report: bk/")
    assert "| 1 | best | 6/6 | 100% [61–100%] | 1.00 |" in out
    assert "| task | best | half | broken |" in out
    assert "| t001 | ✓ | ✗ | E |" in out and "| t005 | ✓ | ✗ | T |" in out
    assert "sign test, best vs half over 6 tasks both attempted: 3 wins, 0 losses" in out


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def classes(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


def test_html_report_is_self_contained_and_escaped(repo: Path, capsys: Capsys) -> None:
    evil = "<img src=x onerror=alert(1)>"
    paths = three_variants(repo, ("best", evil, "broken"))
    hostile = "<script>alert('log')</script>\n" * 3
    for i in range(6):
        bf.write_attempt_files(paths, f"t{i:03d}", "broken", log=hostile)
    out_file = repo / "report.html"
    code, out, err = cli(capsys, "report", "--format", "html", "--output", str(out_file))
    assert code == 0 and out == "" and f"wrote {out_file}" in err
    html = out_file.read_text()
    page = Page()
    page.feed(html)
    names = [t for t, _ in page.tags]
    assert "script" not in names and "img" not in names and "link" not in names
    assert "://" not in html  # no URL at all: it opens offline
    assert names.count("svg") == 2
    assert [a["data-variant"] for a in page.classes("g", "bar")] == ["best", evil, "broken"]
    assert len(page.classes("g", "point")) == 3
    assert len(page.classes("line", "interval")) == 3
    text = "".join(page.text)
    assert evil in text and "<script>alert('log')</script>" in text
    assert "timeout" in text and "crash" in text  # the failures by cause
    rows = page.classes("tr", "first")
    assert len(rows) == 1


def test_report_rejects_a_program_run(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, _, err = cli(capsys, "report", "nope/123")
    assert code == 1 and "no run matching 'nope/123'" in err


def test_report_output_to_a_missing_folder_is_one_line(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, _, err = cli(capsys, "report", "--output", str(repo / "no" / "such" / "r.txt"))
    assert code == 1 and err.startswith("expd: error: cannot write the report")


# --------------------------------------------------------------------------- results


def test_results_json_has_exactly_the_contract_keys(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "results", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 18
    assert all(list(r) == RESULT_KEYS for r in rows)
    assert [(r["task"], r["variant"]) for r in rows[:3]] == [
        ("t000", "best"),
        ("t000", "half"),
        ("t000", "broken"),
    ]
    assert rows[0]["criteria"] == [
        {"type": "test_pass", "target": "pytest -q", "passed": True, "details": ""}
    ]


def test_results_filters_and_text(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    _, out, _ = cli(capsys, "results", "--json", "--variant", "half", "--task", "t001")
    assert [(r["task"], r["variant"], r["status"]) for r in json.loads(out)] == [
        ("t001", "half", "failed")
    ]
    _, text, _ = cli(capsys, "results", "--variant", "broken")
    lines = text.splitlines()
    assert lines[0].split() == [
        "TASK",
        "VARIANT",
        "#",
        "STATUS",
        "SCORE",
        "CRITERIA",
        "COST",
        "AGENT",
        "NOTE",
    ]
    assert len(lines) == 7 and "exit 1" in lines[1] and "timeout" in lines[6]
    _, none, _ = cli(capsys, "results", "--variant", "nobody")
    assert none.strip() == "no finished attempts yet"


def test_results_shows_the_newest_record_and_replays(repo: Path, capsys: Capsys) -> None:
    paths = bf.make_run(repo, bf.spec(1, ("a", "b")))
    bf.append(
        paths,
        bf.record("t000", "a", "error", error="crashed"),
        bf.record("t000", "a", "passed"),
        bf.record("t000", "b", "passed", attempt=2, replay_of="t000/a/1"),
    )
    _, out, _ = cli(capsys, "results", "--json")
    rows = json.loads(out)
    assert [(r["variant"], r["attempt"], r["status"], r["replay_of"]) for r in rows] == [
        ("a", 1, "passed", None),
        ("b", 2, "passed", "t000/a/1"),
    ]


# --------------------------------------------------------------------------- errors


def test_errors_grouped_by_cause(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "errors", "--json")
    assert code == 0
    doc = json.loads(out)
    groups = {g["cause"]: g for g in doc["groups"]}
    assert [g["cause"] for g in doc["groups"]] == ["crash", "no change", "timeout"]
    assert groups["crash"]["variants"] == {"broken": 4}
    assert groups["no change"]["variants"] == {"half": 3}
    assert groups["timeout"]["attempts"] == ["t004/broken/1", "t005/broken/1"]
    assert groups["crash"]["example_log"] == [f"line {n}" for n in range(8)]
    assert groups["no change"]["example_log"] == []
    _, text, _ = cli(capsys, "errors")
    blocks = text.split("\n\n")
    assert blocks[0] == f"bk/{bf.STAMP}: 9 of 18 finished attempt(s) did not pass, 3 cause(s)"
    assert blocks[1].splitlines()[0].split() == ["4", "crash"]
    assert "│ line 7" in blocks[1] and "line 8" not in blocks[1]
    assert "the agent log is empty" in blocks[2]


def test_errors_when_everything_passed(repo: Path, capsys: Capsys) -> None:
    paths = bf.make_run(repo, bf.spec(1, ("a",)))
    bf.append(paths, bf.record("t000", "a", "passed"))
    _, out, _ = cli(capsys, "errors")
    assert (
        out.strip() == f"bk/{bf.STAMP}: all 1 finished attempt(s) passed (or await a manual mark)"
    )
    bf.make_run(repo, bf.spec(1, ("a",)), stamp="20261130-090000")
    _, out, _ = cli(capsys, "errors", "20261130-09")
    assert out.strip() == "bk/20261130-090000: no attempt has finished yet"


# --------------------------------------------------------------------------- diff


def test_diff_side_by_side(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    code, out, _ = cli(capsys, "diff", "bk", "--task", "t001", "best", "half", "--width", "60")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert [part.strip() for part in lines[0].split("│")] == [
        "best: passed, score 1.00",
        "half: failed, score 0.00",
    ]
    assert lines[1].split() == ["1", "file", "(+1", "−0)", "│", "no", "change"]
    assert lines[3].split("│")[1].strip() == "no change"
    assert any(line.startswith("+new = 2    # tab") for line in lines)
    _, wide, _ = cli(capsys, "diff", "bk", "--task", "t000", "best", "half", "--width", "200")
    assert "-old = 1" in wide.splitlines()[7].split("│")[1]


def test_diff_json(repo: Path, capsys: Capsys) -> None:
    three_variants(repo)
    _, out, _ = cli(capsys, "diff", "bk", "--task", "t001", "best", "half", "--json")
    doc = json.loads(out)
    assert (doc["task"], doc["attempt"]) == ("t001", 1)
    assert doc["left"]["variant"] == "best" and doc["left"]["patch"] == PATCH
    assert doc["left"]["status"] == "passed"
    assert doc["right"] == {
        "variant": "half",
        "status": "failed",
        "score": 0.0,
        "changed": False,
        "files": [],
        "patch": None,
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "t999", "best", "half"], "no task 't999'"),
        (["--task", "t001", "best", "nobody"], "no variant 'nobody'"),
        (["--task", "t001", "best", "half", "--attempt", "2"], "no attempt 2 of t001/best"),
        (["--task", "t001", "best", "half", "--width", "10"], "too narrow"),
    ],
)
def test_diff_errors_are_one_line(
    repo: Path, capsys: Capsys, argv: list[str], message: str
) -> None:
    three_variants(repo)
    code, _, err = cli(capsys, "diff", "bk", *argv)
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_diff_of_an_attempt_still_running(repo: Path, capsys: Capsys) -> None:
    paths = bf.make_run(repo, bf.spec(1, ("a", "b")))
    bf.append(paths, bf.record("t000", "a", "passed"))
    state = read_state(paths)
    assert state is not None
    state.running = [RunningAttempt(task="t000", variant="b", attempt=1, stage="agent")]
    write_atomic(paths.state_json, encode(state))
    code, _, err = cli(capsys, "diff", "bk", "--task", "t000", "a", "b")
    assert code == 1 and "t000/b/1 of bk/" in err and "still running" in err
    paths2 = bf.make_run(repo, bf.spec(1, ("a", "b")), stamp="20261130-090000")
    bf.append(paths2, bf.record("t000", "a", "passed"))
    code, _, err = cli(capsys, "diff", "20261130-09", "--task", "t000", "a", "b")
    assert code == 1 and "has not finished" in err
