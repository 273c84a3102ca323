"""`expd status`, `status --all`, `status --watch`, `list` and `attach` on bakeoff runs built from
the contract's structs (no daemon: a held lock and a heartbeat make one look alive)."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import codec, runs
from shared.atomic import write_atomic
from shared.bakeoffs.config import scaffold
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import BakeoffState, RunningAttempt
from shared.cli import bakeoff_render
from shared.cli.main import main
from shared.cli.tui import NEEDS_TERMINAL
from shared.locking import try_lock, unlock
from shared.schema import DaemonInfo
from tests import bakeoff_fakes as bf
from tests.fake_runs import git_repo, make_run
from tests.repos import expd
from tests.test_import_hygiene import run_probe

Capsys = pytest.CaptureFixture[str]
RUN_ID = f"bk/{bf.STAMP}"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def locks() -> Iterator[list[int]]:
    held: list[int] = []
    yield held
    for fd in held:
        unlock(fd)


def half_done(repo: Path, **kwargs: Any) -> BakeoffRunPaths:
    """3 tasks × variants a, b: a passed, errored and is running; b failed."""
    paths = bf.make_run(repo, bf.spec(3, ("a", "b")), **kwargs)
    bf.append(
        paths,
        bf.record("t000", "a", "passed", cost=0.25, duration=10.0),
        bf.record("t001", "a", "error", error="boom", cost=0.05, duration=4.0),
        bf.record("t000", "b", "failed", cost=0.10, duration=6.0),
    )
    return paths


def set_state(paths: BakeoffRunPaths, **fields: Any) -> None:
    base: dict[str, Any] = {"run_id": RUN_ID, "name": "bk", "phase": "running", "total": 6}
    state = BakeoffState(**{**base, **fields})
    write_atomic(paths.state_json, codec.encode(state), durable=False)


def go_live(paths: BakeoffRunPaths, locks: list[int], heartbeat_age: float = 0.0) -> None:
    """Hold daemon.lock (once) and write a heartbeat `heartbeat_age` seconds old."""
    if not locks:
        fd = try_lock(paths.daemon_lock)
        assert fd is not None
        locks.append(fd)
    now = time.time()
    info = DaemonInfo(pid=os.getpid(), started_at=now - 60, heartbeat_at=now - heartbeat_age)
    write_atomic(paths.daemon_json, codec.encode(info), durable=False)


def cli(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- status


def test_status_json_is_the_bakeoff_status(repo: Path, capsys: Capsys) -> None:
    half_done(repo)
    code, out, _ = cli(capsys, "status", "--json")
    assert code == 3  # no daemon holds the run: dead
    got = json.loads(out)
    assert got["kind"] == "bakeoff" and got["run_id"] == RUN_ID and got["daemon"] == "dead"
    assert (got["total"], got["done"], got["passed"], got["failed"], got["errors"]) == (
        6,
        3,
        1,
        1,
        1,
    )
    a, b = got["variants"]
    assert (a["variant"], a["done"], a["total"], a["passed"], a["errors"]) == ("a", 2, 3, 1, 1)
    assert a["success_rate"] == 0.5 and a["cost_usd"] == pytest.approx(0.30)
    assert a["mean_duration_s"] == pytest.approx(7.0)
    assert (b["done"], b["failed"], b["success_rate"]) == (1, 1, 0.0)


def test_status_text_has_the_header_and_the_progress_table(repo: Path, capsys: Capsys) -> None:
    paths = half_done(repo)
    running = RunningAttempt(task="t002", variant="a", started_at=time.time() - 5, stage="agent")
    set_state(paths, running=[running], cost_usd=0.4, tokens=3000, detail="2 slots busy")
    code, out, _ = cli(capsys, "status", RUN_ID)
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == f"run       {RUN_ID} (bakeoff bk)"
    assert "running — 2 slots busy   attempts 3/6, 1 running" in out
    assert "passed 1 · failed 1 · errors 1 · timeouts 0" in out
    assert "$0.40 · 3,000 tokens" in out and "t002/a/1 (agent" in out
    header = next(line for line in lines if line.startswith("VARIANT"))
    assert header.split() == [
        "VARIANT",
        "DONE",
        "RUNNING",
        "PASSED",
        "FAILED",
        "ERRORS",
        "RATE",
        "COST",
        "MEAN",
        "ETA",
    ]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split()[:9] == ["a", "2/3", "1", "1", "0", "1", "50%", "$0.30", "7s"]
    assert out.rstrip().endswith(f"daemon is dead — resume with: expd bakeoff resume {RUN_ID}")


def test_exit_codes_follow_the_daemon(repo: Path, capsys: Capsys, locks: list[int]) -> None:
    paths = half_done(repo)
    finished = bf.make_run(repo, bf.spec(1, ("a",)), stamp="20261130-090000", phase="complete")
    code, out, _ = cli(capsys, "status", "bk/20261130-090000")
    assert code == 3 and "finished (complete, finished)" in out
    assert json.loads(cli(capsys, "status", "--json", "bk/20261130-090000")[1])["daemon"] == (
        "finished"
    )
    assert finished.dir.is_dir()

    go_live(paths, locks)
    code, out, _ = cli(capsys, "status", RUN_ID)
    assert code == 0 and "running (pid" in out and "resume" not in out
    go_live(paths, locks, heartbeat_age=600)  # a heartbeat ten minutes old
    code, out, _ = cli(capsys, "status", RUN_ID)
    assert code == 4 and "UNRESPONSIVE" in out and f"expd bakeoff resume {RUN_ID}" in out


def test_status_all_includes_bakeoff_runs(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, locks: list[int]
) -> None:
    repo = git_repo(tmp_path / "repo")
    program = make_run(repo, "prog", live=True)
    dead = half_done(repo)
    done = bf.make_run(repo, bf.spec(1, ("a",)), stamp="20261130-090000", phase="complete")
    try:
        runs.register(program.paths, repo, program.run_id)
        runs.register(dead, repo, RUN_ID)
        runs.register(done, repo, "bk/20261130-090000")
        monkeypatch.chdir(tmp_path)
        code, out, _ = cli(capsys, "status", "--all", "--json")
        assert code == 0
        got = {s["run_id"]: s for s in json.loads(out)}
        assert set(got) == {program.run_id, RUN_ID}  # the finished one is not active
        assert got[RUN_ID]["kind"] == "bakeoff" and got[RUN_ID]["repo"] == str(repo)
        assert got[program.run_id]["program"] == "prog"
        code, out, _ = cli(capsys, "status", "--all")
        row = next(line for line in out.splitlines() if line.startswith(RUN_ID))
        assert row.split()[1:6] == ["dead", "running", "3/6", "1", "passed"]
        assert any(line.startswith(program.run_id) for line in out.splitlines())
    finally:
        program.die()


# --------------------------------------------------------------------------- status --watch


def test_watch_prints_the_table_on_each_change_until_the_run_ends(
    repo: Path, locks: list[int]
) -> None:
    paths = half_done(repo)
    go_live(paths, locks)
    steps = [
        lambda: bf.append(paths, bf.record("t001", "b", "passed")),
        lambda: None,  # nothing changed: nothing printed
        lambda: set_state(paths, phase="complete", termination_reason="finished"),
    ]

    def sleep(_seconds: float) -> None:
        steps.pop(0)()

    out = io.StringIO()
    ref = runs.resolve(RUN_ID)
    final = bakeoff_render.watch(ref, out, redraw=False, sleep=sleep)
    assert final.daemon == "finished" and steps == []
    text = out.getvalue()
    assert text.count("VARIANT") == 3  # the first status, the new attempt, the end
    assert "running  attempts 4/6" in text and "complete  attempts 4/6" in text
    assert "\x1b" not in text


def test_watch_redraws_on_a_terminal(repo: Path, capsys: Capsys) -> None:
    bf.make_run(repo, bf.spec(1, ("a",)), phase="complete")
    out = io.StringIO()
    bakeoff_render.watch(runs.resolve(None), out, redraw=True, sleep=lambda _s: None)
    assert out.getvalue().startswith(bakeoff_render.CLEAR) and "VARIANT" in out.getvalue()
    code, text, _ = cli(capsys, "status", "--watch")  # off a terminal: printed once, then done
    assert code == 3 and text.count("VARIANT") == 1
    code, _, err = cli(capsys, "status", "--watch", "--json")
    assert code == 1 and "--watch" in err


# --------------------------------------------------------------------------- list


def test_list_shows_bakeoffs_after_programs(repo: Path, capsys: Capsys) -> None:
    make_run(repo, "prog")
    scaffold(BakeoffPaths(repo, "bk"))
    half_done(repo)
    broken = BakeoffPaths(repo, "zz")
    broken.dir.mkdir(parents=True)
    broken.toml.write_text("attempts = 0\n")
    code, out, _ = cli(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("prog  score (lower is better)")
    start = lines.index("bakeoff bk  1 task × 2 variants (baseline, careful) · 1 attempt each")
    assert lines[start + 1].split()[:-2] == [
        RUN_ID,
        *["running", "dead", "3/6", "passed", "1", "·", "errors", "1"],
    ]
    assert lines[start + 1].split()[-1] == "KB"  # its disk use
    assert any(line.startswith("bakeoff zz  (invalid: ") for line in lines)

    code, out, _ = cli(capsys, "list", "--json")
    got = json.loads(out)
    assert [(e["kind"], e.get("program") or e.get("bakeoff")) for e in got] == [
        ("program", "prog"),
        ("bakeoff", "bk"),
        ("bakeoff", "zz"),
    ]
    bk = got[1]
    assert (bk["tasks"], bk["variants"], bk["attempts"], bk["error"]) == (
        1,
        ["baseline", "careful"],
        1,
        None,
    )
    assert [r["run_id"] for r in bk["runs"]] == [RUN_ID] and bk["runs"][0]["done"] == 3
    assert "attempts" in got[2]["error"] and got[2]["runs"] == []


def test_list_with_only_a_bakeoff(repo: Path, capsys: Capsys) -> None:
    scaffold(BakeoffPaths(repo, "bk"))
    code, out, _ = cli(capsys, "list")
    assert code == 0 and out.startswith("bakeoff bk ")
    assert "no runs — start one with: expd bakeoff start bk" in out


# --------------------------------------------------------------------------- attach, hygiene


def test_attach_refuses_off_a_terminal(repo: Path) -> None:
    half_done(repo)
    proc = expd("attach", RUN_ID, cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"expd: error: {NEEDS_TERMINAL}"


@pytest.mark.parametrize("argv", [["status"], ["status", "--json"], ["list", "--json"]])
def test_bakeoff_reads_import_nothing_heavy(repo: Path, argv: list[str]) -> None:
    half_done(repo)
    got = run_probe(repo, *argv)
    assert got["loaded"] == [], f"expd {' '.join(argv)} imported {got['loaded']}"
    assert got["code"] == (3 if argv[0] == "status" else 0), got["stderr"]
