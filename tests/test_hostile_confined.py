"""A confined agent against the user's repository, the record and the measurement tree.

The agent's tree is a repository of its own whose objects come from the user's through alternates,
so the sandbox shows it that objects directory, read-only, and nothing else of the user's: this
agent tries the user's refs, hooks, config and objects through `git --git-dir=$R/.git`, the user's
checkout, `run.key`, the program folder and the measurement tree, and checks that its own git
still works. Each attempt prints ALLOWED or REFUSED into the agent log; in experiment 2 it also
writes the daemon's canary key into a tracked file (refused as a secret). The run keeps the five
invariants of tests/hostile.py. `none` is the control: unconfined, every attempt is real and works,
so the user's repository is changed by the agent itself; it checks the other four.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.ops import sandbox
from shared.paths import RepoPaths
from tests.hostile import (
    CANARY_NAME,
    assert_agent_tree_sane,
    check_invariants,
    finished,
    hostile_start,
    manifest,
    statuses,
    survivors,
    user_repo,
)
from tests.repos import git, results

ATTEMPTS = r"""
try() { if bash -c "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "REFUSED $1"; fi; }
E="$R/.expd/eval/$(basename "$EXPD_WORKTREE")"
try own-git "git status --porcelain && git cat-file -p HEAD:f.py && git log -1 --format=%H"
try update-main "git --git-dir='$R/.git' update-ref refs/heads/main HEAD"
try move-main "git --git-dir='$R/.git' update-ref refs/heads/main HEAD~1"
try new-branch "git --git-dir='$R/.git' branch evil-$EXPD_EXPERIMENT"
try write-hook "mkdir -p '$R/.git/hooks' && echo 'touch $R/hook-ran' > '$R/.git/hooks/post-commit'"
try write-config "git config --file '$R/.git/config' core.hooksPath /tmp"
try write-objects "touch '$R/.git/objects/planted'"
try write-checkout "echo planted >> '$R/f.py'"
try write-eval "echo 'x = 1' > '$E/f.py'"
try plant-eval "echo planted > '$E/planted.txt'"
try read-config "cat '$R/.git/config'"
try read-key "cat '$EXPD_RUN_DIR/run.key'"
try read-program "cat '$R/.expd/programs/p/measure.sh'"
try read-eval "cat '$E/f.py'"
if [ "$EXPD_EXPERIMENT" = 2 ]; then echo "# $HOSTILE_CANARY_KEY" >> f.py; fi
"""
NAMES = [line.split()[1] for line in ATTEMPTS.splitlines() if line.startswith("try ")]
READS = {"read-config", "read-key", "read-program", "read-eval"}
EXPECTED = {
    "bwrap": {"own-git"},
    # Landlock refuses every write but hides nothing (docs/security.md says so).
    "landlock": {"own-git"} | READS,
    "none": set(NAMES),
}
"""What each backend lets the agent do; everything else must be REFUSED."""


def verdicts(log: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in log.splitlines():
        word, _, name = line.partition(" ")
        if word in ("ALLOWED", "REFUSED"):
            out.setdefault(word, set()).add(name)
    return out


@pytest.mark.parametrize("backend", ["bwrap", "landlock", "none"])
def test_a_confined_agent_cannot_reach_around_its_own_repository(
    tmp_path: Path, backend: str
) -> None:
    if backend != "none" and not sandbox.probe(backend).ok:
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    repo = user_repo(tmp_path / "repo", ATTEMPTS, max_experiments=2, sandbox=backend)
    (repo / "README").write_text("a second commit, so main has somewhere to be moved back to\n")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "second", "--", "README")
    h, paths = hostile_start(repo, env={"TARGET": "1"})
    finished(paths)
    assert survivors(h.mark) == [], "a process the agent started outlived its turn"
    final = check_invariants(h, paths, repo_attacked=backend == "none")
    assert final.termination_reason == "max_experiments", final.message
    assert final.sandbox == backend
    # Unconfined, experiment 1 moved main back already: only its attempts are all real.
    for n in (1,) if backend == "none" else (1, 2):
        log = paths.agent_log(n).read_text()
        seen = verdicts(log)
        assert seen.get("ALLOWED", set()) | seen.get("REFUSED", set()) == set(NAMES), log
        assert seen.get("ALLOWED", set()) == EXPECTED[backend], log
    if backend == "none":
        return  # the control: the attempts are real, and unconfined they change the user's files
    assert not (repo / ".git" / "objects" / "planted").exists()
    assert not (repo / "hook-ran").exists()
    measured = RepoPaths(repo).eval_tree("p", paths.dir.name)
    assert not (measured / "planted.txt").exists()
    assert statuses(paths) == ["baseline", "keep", "crash"]
    assert f"${CANARY_NAME}" in results(paths)[2].reason
    assert_agent_tree_sane(paths)
    assert Path(manifest(paths).worktree).is_dir()
