"""Real runs: a new run hears about the program's earlier runs; `[loop] notify` at the end."""

from __future__ import annotations

import json
from pathlib import Path

from shared import codec
from shared.paths import RepoPaths
from shared.schema import RunManifest
from tests.repos import make_repo, start, wait_finished, wait_for


def test_a_new_run_hears_about_the_previous_one_unless_fresh(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=2)
    first = start(repo)
    assert wait_finished(first).termination_reason == "max_experiments"
    first_id = f"p/{first.dir.name}"
    assert "Previous runs" not in first.prompt(1).read_text()

    second = start(repo)
    wait_finished(second)
    packet = second.prompt(1).read_text()
    assert "## Previous runs of this program" in packet
    assert f"run {first_id}: 2 experiments, 2 kept, best 2 vs baseline 4" in packet
    assert "ended max_experiments" in packet and "kept 2: x from 1 to 2" in packet
    manifest = codec.read(second.run_json, RunManifest)
    assert first_id in manifest.carry_forward and len(manifest.carry_forward) <= 1500

    third = start(repo, "p", "--fresh")
    wait_finished(third)
    assert codec.read(third.run_json, RunManifest).carry_forward == ""
    assert first_id not in third.prompt(1).read_text()


def test_notify_runs_when_the_run_ends(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=2)
    out = tmp_path / "notified.txt"
    prog = RepoPaths(repo).program("p")
    prog.toml.write_text(
        prog.toml.read_text().replace(
            "[loop]\n", f"[loop]\nnotify = {json.dumps(f'env | grep EXPD_ > {out}')}\n"
        )
    )
    paths = start(repo)
    wait_finished(paths)
    wait_for(lambda: out.exists() and "EXPD_REASON" in out.read_text(), 30, "the notification")
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["EXPD_RUN_ID"] == f"p/{paths.dir.name}"
    assert env["EXPD_REASON"] == "max_experiments"
    assert env["EXPD_BASELINE"] == "4" and env["EXPD_BEST"] == "2"
    assert env["EXPD_IMPROVEMENT_PCT"] == "50"
    assert env["EXPD_RUN_DIR"] == str(paths.dir)


def test_a_failing_notify_is_logged_not_fatal(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    prog = RepoPaths(repo).program("p")
    prog.toml.write_text(
        prog.toml.read_text().replace("[loop]\n", '[loop]\nnotify = "echo oops >&2; exit 7"\n')
    )
    paths = start(repo)
    assert wait_finished(paths).termination_reason == "max_experiments"
    wait_for(lambda: "notify_failed" in paths.events.read_text(), 30, "the failure event")
    assert "notify command exited 7: oops" in paths.daemon_log.read_text()
