"""The headless CLI against hand-built run directories: status, results, logs, list, init,
control requests, error handling, and start/resume/demo with a stand-in daemon."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import codec, runs
from shared.cli import control as cli_control
from shared.cli.follow import CLEAR, follow_progress, watch_screen
from shared.cli.main import main
from shared.paths import RunPaths
from shared.schema import ControlFile, RunState
from tests.fake_runs import FakeRun, git_repo, in_flight, make_run, result
from tests.repos import expd

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def fake(repo: Path) -> Iterator[Callable[..., FakeRun]]:
    """Build runs in `repo`; live ones release their lock at teardown."""
    made: list[FakeRun] = []

    def build(*args: Any, **kwargs: Any) -> FakeRun:
        run = make_run(repo, *args, **kwargs)
        made.append(run)
        return run

    yield build
    for run in made:
        run.die()


def run_cli(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys: Capsys, *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run_cli(capsys, "status", "--json", *argv)
    return code, json.loads(out)


# --------------------------------------------------------------------------- status

STATUS_KEYS = [
    "run_id",
    "program",
    "phase",
    "daemon",
    "pid",
    "experiment",
    "max_experiments",
    "keeps",
    "discards",
    "crashes",
    "baseline",
    "best",
    "best_experiment",
    "improvement_pct",
    "direction",
    "metric",
    "termination_reason",
    "cost_usd",
    "tokens",
    "started_at",
    "updated_at",
    "worktree",
    "branch",
    "detail",
    "message",
    "measurement_failures",
    "run_dir",
]


def test_status_json_running(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(
        live=True, experiment=3, max_experiments=10, keeps=1, discards=1, crashes=0,
        baseline=100.0, best=80.0, best_experiment=2, cost_usd=0.5, tokens=1234,
        in_flight=in_flight(3),
    )  # fmt: skip
    code, s = status_json(capsys)
    assert code == 0
    assert set(STATUS_KEYS) <= set(s)
    assert s["run_id"] == run.run_id and s["program"] == "prog"
    assert s["daemon"] == "running" and s["pid"] == os.getpid()
    assert (s["experiment"], s["max_experiments"], s["keeps"], s["discards"]) == (3, 10, 1, 1)
    assert s["improvement_pct"] == pytest.approx(20.0)
    assert s["branch"] == "expd/prog/20260101-120000"
    assert s["worktree"].endswith(".expd/worktrees/prog-20260101-120000")
    assert s["in_flight"]["experiment"] == 3
    assert s["run_dir"] == str(run.paths.dir)


@pytest.mark.parametrize(
    ("direction", "baseline", "best", "expected"),
    [
        ("lower", 100.0, 80.0, 20.0),
        ("lower", 100.0, 120.0, -20.0),
        ("higher", 0.5, 0.6, 20.0),
        ("higher", -2.0, -1.0, 50.0),
        ("lower", 0.0, -1.0, None),
        ("lower", None, None, None),
    ],
)
def test_improvement_sign(
    fake: Callable[..., FakeRun],
    capsys: Capsys,
    direction: str,
    baseline: float | None,
    best: float | None,
    expected: float | None,
) -> None:
    fake(direction=direction, baseline=baseline, best=best)
    _, s = status_json(capsys)
    assert s["improvement_pct"] == (None if expected is None else pytest.approx(expected))


def test_status_hung_exit_4(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    fake(live=True, heartbeat_age=600)
    code, s = status_json(capsys)
    assert (code, s["daemon"]) == (4, "hung")
    code, out, _ = run_cli(capsys, "status")
    assert code == 4 and "UNRESPONSIVE" in out


def test_status_finished_exit_3(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    fake(phase="complete", termination_reason="max_experiments")
    code, s = status_json(capsys)
    assert (code, s["daemon"], s["termination_reason"]) == (3, "finished", "max_experiments")
    code, out, _ = run_cli(capsys, "status")
    assert code == 3 and "finished (complete, max_experiments)" in out


def test_status_dead_says_how_to_resume(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(phase="measuring")
    code, s = status_json(capsys)
    assert (code, s["daemon"], s["phase"]) == (3, "dead", "measuring")
    code, out, _ = run_cli(capsys, "status")
    assert code == 3
    assert f"daemon is dead — resume with: expd resume {run.run_id}" in out


def test_status_starting_before_state_exists(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True)
    run.paths.state_json.unlink()
    code, s = status_json(capsys)
    assert (code, s["daemon"], s["phase"], s["max_experiments"]) == (0, "starting", "starting", 20)


def test_status_does_not_read_results(
    fake: Callable[..., FakeRun], capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = fake(live=True)
    run.add_results(result(0, "baseline", 1.0))
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        assert self.name != "results.jsonl", "status must not read results.jsonl"
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    monkeypatch.setattr(Path, "read_bytes", lambda self: guarded(self, "rb").read())
    assert status_json(capsys)[0] == 0


@pytest.mark.parametrize("content", [b"{not json", b'{"phase": 12}', b""])
def test_corrupt_state_is_one_line_exit_1(
    fake: Callable[..., FakeRun], capsys: Capsys, content: bytes
) -> None:
    run = fake()
    run.paths.state_json.write_bytes(content)
    code, out, err = run_cli(capsys, "status", "--json")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("expd: error: ") and str(run.paths.state_json) in err


def test_status_by_prefix_and_unknown(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    fake(stamp="20260101-120000", phase="complete")
    fake(stamp="20260102-120000", phase="complete")
    _, s = status_json(capsys, "20260101")
    assert s["run_id"] == "prog/20260101-120000"
    code, _, err = run_cli(capsys, "status", "nope")
    assert code == 1 and "no run matching 'nope'" in err
    code, _, err = run_cli(capsys, "status", "prog/2026")
    assert code == 1 and "ambiguous" in err and "prog/20260102-120000" in err


def test_status_all(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo_a = git_repo(tmp_path / "a")
    repo_b = git_repo(tmp_path / "b")
    live = make_run(repo_a, "fast", live=True)
    dead = make_run(repo_b, "slow", phase="idle")
    done = make_run(repo_b, "slow", "20260105-000000", phase="complete")
    vanished = make_run(repo_b, "slow", "20260106-000000", live=False)
    try:
        for run in (live, dead, done, vanished):
            runs.register(run.paths, run.repo, run.run_id)
        for f in vanished.paths.dir.iterdir():
            f.unlink()
        vanished.paths.dir.rmdir()
        elsewhere = tmp_path / "not-a-repo"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        code, out, _ = run_cli(capsys, "status", "--all", "--json")
        assert code == 0
        got = {s["run_id"]: s for s in json.loads(out)}
        assert set(got) == {live.run_id, dead.run_id}
        assert got[live.run_id]["daemon"] == "running" and got[dead.run_id]["daemon"] == "dead"
        assert got[dead.run_id]["repo"] == str(repo_b)
        code, out, _ = run_cli(capsys, "status", "--all")
        assert code == 0 and live.run_id in out and str(repo_b) in out
    finally:
        live.die()


def test_status_all_empty_index(capsys: Capsys) -> None:
    assert run_cli(capsys, "status", "--all", "--json")[:2] == (0, "[]\n")
    assert run_cli(capsys, "status", "--all")[:2] == (0, "no active runs\n")


def test_status_watch_plain_text_until_finished(
    fake: Callable[..., FakeRun], capsys: Capsys
) -> None:
    run = fake(phase="complete", termination_reason="stagnation", baseline=10.0, best=9.0)
    run.add_results(result(0, "baseline", 10.0), result(1, "keep", 9.0))
    code, out, _ = run_cli(capsys, "status", "--watch")
    assert code == 3
    assert "complete" in out and "#1 keep" not in out  # only results that arrive while watching


def test_status_watch_prints_new_results(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True, baseline=10.0)
    run.add_results(result(0, "baseline", 10.0))

    def daemon() -> None:
        time.sleep(0.3)
        run.add_results(result(1, "keep", 9.0, "tune: level=6"))
        run.write_state(phase="complete", termination_reason="max_experiments", baseline=10.0)
        run.die()

    thread = threading.Thread(target=daemon)
    thread.start()
    code, out, _ = run_cli(capsys, "status", "--watch")
    thread.join()
    assert code == 3
    assert "#1   keep     9 (-10.0%)  tune: level=6" in out
    assert "#0 baseline" not in out


def test_follow_on_a_terminal_redraws_the_phase_line(fake: Callable[..., FakeRun]) -> None:
    run = fake(live=True, baseline=10.0)

    def daemon() -> None:
        time.sleep(0.2)
        run.add_results(result(1, "discard", 11.0, "worse"))
        run.write_state(
            phase="complete", termination_reason="max_experiments", experiment=1, baseline=10.0
        )
        run.die()

    thread = threading.Thread(target=daemon)
    thread.start()
    out = io.StringIO()
    final = follow_progress(runs.resolve(None), out, interval=0.05, transient=True)
    thread.join()
    text = out.getvalue()
    assert final.phase == "complete" and text.endswith("complete  experiment 1/20\n")
    assert "\r\x1b[K#1   discard  11 (+10.0%)  worse\n" in text
    assert text.count("\n") == 2  # only the result and the final phase stay on screen


def test_follow_gives_a_new_run_time_to_start(fake: Callable[..., FakeRun]) -> None:
    run = fake()
    run.paths.state_json.unlink()
    clock = iter([0.0, 1.0, 100.0]).__next__
    out = io.StringIO()
    final = follow_progress(runs.resolve(None), out, sleep=lambda _: None, clock=clock)
    assert final.daemon == "dead"
    assert out.getvalue().count("starting  experiment 0/20") == 1
    assert f"daemon is dead — resume with: expd resume {run.run_id}" in out.getvalue()


def test_watch_screen_shows_status_and_recent_results(fake: Callable[..., FakeRun]) -> None:
    run = fake(phase="complete", termination_reason="max_experiments", baseline=10.0)
    run.add_results(*(result(n, "discard", 11.0) for n in range(1, 15)))
    out = io.StringIO()
    final = watch_screen(runs.resolve(None), out, recent=5)
    text = out.getvalue()
    assert final.daemon == "finished" and text.startswith(CLEAR)
    assert "finished (complete, max_experiments)" in text and "Ctrl-C" not in text
    rows = [line.split()[0] for line in text.split("#  ")[1].splitlines()[1:] if line]
    assert rows == ["10", "11", "12", "13", "14"]


def test_hung_status_says_what_to_do(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True, heartbeat_age=120)
    _, out, _ = run_cli(capsys, "status")
    assert f"daemon is unresponsive — see {run.paths.dir}/daemon.log; kill {os.getpid()}" in out


# --------------------------------------------------------------------------- results


@pytest.fixture
def with_results(fake: Callable[..., FakeRun]) -> FakeRun:
    run = fake(phase="complete", baseline=200.0, best=150.0)
    run.add_results(
        result(0, "baseline", 200.0, "baseline"),
        result(1, "keep", 150.0, "tune:\tlevel=6"),
        result(2, "discard", 210.0),
        result(3, "crash", None),
    )
    with run.paths.results.open("ab") as f:
        f.write(b'{"experiment": 4, "status": "ke')  # torn last line: never shown
    return run


RESULT_KEYS = [
    "experiment",
    "status",
    "commit",
    "metric",
    "samples",
    "description",
    "diff",
    "agent_s",
    "measure_s",
    "cost_usd",
    "tokens",
    "started_at",
    "reason",
    "evidence",
]


def test_results_json(with_results: FakeRun, capsys: Capsys) -> None:
    code, out, _ = run_cli(capsys, "results", "--json")
    items = json.loads(out)
    assert code == 0 and [i["experiment"] for i in items] == [0, 1, 2, 3]
    assert set(RESULT_KEYS) <= set(items[1])
    assert items[1]["diff"] == {"files": ["f.py"], "added": 1, "removed": 1}
    assert items[1]["samples"] == [150.0, 150.0] and items[3]["metric"] is None


def test_results_limit(with_results: FakeRun, capsys: Capsys) -> None:
    _, out, _ = run_cli(capsys, "results", "--json", "--limit", "2")
    assert [i["experiment"] for i in json.loads(out)] == [2, 3]
    _, out, _ = run_cli(capsys, "results", "--json", "--limit", "0")
    assert json.loads(out) == []
    code, _, err = run_cli(capsys, "results", "--limit", "-1")
    assert code == 1 and "whole number" in err


def test_results_tsv(with_results: FakeRun, capsys: Capsys) -> None:
    _, out, _ = run_cli(capsys, "results", "--tsv")
    lines = out.splitlines()
    assert lines[0].split("\t")[:4] == ["experiment", "status", "metric", "delta_pct"]
    assert len(lines) == 5 and all(len(line.split("\t")) == 12 for line in lines)
    row = lines[2].split("\t")
    assert row[:4] == ["1", "keep", "150.0", "-25.0"] and row[10] == "tune: level=6"


def test_results_table_and_limit_keeps_baseline(with_results: FakeRun, capsys: Capsys) -> None:
    _, out, _ = run_cli(capsys, "results")
    assert out.splitlines()[0].split() == ["#", "STATUS", "METRIC", "Δ%", "DESCRIPTION", "REASON"]
    assert "-25.0%" in out and "+5.0%" in out and "reason 2" in out
    _, out, _ = run_cli(capsys, "results", "--limit", "1")
    assert "crash" in out and "keep" not in out
    _, out, _ = run_cli(capsys, "results", "--limit", "1", "--tsv")
    assert "baseline" not in out


def test_an_agents_control_characters_never_reach_the_terminal(
    fake: Callable[..., FakeRun], capsys: Capsys
) -> None:
    """A description (the agent's text) with an escape sequence that would redraw its row as a
    keep is shown with the sequence's visible rest, the row as recorded."""
    run = fake(phase="complete", baseline=200.0, best=200.0)
    forged = "x up\x1b[2K\x1b[1G1 keep\x9b2K\x07"
    run.add_results(result(0, "baseline", 200.0, "baseline"), result(1, "discard", 210.0, forged))
    for args in (("results",), ("results", "--tsv"), ("report",)):
        _, out, _ = run_cli(capsys, *args)
        assert not any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in out)
        assert "x up [2K [1G" in out, args  # the table may cut the rest to its width
    _, out, _ = run_cli(capsys, "results", "--json")
    assert forged in json.loads(out)[1]["description"]  # the record itself is as written


