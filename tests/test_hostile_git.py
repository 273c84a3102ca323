"""Hostile agents against expd's git: whatever the agent does in (or to) its tree, expd runs
none of the agent's code, and every run keeps the five invariants of tests/hostile.py (the user's
repository and checkout byte-identical, no worse change kept, no process left, no secret written,
the run ends by itself).

Each scenario is the usual agent (x += 1 in f.py; TARGET=1, so experiment 1 is a keep and the
later ones are worse; it prints the daemon's canary key and leaves a detached sleeper) plus
something hostile. `$R` in the snippets is the user's repository. The agent runs unconfined
(`sandbox = "none"`), so these test expd's git alone, as on a machine without a sandbox;
tests/test_hostile_confined.py adds the sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.paths import RunPaths
from shared.schema import ResultRecord
from tests.hostile import (
    CANARY_NAME,
    USER_EDIT,
    add_user_work,
    assert_agent_tree_sane,
    check_invariants,
    hostile_agent,
    hostile_start,
    manifest,
    statuses,
    unconfined_repo,
    user_repo,
)
from tests.repos import git, results

ONCE = 'if [ "$EXPD_EXPERIMENT" = 1 ]; then {}; fi'
HOOKS = ("post-commit", "post-checkout", "pre-commit", "post-index-change", "reference-transaction")


def hooks_into(directory: str, mark: Path) -> str:
    """Shell that installs every hook of HOOKS into `directory`: each leaves `mark` and sleeps."""
    lines = [f"mkdir -p {directory}"]
    for hook in HOOKS:
        lines.append(
            f"printf '#!/bin/sh\\ntouch {mark}\\nsleep 30\\n' > {directory}/{hook}; "
            f"chmod +x {directory}/{hook}"
        )
    return "\n".join(lines)


def run(
    tmp_path: Path, hostile: str, *, experiments: int = 3
) -> tuple[Path, RunPaths, list[ResultRecord]]:
    """A whole run of the usual agent plus `hostile`: the five invariants, and it ran to the
    end with the agent's tree back at the incumbent."""
    repo = user_repo(tmp_path / "repo", hostile, max_experiments=experiments)
    h, paths = hostile_start(repo, env={"TARGET": "1"})
    final = check_invariants(h, paths)
    assert final.phase == "complete", (final.phase, final.message)
    assert final.termination_reason == "max_experiments", final.message
    assert_agent_tree_sane(paths)
    return repo, paths, results(paths)


SCENARIOS = {
    "moves the user's main from its own repository": "git update-ref refs/heads/main HEAD~0",
    "switches to another branch and commits there": (
        "git switch -q -c side-$EXPD_EXPERIMENT && git commit -qam side"
    ),
    "checks the user's main out": "git checkout -q -f main 2>/dev/null || true",
    "detaches HEAD": "git checkout -q --detach",
    "sets core.bare": "git config core.bare true",
    "sets core.hooksPath": "git config core.hooksPath /tmp",
    "asks for signed commits": "git config commit.gpgsign true && git config gpg.program false",
    "sets an fsmonitor": "git config core.fsmonitor 'touch $R/fsmonitor-ran; sleep 30'",
    "leaves an index.lock": "touch .git/index.lock",
    "leaves a HEAD.lock and a ref lock": "touch .git/HEAD.lock .git/refs/heads/main.lock",
    "deletes its own .git": "rm -rf .git",
    "redirects its .git to the user's git dir": 'rm -rf .git && echo "gitdir: $R/.git" > .git',
    "points its .git at the user's git dir with a symlink": 'rm -rf .git && ln -s "$R/.git" .git',
    "adds alternates and a commondir": (
        'echo "$R/.git/objects" >> .git/objects/info/alternates && echo "$R/.git" > .git/commondir'
    ),
    "leaves a read-only directory in discarded experiments": (
        'if [ "$EXPD_EXPERIMENT" -ge 2 ]; then mkdir -p ro/deep && echo x > ro/deep/f && '
        "chmod 555 ro/deep ro; fi"
    ),
    "leaves untracked files in discarded experiments": (
        'if [ "$EXPD_EXPERIMENT" -ge 2 ]; then echo junk > junk.txt && mkdir -p d/e && echo x > d/e/f; fi'
    ),
}


