"""Lanes beyond the basics, through the real daemon: several measurement slots, lanes that
keep crashing pause, and arms shared by lanes; and the batched state saves lanes run with."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from daemon.service.store import RunStore
from shared.paths import RunPaths
from shared.schema import RunState
from tests.repos import expd, results, start, state, wait_finished
from tests.test_arms_run import arm
from tests.test_lanes_run import AGENT_DISTINCT, lanes_repo, rid


def test_two_measurement_slots_record_every_experiment_once_in_decision_order(
    tmp_path: Path,
) -> None:
    repo = lanes_repo(tmp_path / "r", count=3, max_experiments=6, extra="measure_slots = 2\n")
    paths = start(repo, env={"NAP": "0.2"})
    final = wait_finished(paths, timeout=120)
    assert final.termination_reason == "max_experiments", final.message
    got = results(paths)
    assert sorted(r.experiment for r in got) == list(range(7))
    kept = [r for r in got if r.status == "keep"]
    assert kept, [(r.status, r.reason) for r in got]
    # Every keep was decided against the keep before it: the slots never decided out of turn.
    incumbent = got[0].commit
    for r in got[1:]:
        assert r.parent == incumbent, (r.experiment, r.status)
        if r.status == "keep":
            incumbent = r.commit


CRASHER = """#!/bin/bash
cat > /dev/null
echo "no luck" >&2
exit 1
"""


def test_lanes_that_keep_crashing_pause_and_the_run_ends_agent_unavailable(
    tmp_path: Path,
) -> None:
    repo = lanes_repo(tmp_path / "r", count=2, max_experiments=20, agent_sh=CRASHER)
    paths = start(repo)
    final = wait_finished(paths, timeout=120)
    assert final.termination_reason == "agent_unavailable", final.message
    crashes = [r for r in results(paths) if r.status == "crash"]
    # Three crashed turns in a row pause a lane; both lanes pause, nothing more is started.
    assert len(crashes) == 6 and {r.lane for r in crashes} == {0, 1}
    assert all(lane.paused for lane in final.lanes)
    shown = json.loads(expd("status", rid(paths), "--json", cwd=repo).stdout)
    assert all(lane["paused"] for lane in shown["lanes"])


def test_arms_are_shared_by_lanes(tmp_path: Path) -> None:
    arms = arm("a", "./agent.sh") + arm("b", "./agent.sh")
    policy = '[arms_policy]\nallocation = "round_robin"\n'
    repo = lanes_repo(
        tmp_path / "r", count=2, max_experiments=6, agent_sh=AGENT_DISTINCT, extra=policy + arms
    )
    # `[arms_policy]` and `[[arms]]` after `[lanes]`: TOML tables, so order does not matter.
    paths = start(repo, env={"NAP": "0.2"})
    final = wait_finished(paths, timeout=120)
    assert final.termination_reason == "max_experiments", final.message
    got = results(paths)[1:]
    assert {r.arm for r in got} == {"a", "b"} and {r.lane for r in got} <= {0, 1}
    stats = {s.id: s for s in final.arm_stats}
    assert sum(s.experiments for s in stats.values()) == len(got) == 6
    for s in stats.values():
        assert s.experiments == sum(1 for r in got if r.arm == s.id)
        assert s.keeps == sum(1 for r in got if r.arm == s.id and r.status == "keep")


def test_saves_are_batched_while_lanes_run_and_the_last_one_is_written(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    store = RunStore(paths, RunState())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.coalesce, 0.2)
            await anyio.sleep(0.01)
            for i in range(50):  # 50 phase changes within one window: one write
                store.state.detail = f"change {i}"
                store.save()
            assert not paths.state_json.exists()
            store.state.message = "an experiment begun"
            store.save(now=True)  # at once, with everything so far
            assert state(paths).detail == "change 49"
            assert state(paths).message == "an experiment begun"
            store.state.detail = "after"
            store.save()
            await anyio.sleep(0.5)  # the window closes: written
            assert state(paths).detail == "after"
            store.state.detail = "last"
            store.save()
            tg.cancel_scope.cancel()
        assert state(paths).detail == "last"  # what was pending is written as it ends
        store.state.detail = "plain again"
        store.save()  # no batching any more: at once
        assert state(paths).detail == "plain again"

    anyio.run(main)