def test_results_exclusive_formats_and_empty(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    fake()
    code, _, err = run_cli(capsys, "results", "--json", "--tsv")
    assert code == 1 and "not allowed with" in err
    assert run_cli(capsys, "results")[:2] == (0, "no results yet\n")
    assert run_cli(capsys, "results", "--json")[:2] == (0, "[]\n")


def test_results_skips_a_bad_line(with_results: FakeRun, capsys: Capsys) -> None:
    with with_results.paths.results.open("ab") as f:
        f.write(b"\ngarbage\n")
    code, out, err = run_cli(capsys, "results", "--json")
    assert code == 0 and len(json.loads(out)) == 4 and "skipped 2 unreadable" in err


# --------------------------------------------------------------------------- logs


def test_logs(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(experiment=2, in_flight=in_flight(2))
    code, _, err = run_cli(capsys, "logs")
    assert code == 1 and "no logs yet" in err
    run.paths.daemon_log.write_text("daemon says hi\n")
    assert run_cli(capsys, "logs")[:2] == (0, "daemon says hi\n")
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(1).write_text("first\n")
    assert run_cli(capsys, "logs")[1] == "first\n"  # no log for #2 yet: the newest one
    run.paths.agent_log(2).write_bytes("second é\n".encode())
    assert run_cli(capsys, "logs")[1] == "second é\n"
    assert run_cli(capsys, "logs", "--experiment", "1")[1] == "first\n"
    code, _, err = run_cli(capsys, "logs", "--experiment", "7")
    assert code == 1 and "no agent log for experiment 7" in err


def test_logs_follow_ends_with_the_run(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True, experiment=1, in_flight=in_flight(1))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(1).write_text("one\n")

    def daemon() -> None:
        time.sleep(0.3)
        with run.paths.agent_log(1).open("a") as f:
            f.write("more\n")
        time.sleep(0.6)
        run.paths.agent_log(2).write_text("two\n")
        run.write_state(experiment=2, in_flight=in_flight(2))
        time.sleep(0.6)
        run.write_state(phase="complete", experiment=2)
        run.die()

    thread = threading.Thread(target=daemon)
    thread.start()
    code, out, _ = run_cli(capsys, "logs", "--follow")
    thread.join()
    assert code == 0
    assert out == f"one\nmore\n\n--- experiment 2 ({run.paths.agent_log(2)}) ---\ntwo\n"


def test_logs_follow_of_a_finished_experiment_returns(
    fake: Callable[..., FakeRun], capsys: Capsys
) -> None:
    run = fake(live=True, experiment=2, in_flight=in_flight(2))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(1).write_text("done\n")
    assert run_cli(capsys, "logs", "--follow", "--experiment", "1")[:2] == (0, "done\n")


# --------------------------------------------------------------------------- list and home


def test_list(fake: Callable[..., FakeRun], repo: Path, capsys: Capsys) -> None:
    fake(phase="complete", experiment=20, baseline=10.0, best=8.0)
    fake("other", live=True, experiment=2)
    (repo / ".expd/programs/broken").mkdir()
    (repo / ".expd/programs/broken/program.toml").write_text("metrc = 'x'\n")
    code, out, _ = run_cli(capsys, "list", "--json")
    programs = {p["program"]: p for p in json.loads(out)}
    assert code == 0 and set(programs) == {"prog", "other", "broken"}
    assert programs["prog"]["metric"] == "score" and programs["prog"]["direction"] == "lower"
    assert programs["prog"]["runs"][0]["improvement_pct"] == pytest.approx(20.0)
    assert programs["other"]["runs"][0]["daemon"] == "running"
    assert "unknown key 'metrc'" in programs["broken"]["error"]
    code, out, _ = run_cli(capsys, "list")
    assert "prog/20260101-120000  complete" in out and "20.0% better" in out
    assert "no runs — start one with: expd start broken" in out
    assert run_cli(capsys)[1] == out  # `expd` alone in a repository with programs


def test_list_empty_and_home_outside(repo: Path, tmp_path: Path, capsys: Capsys,
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and out.startswith("no programs in")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys)
    assert code == 0 and out.startswith("usage: expd")
    code, _, err = run_cli(capsys, "list")
    assert code == 1 and "not inside a git repository" in err


# --------------------------------------------------------------------------- init


def test_init_scaffolds_a_program(repo: Path, capsys: Capsys) -> None:
    code, out, _ = run_cli(
        capsys, "init", "speed", "--measure", "python bench.py", "--metric", "ms",
        "--direction", "lower", "--agent", "tune",
    )  # fmt: skip
    prog = repo / ".expd/programs/speed"
    assert code == 0 and "expd start speed" in out
    assert (prog / "program.toml").exists() and (prog / "program.md").exists()
    assert "python bench.py" in (prog / "measure.sh").read_text()
    assert ".expd" in (repo / ".git/info/exclude").read_text()
    code, _, err = run_cli(capsys, "init", "speed", "--metric", "ms", "--direction", "lower")
    assert code == 1 and "already exists" in err


def test_init_errors(repo: Path, tmp_path: Path, capsys: Capsys,
                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code, _, err = run_cli(capsys, "init", "x", "--measure", "true")
    assert code == 1 and "--metric" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "init", "x", "--metric", "m", "--direction", "sideways")
    assert code == 1 and "invalid choice" in err
    code, _, err = run_cli(capsys, "init", "bad name", "--metric", "m", "--direction", "lower")
    assert code == 1 and "invalid program name" in err
    for name in ("a..b", "x.lock", "x."):  # git cannot use them in the run's branch name
        code, _, err = run_cli(capsys, "init", name, "--metric", "m", "--direction", "lower")
        assert code == 1 and "invalid program name" in err, name
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "init", "x", "--metric", "m", "--direction", "lower")
    assert code == 1 and "not inside a git repository" in err


# --------------------------------------------------------------------------- control


def requests(paths: RunPaths) -> list[dict[str, Any]]:
    return codec.to_builtins(codec.read(paths.control, ControlFile))["requests"]


def test_stop_abort_set_write_requests(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True)
    code, out, _ = run_cli(capsys, "stop", "--json")
    assert code == 0
    stop_id = json.loads(out)["request_id"]
    assert run_cli(capsys, "abort")[0] == 0
    assert run_cli(capsys, "set", "max-experiments", "5")[0] == 0
    assert run_cli(capsys, "set", "prog/2026", "guidance", "try", "smaller", "chunks")[0] == 0
    got = requests(run.paths)
    assert [(r["action"], r["key"], r["value"]) for r in got] == [
        ("stop", None, None),
        ("abort", None, None),
        ("set", "max_experiments", 5),
        ("set", "guidance", "try smaller chunks"),
    ]
    assert got[0]["id"] == stop_id and len({r["id"] for r in got}) == 4
    assert all(r["source"] == "cli" for r in got)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["max-experiments", "-2"], "whole number ≥ 0"),
        (["max-experiments", "x"], "whole number ≥ 0"),
        (["max-experiments"], "takes one number"),
        (["guidance"], "guidance needs TEXT"),
        (["speed", "11"], "usage: expd set"),
    ],
)
def test_set_validation(
    fake: Callable[..., FakeRun], capsys: Capsys, argv: list[str], message: str
) -> None:
    run = fake(live=True)
    code, _, err = run_cli(capsys, "set", *argv)
    assert code == 1 and message in err
    assert not run.paths.control.exists()


