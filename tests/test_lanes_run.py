"""Lanes end to end: the real daemon with `[lanes] count` > 1 and command agents.

Each lane's agent edits its own line (`l<lane>.py`, from `$EXPD_WORKTREE`'s name), so candidates of
different lanes never conflict unless a test makes them; the measurement scores the sum of the
files' numbers (lower is better: every change is a keep unless the measurement says otherwise).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

from shared import codec
from shared.paths import RunPaths
from shared.schema import Event
from tests.repos import (
    expd,
    git,
    group_members,
    make_repo,
    processes_in,
    results,
    start,
    state,
    wait_dead,
    wait_finished,
    wait_for,
)

# Each experiment writes its own file d<N>.py (no two lanes touch the same file) after a nap.
AGENT_DISTINCT = """#!/bin/bash
cat > /dev/null
sleep ${NAP:-0.3}
if [ -n "$SLOW_FROM" ] && [ "$EXPD_EXPERIMENT" -ge "$SLOW_FROM" ]; then sleep 30; fi
echo "x = -$EXPD_EXPERIMENT" > "d$EXPD_EXPERIMENT.py"
echo "EXPD-DESCRIPTION: file $EXPD_EXPERIMENT"
"""

# Score: 20 minus the number of d*.py files (lower is better: each added file is a keep).
MEASURE_FILES = """#!/bin/bash
n=$(ls d*.py 2>/dev/null | wc -l)
${MEASURE_EXTRA:-true}
echo "{\\"score\\": $((20 - n))}"
"""

# Every experiment rewrites the same line of f.py: from the same incumbent, two conflict.
AGENT_SAME_LINE = """#!/bin/bash
cat > /dev/null
sleep ${NAP:-0.3}
echo "x = $EXPD_EXPERIMENT" > f.py
echo "EXPD-DESCRIPTION: x to $EXPD_EXPERIMENT"
"""

# Score: |x - 1| + 1 so experiment 1's change is the best; any other x is worse.
MEASURE_X = """#!/bin/bash
x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
d=$(( x > 1 ? x - 1 : 1 - x ))
echo "{\\"score\\": $((d + 1))}"
"""


def lanes_repo(
    root: Path,
    *,
    count: int = 3,
    max_experiments: int = 6,
    agent_sh: str = AGENT_DISTINCT,
    measure_sh: str = MEASURE_FILES,
    extra: str = "",
) -> Path:
    return make_repo(
        root,
        max_experiments=max_experiments,
        agent_sh=agent_sh,
        measure_sh=measure_sh,
        toml_extra=f"[lanes]\ncount = {count}\n{extra}",
    )


def events(paths: RunPaths) -> list[Event]:
    return [
        codec.decode(line, Event, source="events")
        for line in paths.events.read_bytes().splitlines()
        if line.strip()
    ]


def rid(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def test_three_lanes_overlap_and_record_each_experiment_once(tmp_path: Path) -> None:
    repo = lanes_repo(tmp_path / "r")
    paths = start(repo)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    got = results(paths)
    numbers = [r.experiment for r in got]
    assert sorted(numbers) == list(range(7)) and len(set(numbers)) == 7
    assert {r.lane for r in got[1:]} <= {0, 1, 2} and len({r.lane for r in got[1:]}) >= 2
    assert all(r.status == "keep" for r in got[1:]), [(r.status, r.reason) for r in got]
    # Decisions in order: each keep's parent is the commit kept just before it.
    for before, after in itertools.pairwise(got):
        assert after.parent == before.commit
    assert any(r.made_against for r in got[1:]), "some candidate was replayed"
    # The agents' turns overlapped: a second agent started before the first one ended.
    ev = events(paths)
    starts = {e.experiment: e.t for e in ev if e.kind == "agent_start"}
    ends = {e.experiment: e.t for e in ev if e.kind == "agent_end"}
    assert starts[2] < ends[1] and starts[3] < ends[1]
    status = json.loads(expd("status", rid(paths), "--json", cwd=repo).stdout)
    assert [lane["lane"] for lane in status["lanes"]] == [0, 1, 2]
    assert all(lane["phase"] == "idle" for lane in status["lanes"])
    # The run's branch is at the incumbent with every kept file; every lane tree is clean.
    assert git(repo, "rev-parse", f"expd/p/{paths.dir.name}") == final.incumbent_commit
    files = git(repo, "ls-tree", "--name-only", final.incumbent_commit).split()
    assert {f"d{n}.py" for n in range(1, 7)} <= set(files)


def test_a_stale_candidate_that_conflicts_is_discarded_unmeasured(tmp_path: Path) -> None:
    # Both lanes start from the base; #1 (quicker) is kept, #2 rewrote the same line.
    agent = AGENT_SAME_LINE.replace("sleep ${NAP:-0.3}", "sleep 0.$((EXPD_EXPERIMENT * 3))")
    repo = lanes_repo(
        tmp_path / "r", count=2, max_experiments=2, agent_sh=agent, measure_sh=MEASURE_X
    )
    paths = start(repo)
    wait_finished(paths)
    got = results(paths)
    assert [(r.experiment, r.status) for r in got] == [(0, "baseline"), (1, "keep"), (2, "discard")]
    stale = got[2]
    assert stale.reason == "stale: conflicts with #1"
    assert stale.metric is None and stale.made_against == got[0].commit
    assert stale.parent == got[1].commit
    measured = {e.experiment for e in events(paths) if e.kind == "measurement"}
    assert 2 not in measured


def test_a_candidate_that_applies_is_replayed_and_measured_against_the_new_incumbent(
    tmp_path: Path,
) -> None:
    agent = AGENT_DISTINCT.replace("sleep ${NAP:-0.3}", "sleep 0.$((EXPD_EXPERIMENT * 3))")
    repo = lanes_repo(tmp_path / "r", count=2, max_experiments=2, agent_sh=agent)
    paths = start(repo)
    wait_finished(paths)
    got = results(paths)
    assert [(r.experiment, r.status) for r in got] == [(0, "baseline"), (1, "keep"), (2, "keep")]
    replayed = got[2]
    assert replayed.made_against == got[0].commit and replayed.parent == got[1].commit
    assert replayed.lane is not None and replayed.lane != got[1].lane
    assert git(repo, "rev-parse", f"{replayed.commit}^") == got[1].commit
    assert any(e.kind == "replayed" and e.experiment == 2 for e in events(paths))
    assert replayed.metric == 18  # both files: measured on the new incumbent


def test_no_turn_runs_while_measuring_without_overlap(tmp_path: Path) -> None:
    repo = lanes_repo(
        tmp_path / "r",
        count=2,
        max_experiments=4,
        measure_sh=MEASURE_FILES.replace("${MEASURE_EXTRA:-true}", "sleep 0.2"),
        extra="overlap_measurement = false\n",
    )
    paths = start(repo)
    wait_finished(paths)
    assert len(results(paths)) == 5
    ev = events(paths)
    turns = [
        (e.t, next(x.t for x in ev if x.kind == "agent_end" and x.experiment == e.experiment))
        for e in ev
        if e.kind == "agent_start"
    ]
    measures = [
        (e.t, next(x.t for x in ev if x.kind == "decision" and x.experiment == e.experiment))
        for e in ev
        if e.kind == "measure_start"
    ]
    assert len(measures) == 4
    for m0, m1 in measures:
        for t0, t1 in turns:
            assert t1 <= m0 or t0 >= m1, "an agent turn overlapped a measurement"


def test_stop_lets_every_running_turn_finish_and_be_recorded(tmp_path: Path) -> None:
    repo = lanes_repo(tmp_path / "r", max_experiments=20)
    paths = start(repo, env={"NAP": "1.5"})
    wait_for(
        lambda: sum(lane.phase == "agent_running" for lane in state(paths).lanes) == 3,
        what="three agents at work",
    )
    assert expd("stop", rid(paths), cwd=repo).returncode == 0
    final = wait_finished(paths)
    assert final.termination_reason == "stopped"
    got = results(paths)
    assert sorted(r.experiment for r in got) == [0, 1, 2, 3]
    assert all(r.status == "keep" for r in got[1:])


def test_abort_reaches_every_lane(tmp_path: Path) -> None:
    repo = lanes_repo(tmp_path / "r", max_experiments=20)
    paths = start(repo, env={"NAP": "30"})
    wait_for(
        lambda: (
            sum(bool(lane.in_flight and lane.in_flight.pgid) for lane in state(paths).lanes) == 3
        ),
        what="three agents at work",
    )
    groups = [lane.in_flight.pgid for lane in state(paths).lanes if lane.in_flight]
    assert expd("abort", rid(paths), cwd=repo).returncode == 0
    final = wait_finished(paths)
    assert final.termination_reason == "aborted"
    got = results(paths)
    assert sorted(r.experiment for r in got) == [0, 1, 2, 3]
    assert all(r.status == "crash" and r.reason == "aborted by request" for r in got[1:])
    assert all(not group_members(g) for g in groups if g)
    assert not processes_in(repo / ".expd")


def test_kill_9_with_lanes_busy_then_resume(tmp_path: Path) -> None:
    # Experiments 1-3 are quick, and so are the first two measurements; from 4 on the agents
    # sleep, and so does the third measurement (a tree with three files): 4 and 5 run then.
    repo = lanes_repo(
        tmp_path / "r",
        max_experiments=7,
        measure_sh=MEASURE_FILES.replace(
            "${MEASURE_EXTRA:-true}", 'if [ "$n" -ge 3 ]; then sleep ${MEASURE_NAP:-0}; fi'
        ),
    )
    paths = start(repo, env={"SLOW_FROM": "4", "MEASURE_NAP": "30", "NAP": "0.1"})

    def busy() -> bool:
        lanes = state(paths).lanes
        agents = sum(1 for lane in lanes if lane.phase == "agent_running" and lane.in_flight)
        measuring = [lane for lane in lanes if lane.phase == "measuring" and lane.in_flight]
        return agents >= 2 and bool(measuring) and bool(measuring[0].in_flight.pgid)

    wait_for(busy, what="two agents and a measurement at once")
    before = state(paths)
    in_flight = sorted(lane.in_flight.experiment for lane in before.lanes if lane.in_flight)
    groups = [lane.in_flight.pgid for lane in before.lanes if lane.in_flight]
    recorded = {r.experiment for r in results(paths)}
    from shared.schema import DaemonInfo

    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_dead(paths)
    proc = expd("resume", rid(paths), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    final = wait_finished(paths)
    assert all(not group_members(g) for g in groups if g)
    got = results(paths)
    numbers = [r.experiment for r in got]
    assert sorted(numbers) == list(range(8)), numbers
    interrupted = [r for r in got if r.reason.startswith("interrupted")]
    assert sorted(r.experiment for r in interrupted) == in_flight
    assert not set(in_flight) & recorded
    assert all(r.status == "crash" for r in interrupted)
    assert final.termination_reason == "max_experiments"
    assert not processes_in(repo / ".expd")