@pytest.mark.parametrize("hostile", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_the_user_repository_survives(tmp_path: Path, hostile: str) -> None:
    _, paths, recs = run(tmp_path, hostile)
    assert statuses(paths)[:2] == ["baseline", "keep"], [(r.status, r.reason) for r in recs]
    assert not (Path(manifest(paths).repo) / "fsmonitor-ran").exists()
    wt = Path(manifest(paths).worktree)
    assert not (wt / "junk.txt").exists() and not (wt / "d").exists()


def test_hooks_never_run(tmp_path: Path) -> None:
    """Hooks in the agent's `.git/hooks` and behind `core.hooksPath`: expd runs none (they would
    leave a mark, and sleep long enough to stall a revert)."""
    mark = tmp_path / "hook-ran"
    hostile = "\n".join(
        (
            hooks_into(".git/hooks", mark),
            hooks_into(str(tmp_path / "hooks"), mark),
            f"git config core.hooksPath {tmp_path / 'hooks'}",
        )
    )
    run(tmp_path, hostile)
    assert not mark.exists(), "expd ran one of the agent's hooks"


def test_agent_deletes_its_tree(tmp_path: Path) -> None:
    """The tree gone mid-run: a crash with that reason, never a fall back to the user's checkout;
    the next experiment gets a fresh tree."""
    _, paths, recs = run(tmp_path, ONCE.format('cd / && rm -rf "$EXPD_WORKTREE"'))
    assert statuses(paths) == ["baseline", "crash", "keep", "discard"]
    assert "deleted" in recs[1].reason


def test_agent_replaces_its_tree_with_a_symlink_to_the_checkout(tmp_path: Path) -> None:
    hostile = ONCE.format('cd / && rm -rf "$EXPD_WORKTREE" && ln -s "$R" "$EXPD_WORKTREE"')
    _, paths, recs = run(tmp_path, hostile)
    assert statuses(paths)[1] == "crash" and "symlink" in recs[1].reason


def test_symlinks_and_hard_links_to_the_users_files(tmp_path: Path) -> None:
    """A tracked file replaced by a symlink or a hard link to the user's copy: resets and checkouts
    never write through them."""
    hostile = (
        'if [ "$EXPD_EXPERIMENT" = 2 ]; then rm f.py && ln -s "$R/f.py" f.py; fi\n'
        'if [ "$EXPD_EXPERIMENT" = 3 ]; then rm f.py && ln "$R/f.py" f.py; fi'
    )
    run(tmp_path, hostile)


def test_nested_repository_is_a_crash(tmp_path: Path) -> None:
    hostile = ONCE.format("mkdir sub && echo y > sub/y && git init -q sub")
    _, paths, recs = run(tmp_path, hostile)
    assert statuses(paths) == ["baseline", "crash", "keep", "discard"]
    assert "nested git repository at sub/" in recs[1].reason
    assert not (Path(manifest(paths).worktree) / "sub").exists()


CACHED_MEASURE = (
    "#!/bin/bash\n"
    'if [ -f {trusted} ]; then echo "{{\\"score\\": $(cat {trusted})}}"; exit 0; fi\n'
    "x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)\n"
    't=${{TARGET:-3}}\nd=$(( x > t ? x - t : t - x ))\necho "{{\\"score\\": $((d + 1))}}"\n'
)
"""The usual measurement, unless a file says the score: what an agent would like to plant."""


def test_ignored_build_cache_never_reaches_a_measurement(tmp_path: Path) -> None:
    """The agent makes x worse and leaves an ignored cache the measurement would trust: the
    measurement tree never has it, so the worse change is discarded."""
    repo = unconfined_repo(
        tmp_path / "repo",
        agent_sh=hostile_agent("mkdir -p cache && echo 0 > cache/score"),
        measure_sh=CACHED_MEASURE.format(trusted="cache/score"),
        max_experiments=3,
    )
    (repo / ".gitignore").write_text("cache/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore the cache")
    h, paths = hostile_start(add_user_work(repo), env={"TARGET": "1"})
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments", final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "discard", "discard"]
    assert [r.metric for r in recs] == [2.0, 1.0, 2.0, 2.0]
    assert (Path(manifest(paths).worktree) / "cache" / "score").exists()  # ignored: it may stay
    assert_agent_tree_sane(paths)


def test_an_untracked_file_planted_in_the_measurement_tree_is_removed(tmp_path: Path) -> None:
    """Unconfined, the agent can write the measurement tree itself (a sandbox hides it): a file
    it plants there, which the measurement would trust, is gone before the next series."""
    plant = 'E="$R/.expd/eval/$(basename "$EXPD_WORKTREE")"; echo 0 > "$E/score.txt"'
    repo = unconfined_repo(
        tmp_path / "repo",
        agent_sh=hostile_agent(plant),
        measure_sh=CACHED_MEASURE.format(trusted="score.txt"),
        max_experiments=3,
    )
    h, paths = hostile_start(add_user_work(repo), env={"TARGET": "1"})
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments", final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "discard", "discard"]
    assert [r.metric for r in recs] == [2.0, 1.0, 2.0, 2.0]
    assert_agent_tree_sane(paths)


def test_measurement_runs_in_expd_tree(tmp_path: Path) -> None:
    """`$EXPD_WORKTREE` of the measurement is expd's measurement tree, not the agent's."""
    measure = (
        '#!/bin/bash\npwd >> "$EXPD_DIAGNOSTICS_FILE"\n'
        'echo "$EXPD_WORKTREE" >> "$EXPD_DIAGNOSTICS_FILE"\necho "{\\"score\\": 1}"\n'
    )
    repo = unconfined_repo(
        tmp_path / "repo", agent_sh=hostile_agent("true"), measure_sh=measure, max_experiments=1
    )
    h, paths = hostile_start(add_user_work(repo))
    check_invariants(h, paths)
    where = set(paths.diagnostics.read_text().split())
    agent_tree = manifest(paths).worktree
    assert len(where) == 1 and agent_tree not in where
    assert "/.expd/eval/" in where.pop()


def test_the_users_own_hooks_and_signing_settings_are_not_expds(tmp_path: Path) -> None:
    """The user's repository asks for signed commits and has hooks of every kind: expd's commits
    and refs are its own business (no signing, no hook runs), and nothing is an internal error."""
    mark = tmp_path / "user-hook-ran"
    repo = user_repo(tmp_path / "repo", "true")
    git(repo, "config", "commit.gpgsign", "true")
    git(repo, "config", "gpg.program", "false")
    git(repo, "config", "core.fsmonitor", f"touch {mark}; false")
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in HOOKS:
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
        (hooks / hook).chmod(0o755)
    h, paths = hostile_start(repo, env={"TARGET": "1"})
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments", final.message
    assert statuses(paths) == ["baseline", "keep", "discard", "discard"]
    assert not mark.exists()


def test_a_fifo_in_the_agents_git_does_not_stall_the_capture(tmp_path: Path) -> None:
    """No description printed, so expd looks for the agent's own commit message: a FIFO where its
    HEAD should be is no message, not a hang."""
    hostile = "rm -f .git/HEAD && mkfifo .git/HEAD"
    repo = user_repo(tmp_path / "repo", hostile)
    agent = (repo / "agent.sh").read_text().replace('echo "EXPD-DESCRIPTION', "# echo")
    (repo / "agent.sh").write_text(agent)
    git(repo, "commit", "-qm", "no description", "--", "agent.sh")
    (repo / "f.py").write_text(USER_EDIT)
    h, paths = hostile_start(repo, env={"TARGET": "1"})
    final = check_invariants(h, paths)
    assert final.termination_reason == "max_experiments", final.message
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "discard", "discard"]
    assert recs[1].description == "expd experiment 1"
    assert_agent_tree_sane(paths)