@pytest.mark.parametrize("command", [["stop"], ["abort"], ["set", "max-experiments", "3"]])
@pytest.mark.parametrize("phase", ["idle", "complete"])
def test_control_refuses_a_run_that_is_not_running(
    fake: Callable[..., FakeRun], capsys: Capsys, command: list[str], phase: str
) -> None:
    run = fake(phase=phase)
    code, _, err = run_cli(capsys, *command)
    assert code == 1 and "is not running" in err
    if phase == "idle":
        assert f"expd resume {run.run_id}" in err
    assert not run.paths.control.exists()


def ack_later(run: FakeRun, *, finish: bool, delay: float = 0.3) -> threading.Thread:
    """A stand-in daemon: acknowledges every pending request, then optionally exits."""

    def work() -> None:
        time.sleep(delay)
        pending = [r.id for r in codec.read(run.paths.control, ControlFile).requests]
        state = codec.read(run.paths.state_json, RunState)
        run.write_state(
            acked=pending,
            phase="complete" if finish else state.phase,
            termination_reason="stopped" if finish else None,
        )
        if finish:
            run.die()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_stop_wait_returns_when_the_daemon_is_gone(
    fake: Callable[..., FakeRun], capsys: Capsys
) -> None:
    run = fake(live=True)
    thread = ack_later(run, finish=True)
    code, out, _ = run_cli(capsys, "stop", "--wait")
    thread.join()
    assert code == 0 and "is complete (stopped)" in out


