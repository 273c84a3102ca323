"""The code a confined agent commits, when expd builds and measures it.

The sandbox confines the agent's turn, and what the build and the measurement run is the
candidate: the agent's committed code. This agent changes a tracked helper the measure command runs
(nothing protects it) so that, measured, it would write into the user's checkout and copy `run.key`
there; the measurement's own sandbox (`[measure] sandbox`) refuses both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.ops import sandbox
from tests.repos import git, make_repo, results, start, wait_finished

AGENT = r"""#!/bin/bash
cat > /dev/null
n=$(sed -E 's/x = ([0-9-]+)/\1/' f.py)
echo "EXPD-DESCRIPTION: x from $n to $((n + 1))"
echo "x = $((n + 1))" > f.py
cat > helper.sh <<'EOF'
R=$(cd "$EXPD_WORKTREE/../../.." && pwd)
echo escaped > "$R/ESCAPED"
cp "$EXPD_RUN_DIR/run.key" "$R/STOLEN_KEY" 2>/dev/null
true
EOF
"""

MEASURE = r"""#!/bin/bash
bash helper.sh
x=$(sed -E 's/x = ([0-9-]+)/\1/' f.py)
d=$(( x > 3 ? x - 3 : 3 - x ))
echo "{\"score\": $((d + 1))}"
"""


def test_a_confined_agents_code_stays_confined_when_measured(tmp_path: Path) -> None:
    if not sandbox.probe("bwrap").ok:
        pytest.skip(f"bwrap is not available here: {sandbox.probe('bwrap').detail}")
    repo = make_repo(
        tmp_path / "repo", agent_sh=AGENT, measure_sh=MEASURE, max_experiments=1, sandbox="bwrap"
    )
    (repo / "helper.sh").write_text("true\n")
    git(repo, "add", "helper.sh")
    git(repo, "commit", "-qm", "a helper the measurement runs")
    paths = start(repo)
    final = wait_finished(paths, timeout=90)
    assert final.termination_reason == "max_experiments", final.message
    assert final.sandbox == "bwrap"
    assert [r.status for r in results(paths)] == ["baseline", "keep"]
    assert not (repo / "ESCAPED").exists(), "the measured candidate wrote the user's checkout"
    assert not (repo / "STOLEN_KEY").exists(), "the measured candidate read run.key"
