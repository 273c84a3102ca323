"""The agent's committed code, run by the measurement, against the user and the record.

The agent commits a `solve.sh` that the program's measure.sh runs, as a benchmark runs code that
lives in the repository. At measurement time it tries the user's checkout, hooks and config, the
run's `run.key` and results, the program folder, the user's home (`usercustomize.py`, `.bashrc`,
under a temporary HOME), the agent's tree, and leaves a `setsid` sleeper. Each attempt prints
ALLOWED or REFUSED into `$EXPD_DIAGNOSTICS_FILE` (the one file of the run it may write). Landlock
refuses every write but hides nothing, so there the reads succeed; `none` is the control.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ops import sandbox
from tests.hostile import (
    assert_no_worse_kept,
    assert_untouched,
    hostile_agent,
    snapshot,
    statuses,
    survivors,
)
from tests.repos import MEASURE_SH, make_repo, measure_toml, results, start, wait_finished

SOLVE_SH = r"""#!/bin/bash
try() { if bash -c "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "REFUSED $1"; fi; }
R="$HOSTILE_REPO"
RUNS="$R/.expd/programs/p/runs"
SITE="$HOME/.local/lib/python$PYVER/site-packages"
{
try own-tree "echo planted > planted.txt"
try own-tmp "echo planted > \"\${TMPDIR:-/tmp}/planted\""
try write-checkout "echo planted >> '$R/f.py'"
try write-hook "mkdir -p '$R/.git/hooks' && echo 'touch $R/hook-ran' > '$R/.git/hooks/post-commit'"
try write-config "git config --file '$R/.git/config' core.hooksPath /tmp"
try write-program "echo planted >> '$R/.expd/programs/p/measure.sh'"
try write-results "echo '{}' >> $RUNS/*/results.jsonl"
try plant-usercustomize "mkdir -p '$SITE' && echo 'import os' > '$SITE/usercustomize.py'"
try write-bashrc "echo planted >> '$HOME/.bashrc'"
try read-key-env "test -n \"\$EXPD_RUN_DIR\" && cat \"\$EXPD_RUN_DIR/run.key\""
try read-key "cat $RUNS/*/run.key"
try read-results "cat $RUNS/*/results.jsonl"
try read-config "cat '$R/.git/config'"
try read-agent-tree "cat $R/.expd/worktrees/*/f.py"
} >> "$EXPD_DIAGNOSTICS_FILE"
( setsid bash -c "exec -a hostile-sleeper-$HOSTILE_MARK sleep 300" </dev/null >/dev/null 2>&1 & )
"""
NAMES = [line.split()[1] for line in SOLVE_SH.splitlines() if line.startswith("try ")]
WRITES = {n for n in NAMES if n.startswith(("write-", "plant-"))}
READS = {"read-key", "read-results", "read-config", "read-agent-tree"}
EXPECTED = {
    "bwrap": {"own-tree", "own-tmp"},
    # Landlock refuses the writes but cannot hide: the reads work (docs/security.md says so).
    "landlock": {"own-tree", "own-tmp"} | READS,
    # Unconfined every attempt is real; only `$EXPD_RUN_DIR` is no longer given to a measurement.
    "none": set(NAMES) - {"read-key-env"},
}
AGENT = hostile_agent("cat > solve.sh <<'EOF'\n" + SOLVE_SH + "EOF\nchmod +x solve.sh\n")
MEASURE = MEASURE_SH.replace("${MEASURE_EXTRA:-true}", "if [ -f solve.sh ]; then bash solve.sh; fi")


def verdicts(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        word, _, name = line.partition(" ")
        if word in ("ALLOWED", "REFUSED"):
            out.setdefault(word, set()).add(name)
    return out


@pytest.fixture
def home() -> Iterator[Path]:
    """A temporary HOME outside /tmp (under bwrap /tmp is the measurement's private one)."""
    path = Path(tempfile.mkdtemp(prefix="expd-test-home-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("backend", ["bwrap", "landlock", "none"])
def test_the_measured_code_cannot_reach_the_user_or_the_record(
    tmp_path: Path, home: Path, backend: str
) -> None:
    if backend != "none" and not sandbox.probe(backend).ok:
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    mark = uuid.uuid4().hex[:12]
    agent_box = backend if backend != "none" else "none"
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=2,
        agent_sh=AGENT,
        measure_sh=MEASURE,
        sandbox=agent_box,
        toml_extra=measure_toml(sandbox=backend),
    )
    (repo / "f.py").write_text("x = 0  # the user's uncommitted edit\n")
    (repo / "notes.txt").write_text("the user's untracked notes\n")
    before = snapshot(repo)
    program_before = (repo / ".expd/programs/p/measure.sh").read_text()
    pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env = {
        "TARGET": "1",
        "HOSTILE_MARK": mark,
        "HOSTILE_REPO": str(repo),
        "HOME": str(home),
        "PYVER": pyver,
    }
    paths = start(repo, env=env)
    final = wait_finished(paths, timeout=90)  # the run ends by itself
    assert final.measure_sandbox == backend
    # Unconfined, the first attempt to edit measure.sh ends the run (the program files changed).
    expected_end = "error" if backend == "none" else "max_experiments"
    assert final.termination_reason == expected_end, final.message
    assert survivors(mark) == [], "a process the measured code started outlived it"
    text = paths.diagnostics.read_text()
    seen = verdicts(text)
    assert seen.get("ALLOWED", set()) | seen.get("REFUSED", set()) == set(NAMES), text
    assert seen.get("ALLOWED", set()) == EXPECTED[backend], text
    if backend == "none":
        return  # the control: unconfined, the measured code changes the user's files
    assert_untouched(repo, before)
    assert not (repo / "hook-ran").exists()
    assert (repo / ".expd/programs/p/measure.sh").read_text() == program_before
    assert not (home / ".local").exists() and not (home / ".bashrc").exists()
    assert statuses(paths) == ["baseline", "keep", "discard"]
    assert_no_worse_kept(results(paths))
