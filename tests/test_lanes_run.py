"""Lanes end to end: the real daemon with `[lanes] count` > 1 and command agents.

Each lane's agent edits its own line (`l<lane>.py`, from `$EXPD_WORKTREE`'s name), so candidates of
different lanes never conflict unless a test makes them; the measurement scores the sum of the
files' numbers (lower is better: every change is a keep unless the measurement says otherwise).
"""

from __future__ import annotations

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
    for before, after in zip(got, got[1:], strict=False):
        assert after.parent == before.commit
    assert any(r.made_against for r in got[1:]), "some candidate was replayed"
    # The agents' turns overlapped: a second agent started before the first one ended.
    ev = events(paths)
    starts = {e.experiment: e.t for e in ev if e.kind == "agent_start"}
    ends = {e.experiment: e.t for e in ev if e.kind == "agent_end"}
    assert any(starts[2] < ends[1] and starts[3] < ends[1] for _ in [0])
    status = json.loads(expd("status", rid(paths), "--json", cwd=repo).stdout)
    assert [lane["lane"] for lane in status["lanes"]] == [0, 1, 2]
    assert all(lane["phase"] == "idle" for lane in status["lanes"])
    # The run's branch is at the incumbent with every kept file; every lane tree is clean.
    assert git(repo, "rev-parse", f"expd/p/{paths.dir.name}") == final.incumbent_commit
    files = git(repo, "ls-tree", "--name-only", final.incumbent_commit).split()
    assert {f"d{n}.py" for n in range(1, 7)} <= set(files)
