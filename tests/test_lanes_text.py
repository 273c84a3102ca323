"""Lanes in the read commands: `expd status` prints a lanes table, `expd results` a lane column
(`lane` last in `--tsv`), and `expd report` the lane of every experiment — while a run without
lanes reads exactly as before."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from shared.cli.main import main
from shared.schema import LaneState
from tests.fake_runs import FakeRun, git_repo, make_run, result

Capsys = pytest.CaptureFixture[str]

ENDED = 1_700_007_200.0
REASON = "agent failed 3 times in a row"
OLDER = "b" * 40


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def lanes_at(t: float) -> list[LaneState]:
    return [
        LaneState(lane=2, phase="measuring", experiment=4, since=t - 12, node="bench-1"),
        LaneState(lane=1, phase="agent_running", experiment=5, since=t - 65, node="bench-1"),
        LaneState(lane=3, phase="paused", since=t - 600, node="bench-2", paused=REASON),
        LaneState(lane=4, phase="idle"),
    ]


def laned_run(
    repo: Path, *, phase: str = "complete", updated_at: float = ENDED, **fields: object
) -> FakeRun:
    """A run of four lanes: a baseline and three experiments, one replayed onto a newer incumbent."""
    run = make_run(repo, phase=phase, updated_at=updated_at, lanes=lanes_at(updated_at), **fields)
    recs = [result(0, "baseline", 10.0)]
    for n, lane in enumerate([1, 2, 1], 1):
        rec = result(n, "keep" if n != 2 else "discard", 10.0 - n)
        rec.lane = lane
        recs.append(rec)
    recs[2].made_against = OLDER
    run.add_results(*recs)
    return run


def cli(capsys: Capsys, *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def lanes_table(out: str) -> list[list[str]]:
    lines = out[out.index("LANE ") :].split("\n\n")[0].splitlines()
    return [re.split(r"\s{2,}", line) for line in lines]


def test_status_prints_a_table_of_the_lanes(repo: Path, capsys: Capsys) -> None:
    laned_run(repo)
    table = lanes_table(cli(capsys, "status"))
    assert table == [
        ["LANE", "PHASE", "EXPERIMENT", "ELAPSED", "NODE", "PAUSED"],
        ["1", "agent_running", "#5", "1m05s", "bench-1", "—"],  # stopped when the run ended
        ["2", "measuring", "#4", "12s", "bench-1", "—"],
        ["3", "paused", "—", "10m00s", "bench-2", REASON],
        ["4", "idle", "—", "—", "—", "—"],
    ]
    lanes = json.loads(cli(capsys, "status", "--json"))["lanes"]
    assert [(lane["lane"], lane["phase"], lane["experiment"]) for lane in lanes] == [
        (2, "measuring", 4),
        (1, "agent_running", 5),
        (3, "paused", None),
        (4, "idle", None),
    ]
    assert lanes[3]["since"] is None and lanes[2]["paused"] == REASON


def test_status_of_a_live_run_counts_the_time_in_each_phase(repo: Path, capsys: Capsys) -> None:
    run = laned_run(repo, phase="agent_running", updated_at=time.time())
    run.go_live()
    try:
        table = lanes_table(cli(capsys, "status"))
    finally:
        run.die()
    elapsed = {row[0]: row[3] for row in table[1:]}
    assert re.fullmatch(r"1m[0-5]\ds", elapsed["1"]) and re.fullmatch(r"\d+s", elapsed["2"])
    assert elapsed["4"] == "—"


def test_results_show_the_lane_of_every_experiment(repo: Path, capsys: Capsys) -> None:
    laned_run(repo)
    lines = cli(capsys, "results").splitlines()
    assert lines[0].split()[:4] == ["#", "STATUS", "LANE", "METRIC"]
    assert [line.split()[2] for line in lines[1:]] == ["—", "1", "2", "1"]
    tsv = [line.split("\t") for line in cli(capsys, "results", "--tsv").splitlines()]
    assert tsv[0][-2:] == ["reason", "lane"] and [row[-1] for row in tsv[1:]] == ["", "1", "2", "1"]
    records = json.loads(cli(capsys, "results", "--json"))
    assert [r["lane"] for r in records] == [None, 1, 2, 1]
    assert [r["made_against"] for r in records] == [None, None, OLDER, None]


def test_arms_and_lanes_together(repo: Path, capsys: Capsys) -> None:
    run = make_run(repo, phase="complete", lanes=lanes_at(ENDED))
    base, rec = result(0, "baseline", 10.0), result(1, "keep", 9.0)
    rec.arm, rec.lane = "careful", 2
    run.add_results(base, rec)
    lines = cli(capsys, "results").splitlines()
    assert lines[0].split()[:5] == ["#", "STATUS", "ARM", "LANE", "METRIC"]
    assert lines[2].split()[:5] == ["1", "keep", "careful", "2", "9"]
    tsv = [line.split("\t") for line in cli(capsys, "results", "--tsv").splitlines()]
    assert tsv[0][-2:] == ["arm", "lane"] and tsv[2][-2:] == ["careful", "2"]
    assert "| # | status | arm | lane | metric |" in cli(capsys, "report")


def test_report_shows_the_lane_of_every_experiment(repo: Path, capsys: Capsys) -> None:
    laned_run(repo)
    md = cli(capsys, "report")
    assert "| # | status | lane | metric |" in md
    assert "| 0 | baseline | — | 10 |" in md and "| 2 | discard | 2 | 8 |" in md
    html = cli(capsys, "report", "--format", "html")
    assert "<th>status</th><th>lane</th><th>metric</th>" in "".join(html.split("\n"))
    assert "<td>discard</td><td>2</td>" in html


def test_a_run_whose_lanes_have_decided_nothing_yet_reports_the_column(
    repo: Path, capsys: Capsys
) -> None:
    run = make_run(repo, phase="agent_running", lanes=lanes_at(ENDED))
    run.add_results(result(0, "baseline", 10.0))
    assert "| # | status | lane | metric |" in cli(capsys, "report")
    assert "LANE" in cli(capsys, "status")
    assert "LANE" not in cli(capsys, "results")  # no result names a lane yet


def test_a_run_without_lanes_reads_as_before(repo: Path, capsys: Capsys) -> None:
    run = make_run(repo, phase="complete")
    run.add_results(result(0, "baseline", 10.0), result(1, "keep", 9.0))
    assert "LANE" not in cli(capsys, "status")
    assert json.loads(cli(capsys, "status", "--json"))["lanes"] == []
    assert cli(capsys, "results").splitlines()[0].split()[:3] == ["#", "STATUS", "METRIC"]
    assert cli(capsys, "results", "--tsv").splitlines()[0].split("\t")[-1] == "reason"
    assert "| lane |" not in cli(capsys, "report")
    assert "<th>lane</th>" not in cli(capsys, "report", "--format", "html")