def test_set_wait_for_ack(fake: Callable[..., FakeRun], capsys: Capsys) -> None:
    run = fake(live=True)
    thread = ack_later(run, finish=False)
    code, out, _ = run_cli(capsys, "set", "--wait", "max-experiments", "7")
    thread.join()
    assert code == 0 and "\nacknowledged" in out


def test_abort_wait_gives_up(
    fake: Callable[..., FakeRun], capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(live=True)
    monkeypatch.setattr(cli_control, "ABORT_WAIT_S", 0.3)
    code, _, err = run_cli(capsys, "abort", "--wait")
    assert code == 1 and "did not acknowledge" in err and "kill -9" in err


# --------------------------------------------------------------------------- errors


def test_internal_error_is_one_line(
    fake: Callable[..., FakeRun], capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr("shared.cli.read.build_status", boom)
    monkeypatch.delenv("EXPD_DEBUG", raising=False)
    code, out, err = run_cli(capsys, "status")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("expd: internal error: RuntimeError: kaboom second line")
    monkeypatch.setenv("EXPD_DEBUG", "1")
    code, _, err = run_cli(capsys, "status")
    assert code == 2 and "Traceback" in err


def test_version_and_usage_errors(capsys: Capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("expd ")
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 1 and err.startswith("expd: error: argument COMMAND: invalid choice")


# --------------------------------------------------------------------------- launching (stand-in daemon)


def fake_daemon(monkeypatch: pytest.MonkeyPatch, finish: Callable[[FakeRun], None]) -> list[Any]:
    """Replace daemon.commands.spawn/daemon.commands.demo: start_run builds a run directory and calls `finish`."""
    calls: list[Any] = []

    class Started:
        def __init__(self, run: FakeRun) -> None:
            self.run_id, self.pid, self.run_dir = run.run_id, 4242, run.paths.dir
            self.worktree, self.branch = run.repo / "wt", f"expd/{run.run_id}"
            self.sandbox, self.sandbox_detail, self.noise = "bwrap", "", ""

    def start_run(repo_root: Path, program: str, **kwargs: Any) -> Started:
        calls.append((repo_root, program, kwargs))
        run = make_run(Path(repo_root), program, "20260301-000000", phase="starting")
        finish(run)
        return Started(run)

    def resume_run(run_dir: Path) -> Started:
        calls.append(run_dir)
        ref = runs.ref_for_dir(run_dir)
        run = FakeRun(Path(), ref.program, ref.stamp, ref.paths)
        return Started(run)

    def write_demo_repo(directory: Path) -> str:
        git_repo(directory)
        return "demo"

    spawn = types.ModuleType("daemon.commands.spawn")
    spawn.start_run = start_run  # type: ignore[attr-defined]
    spawn.resume_run = resume_run  # type: ignore[attr-defined]
    demo = types.ModuleType("daemon.commands.demo")
    demo.write_demo_repo = write_demo_repo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "daemon.commands.spawn", spawn)
    monkeypatch.setitem(sys.modules, "daemon.commands.demo", demo)
    return calls


def completed(run: FakeRun, reason: str = "max_experiments") -> None:
    run.add_results(result(0, "baseline", 100.0), result(1, "keep", 80.0, "tune: level=6"))
    run.write_state(
        phase="complete", termination_reason=reason, experiment=1, keeps=1,
        baseline=100.0, best=80.0, best_experiment=1, updated_at=time.time(),
    )  # fmt: skip


def test_start_json(fake: Callable[..., FakeRun], capsys: Capsys,
                    monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:  # fmt: skip
    fake()  # creates the program
    calls = fake_daemon(monkeypatch, completed)
    code, out, _ = run_cli(capsys, "start", "prog", "--json", "--max-experiments", "4")
    assert code == 0
    assert json.loads(out) == {
        "run_id": "prog/20260301-000000",
        "pid": 4242,
        "worktree": str(repo / "wt"),
        "branch": "expd/prog/20260301-000000",
        "sandbox": "bwrap",
    }
    assert calls == [
        (repo, "prog", {"max_experiments": 4, "agent": None, "model": None, "fresh": False})
    ]
    code, _, err = run_cli(capsys, "start", "nope")
    assert code == 1 and "no program 'nope'" in err


def test_start_attach_follows_to_the_end(fake: Callable[..., FakeRun], capsys: Capsys,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    fake()
    fake_daemon(monkeypatch, completed)
    code, out, _ = run_cli(capsys, "start", "prog", "--attach")
    assert code == 0
    assert "started run prog/20260301-000000 (pid 4242)" in out
    assert "#1   keep     80 (-20.0%)  tune: level=6" in out
    assert "baseline 100 → best 80 at #1 (20.0% better)" in out


def test_resume_refuses_a_live_run(fake: Callable[..., FakeRun], capsys: Capsys,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    live = fake(live=True)
    dead = fake(stamp="20260101-000000", phase="measuring")
    calls = fake_daemon(monkeypatch, completed)
    code, _, err = run_cli(capsys, "resume", live.run_id)
    assert code == 1 and "already running" in err
    code, out, _ = run_cli(capsys, "resume", dead.run_id)
    assert code == 0 and out.startswith(f"resumed run {dead.run_id} (pid 4242)")
    assert calls == [dead.paths.dir.resolve()]


@pytest.mark.parametrize(("reason", "code"), [("max_experiments", 0), ("error", 1)])
def test_demo(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch,
              reason: str, code: int) -> None:  # fmt: skip
    fake_daemon(monkeypatch, lambda run: completed(run, reason))
    directory = tmp_path / "demo-here"
    got, out, err = run_cli(capsys, "demo", "--dir", str(directory))
    assert got == code
    assert "#0   baseline 100  change 0" in out and "#1   keep     80 (-20.0%)" in out
    assert f"cd {directory} && expd results" in out
    assert "keeps 1" in out
    if code:
        assert "ended complete (error)" in err


# --------------------------------------------------------------------------- real interpreter


def test_subprocess_exit_codes(fake: Callable[..., FakeRun], repo: Path) -> None:
    run = fake(live=True)
    proc = expd("status", "--json", cwd=repo)
    assert proc.returncode == 0 and json.loads(proc.stdout)["daemon"] == "running"
    run.die()
    proc = expd("status", cwd=repo)
    assert proc.returncode == 3 and "daemon is dead" in proc.stdout and proc.stderr == ""
    run.paths.state_json.write_text("{")
    proc = expd("status", cwd=repo)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