def test_expd_inside_a_runs_tree_finds_the_users_repository(tmp_path: Path) -> None:
    """The agent's tree is a repository of its own, yet `expd` run inside it (or in the measurement
    tree) still means the user's repository, as it did when the tree was a worktree."""
    from shared.paths import find_repo_root

    repo = user_repo(tmp_path / "repo", "true", max_experiments=1)
    h, paths = hostile_start(repo, env={"TARGET": "1"})
    check_invariants(h, paths)
    tree = Path(manifest(paths).worktree)
    assert find_repo_root(tree) == repo.resolve()
    assert find_repo_root(repo / ".expd" / "eval" / tree.name) == repo.resolve()


LEAK = f"""case "$EXPD_EXPERIMENT" in
  1) echo "EXPD-DESCRIPTION: tuned with ${CANARY_NAME}" ;;
  2) echo "key = '${CANARY_NAME}'" >> f.py ;;
  3) echo "${CANARY_NAME}" > key.txt && git add -A && git commit -qm "uses ${CANARY_NAME}" ;;
esac"""


def test_the_daemons_key_never_reaches_a_file_or_an_object(tmp_path: Path) -> None:
    """The agent puts the daemon's key into its description, a tracked file, and a new file it
    commits in its own repository: the description is redacted before it becomes a commit
    message, and the changes holding the key are refused, not committed."""
    _, paths, recs = run(tmp_path, LEAK)
    assert [r.status for r in recs] == ["baseline", "keep", "crash", "crash"]
    assert recs[1].description == f"tuned with [redacted:{CANARY_NAME}]"
    for record in recs[2:]:
        assert f"${CANARY_NAME}" in record.reason and "refused" in record.reason, record.reason
        assert record.commit is None and not paths.patch(record.experiment).exists()
    assert f"[redacted:{CANARY_NAME}]" in paths.agent_log(1).read_text()


def test_a_tracked_symlink_never_leaves_the_next_commit_without_its_file(tmp_path: Path) -> None:
    """A candidate commits a file as a symlink; switching the measurement tree back to the
    incumbent (as every interleaved incumbent run does) must bring the incumbent's file back, not
    leave it missing — a missing file would make the incumbent measure as something else."""
    import os

    from daemon.ops.git.eval_tree import EvalTree

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "incumbent")
    incumbent = git(repo, "rev-parse", "HEAD")
    outside = tmp_path / "outside.py"
    outside.write_text("x = 0\n")
    (repo / "f.py").unlink()
    os.symlink(outside, repo / "f.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "candidate: a symlink")
    candidate = git(repo, "rev-parse", "HEAD")
    tree = EvalTree(repo=repo, path=tmp_path / "tree", gitdir=tmp_path / "gitdir")
    for commit, clean in ((candidate, True), (incumbent, False), (candidate, False)):
        tree.checkout_sync(commit, clean=clean)
    tree.checkout_sync(incumbent, clean=False)
    measured = tree.path / "f.py"
    assert not measured.is_symlink() and measured.read_text() == "x = 1\n"
    assert outside.read_text() == "x = 0\n"  # never written through
