"""Arms in the read commands: `expd status` prints a per-arm table, `expd results` an arm column,
and `expd report` the arm of every experiment, a per-arm table and the program's generations —
while a run without arms reads exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import codec
from shared.atomic import write_atomic
from shared.cli.main import main
from shared.darwin import Generation, Source
from shared.paths import RepoPaths
from shared.schema import ArmStats
from tests.fake_runs import FakeRun, git_repo, make_run, result

Capsys = pytest.CaptureFixture[str]

STATS = [
    ArmStats(id="careful", experiments=3, keeps=2, improvement_pct=7.5, cost_usd=0.3, agent_s=30),
    ArmStats(
        id="quick", experiments=1, keeps=0, errors=1, cost_usd=0.05, agent_s=4, paused="quota"
    ),
]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def armed_run(repo: Path) -> FakeRun:
    run = make_run(repo, phase="complete", arm_stats=STATS, keeps=2, discards=1, crashes=1)
    recs = [result(0, "baseline", 10.0)]
    for n, (status, arm) in enumerate(
        [("keep", "careful"), ("crash", "quick"), ("keep", "careful"), ("discard", "careful")], 1
    ):
        rec = result(n, status, None if status == "crash" else 10.0 - n)
        rec.arm = arm
        recs.append(rec)
    run.add_results(*recs)
    return run


def cli(capsys: Capsys, *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def test_status_prints_a_table_of_the_arms(repo: Path, capsys: Capsys) -> None:
    armed_run(repo)
    out = cli(capsys, "status")
    table = out[out.index("ARM ") :].splitlines()
    assert table[0].split() == [
        "ARM", "EXPERIMENTS", "KEEPS", "KEEP", "RATE", "IMPROVEMENT", "COST", "AGENT", "TIME",
        "SHARE", "PAUSED",
    ]  # fmt: skip
    assert table[1].split() == ["careful", "3", "2", "67%", "+7.5%", "$0.30", "10s", "75%", "—"]
    assert table[2].split() == ["quick", "1", "0", "0%", "+0.0%", "$0.05", "4s", "25%", "quota"]
    arms = json.loads(cli(capsys, "status", "--json"))["arms"]
    assert [(a["id"], a["share"]) for a in arms] == [("careful", 0.75), ("quick", 0.25)]


def test_results_show_the_arm_of_every_experiment(repo: Path, capsys: Capsys) -> None:
    armed_run(repo)
    lines = cli(capsys, "results").splitlines()
    assert lines[0].split()[:4] == ["#", "STATUS", "ARM", "METRIC"]
    assert [line.split()[2] for line in lines[1:]] == [
        "—",
        "careful",
        "quick",
        "careful",
        "careful",
    ]
    tsv = [line.split("\t") for line in cli(capsys, "results", "--tsv").splitlines()]
    assert tsv[0][-1] == "arm" and [row[-1] for row in tsv[1:]] == [
        "", "careful", "quick", "careful", "careful",
    ]  # fmt: skip
    records = json.loads(cli(capsys, "results", "--json"))
    assert [r["arm"] for r in records] == [None, "careful", "quick", "careful", "careful"]


def write_generation(repo: Path, number: int, winner: str, forced: bool) -> None:
    folder = RepoPaths(repo).program("prog").dir / "generations"
    folder.mkdir(exist_ok=True)
    g = Generation(
        number=number,
        created_at=1_800_000_000.0 + number,
        source=Source(kind="program", name="prog", runs=["prog/20260101-120000"]),
        winner=winner,
        significant=not forced,
        forced=forced,
        reason=f"{winner} earns more keeps per dollar (p = 0.01 < 0.05)",
        next_ids=[winner, "quick"],
    )
    write_atomic(folder / f"2027011{number}T000000.000000Z-0000000{number}.json", codec.encode(g))


def test_report_shows_arms_and_generations(repo: Path, capsys: Capsys) -> None:
    armed_run(repo)
    write_generation(repo, 1, "careful", forced=False)
    write_generation(repo, 2, "quick", forced=True)
    (RepoPaths(repo).program("prog").dir / "generations" / "2027019-broken.json").write_text("{")
    md = cli(capsys, "report")
    assert "| # | status | arm | metric |" in md
    assert "| 1 | keep | careful | 9 |" in md and "| 2 | crash | quick | — |" in md
    arms = md[md.index("## Arms") : md.index("## Generations")]
    assert "| careful | 3 | 2 | 67% | +7.5% | $0.30 | 10s | 75% | — |" in arms
    assert "| quick | 1 | 0 | 0% | +0.0% | $0.05 | 4s | 25% | quota |" in arms
    gens = md[md.index("## Generations") : md.index("## Results")].splitlines()
    first = next(i for i, line in enumerate(gens) if line.startswith("- Generation 1"))
    assert "promoted careful (on the evidence) — careful earns more keeps" in gens[first]
    assert gens[first + 1].strip() == "next: careful, quick; ranked from prog/20260101-120000"
    assert any("Generation 2" in line and "(chosen with --winner)" in line for line in gens)
    assert any(line.startswith("- unreadable: ") and "broken" in line for line in gens)
    html = cli(capsys, "report", "--format", "html")
    assert '<table class="arms">' in html and "<th>arm</th>" in html
    assert '<ul class="generations">' in html and "promoted quick (chosen with --winner)" in html


def test_a_run_without_arms_reads_as_before(repo: Path, capsys: Capsys) -> None:
    run = make_run(repo, phase="complete")
    run.add_results(result(0, "baseline", 10.0), result(1, "keep", 9.0))
    assert "ARM" not in cli(capsys, "status")
    assert cli(capsys, "results").splitlines()[0].split()[:3] == ["#", "STATUS", "METRIC"]
    assert cli(capsys, "results", "--tsv").splitlines()[0].split("\t")[-1] == "reason"
    md = cli(capsys, "report")
    assert "## Arms" not in md and "## Generations" not in md and "| arm |" not in md
