"""Helpers for hostile-agent tests: a user's repository with work in progress, and the five
invariants every scenario that runs a whole run checks through one function, `check_invariants`:

1. the user's checkout (an uncommitted edit and an untracked file included) and `.git` (except
   expd's own refs and objects) are byte-identical;
2. no change worse than the incumbent it replaced was kept (in the program's direction);
3. no process survives the run: none carries its `EXPD_RUN_DIR`, works inside the agent's tree or
   the measurement tree, or carries the scenario's marker (the agents leave a `setsid`
   double-forked sleeper named after it);
4. the canary secret in the daemon's environment (`HOSTILE_CANARY_KEY`; the agents print it) is in
   no file under `.expd/`, the user's `.git` or expd's state directory, and in no git object there
   — except the agent's own tree's `.git`, which docs/security.md ("Secrets") leaves the agent's;
5. the run ended by itself: a terminal phase, and no daemon holds it.

Which whole-run scenarios cover each requirement of the isolation design (docs/security.md), on
top of the invariants every scenario checks (so 1, 6 and 8 are in all of them). G =
test_hostile_git.py, R = test_hostile_record.py, S = test_sandbox.py, C = the one test of
test_hostile_confined.py; names without `test_`; `[*]` is every parameter.

 #  requirement              scenarios
 1  user's checkout and      G the_user_repository_survives[*], G agent_deletes_its_tree,
    repository unchanged     G agent_replaces_its_tree_with_a_symlink_to_the_checkout,
                             G symlinks_and_hard_links_to_the_users_files, C[bwrap, landlock]
 2  agent confined by        S a_hostile_agent_is_confined_and_leaves_nothing_behind[bwrap,
    default                  landlock], S status_and_report_say_which_sandbox_confines_the_agent,
                             C[bwrap, landlock]
 3  expd's git runs nothing  G hooks_never_run,
    of the agent's           G the_users_own_hooks_and_signing_settings_are_not_expds,
                             G the_user_repository_survives[sets an fsmonitor, asks for signed
                             commits, sets core.hooksPath, adds alternates and a commondir,
                             redirects its .git…, points its .git…],
                             G a_fifo_in_the_agents_git_does_not_stall_the_capture
 4  what is measured is      G ignored_build_cache_never_reaches_a_measurement,
    exactly the commit       G an_untracked_file_planted_in_the_measurement_tree_is_removed,
                             G measurement_runs_in_expd_tree, C[bwrap, landlock] (plant-eval)
 5  protected paths          R a_change_to_a_protected_path_is_discarded_unmeasured
 6  nothing outlives the     all (a `setsid` double-forked sleeper),
    agent's turn             S a_hostile_agent_is_confined_and_leaves_nothing_behind[*] (a child
                             holding stdout),
                             S abort_ends_the_confined_agent_and_what_it_detached[*]
 7  the record is the        R forged_keep_line_is_put_back_by_the_live_daemon,
    daemon's alone           R forged_keep_line_and_state_are_not_trusted_on_resume,
                             R finalize_ignores_a_keep_line_forged_after_the_run,
                             R forged_control_requests_are_ignored,
                             R a_deleted_key_is_put_back_while_the_daemon_lives,
                             R unlinked_locks_leave_the_daemon_alive_and_alone
 8  secrets                  all (the canary), G the_daemons_key_never_reaches_a_file_or_an_object,
                             R secrets_never_reach_a_file_or_a_reachable_object,
                             R only_a_secret_the_change_adds_refuses_it, C[bwrap, landlock],
                             S a_hostile_agent_is_confined_and_leaves_nothing_behind[bwrap,
                             landlock] (the daemon's environment, where the canary is, unread)
 9  bounded output           R a_flooding_agent_neither_stalls_the_loop_nor_grows_the_files
10  bad states are outcomes  G nested_repository_is_a_crash, G agent_deletes_its_tree,
                             G the_user_repository_survives[leaves an index.lock, leaves a
                             HEAD.lock and a ref lock, deletes its own .git],
                             R a_metric_that_is_not_a_finite_float_is_a_measurement_failure[*],
                             R a_run_whose_key_is_gone_ends_clearly_on_resume
11  finalize and init        R finalize_refuses_a_gain_the_remeasurement_contradicts (and
    refuse what they must    `expd init` of names git cannot use in a branch)

The scenario that kills the daemon for good, the `none` controls (whose unconfined agent writes
the user's repository itself) and the tests of one mechanism say in their docstrings what they
check instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared import codec
from shared.liveness import held
from shared.paths import RepoPaths, RunPaths, state_dir
from shared.schema import TERMINAL_PHASES, ResultRecord, RunManifest, RunState
from tests.repos import AGENT_SH, git, make_repo, results, start, wait_for
from tests.repos import state as read_state

USER_EDIT = "x = 0  # the user's uncommitted edit\n"
USER_UNTRACKED = "the user's untracked notes\n"
CANARY_NAME = "HOSTILE_CANARY_KEY"
"""A secret-looking variable (its name holds KEY) every hostile run's daemon has."""

TRACES = """echo "the daemon's key: $HOSTILE_CANARY_KEY"
echo "and on stderr: $HOSTILE_CANARY_KEY" >&2
( setsid bash -c "exec -a hostile-sleeper-$HOSTILE_MARK sleep 300" </dev/null >/dev/null 2>&1 & )
"""
"""What every hostile agent does besides its scenario: print the canary (expd must redact it)
and leave a detached, double-forked sleeper (expd must end it)."""

HOSTILE_AGENT = """#!/bin/bash
cat > /dev/null
R=$(cd "$EXPD_WORKTREE/../../.." && pwd)
n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py 2>/dev/null || echo 0)
echo "EXPD-DESCRIPTION: x from $n to $((n + 1))"
echo "x = $((n + 1))" > f.py
{traces}
{hostile}
exit 0
"""


def hostile_agent(hostile: str) -> str:
    """The usual agent (x += 1) with its traces, then `hostile` (bash; `$R` is the user's
    repository)."""
    assert "cat > /dev/null" in AGENT_SH
    return HOSTILE_AGENT.replace("{traces}", TRACES).replace("{hostile}", hostile)


def unconfined_repo(root: Path, **kwargs: object) -> Path:
    """`make_repo` with `[agent] sandbox = "none"`: the git and record scenarios test each defence
    without the sandbox's help, as on a machine that has none (a sandbox would refuse most of their
    attacks before expd's own defences are reached; tests/test_hostile_confined.py and
    tests/test_sandbox.py attack the sandbox itself)."""
    kwargs.setdefault("sandbox", "none")
    return make_repo(root, **kwargs)  # type: ignore[arg-type]


def add_user_work(repo: Path) -> Path:
    """The user's work in progress, which no run may touch: an uncommitted edit of a tracked file
    and an untracked file (call it after the scenario's own commits)."""
    (repo / "f.py").write_text(USER_EDIT)
    (repo / "notes.txt").write_text(USER_UNTRACKED)
    return repo


def user_repo(root: Path, hostile: str, **kwargs: object) -> Path:
    """`make_repo` with a hostile agent (unconfined unless `sandbox` says otherwise), then the
    user's work in progress."""
    return add_user_work(unconfined_repo(root, agent_sh=hostile_agent(hostile), **kwargs))


# --------------------------------------------------------------------------- invariant 1


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path, skip: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if str(rel / d) not in skip and d not in skip]
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            out[str(rel / name)] = _digest(Path(dirpath) / name)
    return out


def snapshot(repo: Path) -> dict[str, object]:
    """Everything of the user's a run must leave byte-identical: the checkout (tracked, edited and
    untracked files), and `.git` except expd's own refs, their logs and objects (which only grow)."""
    gitdir = repo / ".git"
    own = ("refs/expd", "refs/heads/expd", "logs/refs/heads/expd", "logs/refs/expd")
    meta = {
        name: digest
        for name, digest in _files(gitdir, ("objects", *own)).items()
        if not name.startswith(own)
    }
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return {
        "checkout": _files(repo, (".git", ".expd")),
        "git": meta,
        "refs": sorted(r for r in refs if not r.startswith(("refs/expd/", "refs/heads/expd/"))),
        "head": (gitdir / "HEAD").read_text(),
    }


def assert_untouched(repo: Path, before: dict[str, object]) -> None:
    after = snapshot(repo)
    for key in before:
        assert after[key] == before[key], f"the user's {key} changed: {before[key]} → {after[key]}"
    assert (repo / "f.py").read_text() == USER_EDIT
    assert (repo / "notes.txt").read_text() == USER_UNTRACKED


# --------------------------------------------------------------------------- invariant 2


def assert_no_worse_kept(recs: list[ResultRecord], lower_is_better: bool = True) -> None:
    """Each keep beats the incumbent it replaced (the metric is deterministic in these tests)."""
    best = None
    for r in recs:
        if r.status == "baseline":
            best = r.metric
        elif r.status == "keep":
            assert best is not None and r.metric is not None
            assert (r.metric < best) if lower_is_better else (r.metric > best), r
            best = r.metric


# --------------------------------------------------------------------------- invariant 3


def _trees(paths: RunPaths) -> tuple[Path, ...]:
    """The agent's tree and the measurement tree of the run."""
    mf = manifest(paths)
    measured = RepoPaths(Path(mf.repo)).eval_tree(mf.program, paths.dir.name)
    return tuple(Path(p).resolve() for p in (mf.worktree, measured))


def leftovers(paths: RunPaths, mark: str) -> list[str]:
    """Live processes of the run: its `EXPD_RUN_DIR` in their environment, their working
    directory in one of its trees, or the scenario's marker in their command line. Processes
    that cannot be read (gone, or another user's) are skipped."""
    marker = f"EXPD_RUN_DIR={paths.dir}".encode()
    trees = _trees(paths)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        why = []
        if mark and mark in cmdline:
            why.append("marker")
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                why.append("EXPD_RUN_DIR")
        except OSError:
            pass
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            if any(cwd.is_relative_to(tree) for tree in trees):
                why.append(f"cwd {cwd}")
        except OSError:
            pass
        if why:
            found.append(f"{entry.name} ({', '.join(why)}): {cmdline}")
    return found


def assert_nothing_survives(paths: RunPaths, mark: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while found := leftovers(paths, mark):
        assert time.monotonic() < deadline, f"processes outlived the run: {found}"
        time.sleep(0.05)


def survivors(mark: str) -> list[str]:
    """Command lines of live processes carrying the marker (none may outlive the agent)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if mark in cmdline and "hostile-" in cmdline:
            found.append(cmdline)
    return found


# --------------------------------------------------------------------------- invariant 4


def _git_dirs(root: Path, skip: Path) -> list[Path]:
    """The git directories under `root` (expd's private ones, the trees'), not below `skip`."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        if "objects" in dirnames and "HEAD" in filenames:
            found.append(Path(dirpath))
    return found


def files_holding(root: Path, needle: bytes, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Regular files under `root` (not below `skip`) whose bytes hold `needle`."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                if stat.S_ISREG(path.lstat().st_mode) and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def objects_holding(gitdir: Path, needle: bytes) -> list[str]:
    """Objects of `gitdir` (loose and packed, its alternates' included) whose content holds
    `needle`: commit messages, trees' names and blobs."""
    argv = ["git", "-c", "core.fsmonitor=false", f"--git-dir={gitdir}", "cat-file"]
    out = subprocess.run(
        [*argv, "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull},
    ).stdout
    found, at = [], 0
    while at < len(out):
        header_end = out.index(b"\n", at)
        name, _, size = out[at:header_end].split()  # "<name> <type> <size>"
        body = out[header_end + 1 : header_end + 1 + int(size)]
        if needle in body:
            found.append(name.decode())
        at = header_end + 2 + int(size)
    return found


def assert_no_secret(repo: Path, paths: RunPaths, canary: str) -> None:
    """The canary is in no file expd wrote and no git object expd or the user's repository holds.

    The agent's own tree's `.git` is skipped: it is the agent's repository, which holds whatever
    the agent itself committed there (docs/security.md, "Secrets"); expd never reads it as one.
    """
    needle = canary.encode()
    agents_git = Path(manifest(paths).worktree) / ".git"
    for root in (repo / ".expd", repo / ".git", state_dir()):
        assert files_holding(root, needle, (agents_git,)) == [], f"the canary is in {root}"
    for gitdir in [repo / ".git", *_git_dirs(repo / ".expd", agents_git)]:
        assert objects_holding(gitdir, needle) == [], f"the canary is in an object of {gitdir}"


# --------------------------------------------------------------------------- all five


@dataclass(frozen=True)
class Hostile:
    """What a hostile run is checked against: the user's repository as it was before the run,
    the canary secret given to its daemon, the marker of the processes its agent starts."""

    repo: Path
    before: dict[str, object]
    canary: str
    mark: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every `expd` that may start the run's daemon (start, resume)."""
        return {CANARY_NAME: self.canary, "HOSTILE_MARK": self.mark, **extra}


def prepare(repo: Path) -> Hostile:
    """Snapshot the user's repository and draw a fresh canary and marker, just before a run."""
    canary = "canary-" + secrets.token_hex(16)
    return Hostile(repo, snapshot(repo), canary, uuid.uuid4().hex[:12])


def hostile_start(
    repo: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[Hostile, RunPaths]:
    """`prepare`, then `expd start` with the canary and marker in the daemon's environment."""
    h = prepare(repo)
    return h, start(repo, "p", *extra, env=h.env(**(env or {})))


def finished(paths: RunPaths, timeout: float = 90.0) -> RunState:
    """The run ended by itself: a terminal phase, and no daemon holds the run any more."""
    wait_for(
        lambda: read_state(paths).phase in TERMINAL_PHASES and not held(paths),
        timeout,
        "the run to end by itself",
    )
    return read_state(paths)


def check_invariants(
    h: Hostile, paths: RunPaths, *, timeout: float = 90.0, repo_attacked: bool = False
) -> RunState:
    """All five invariants of a whole run (see the module's docstring); the final state.

    `repo_attacked` is for the `none` controls only, whose unconfined agent writes the user's
    repository itself (docs/security.md: expd cannot stop that): invariant 1 is not checked."""
    final = finished(paths, timeout)
    if not repo_attacked:
        assert_untouched(h.repo, h.before)
    assert_no_worse_kept(results(paths), final.direction == "lower")
    assert_nothing_survives(paths, h.mark)
    assert_no_secret(h.repo, paths, h.canary)
    return final


# --------------------------------------------------------------------------- more checks


def manifest(paths: RunPaths) -> RunManifest:
    return codec.read(paths.run_json, RunManifest)


def assert_agent_tree_sane(paths: RunPaths) -> None:
    """The agent's tree is back at the incumbent, on the run's branch, clean."""
    mf = manifest(paths)
    st = read_state(paths)
    wt = Path(mf.worktree)
    assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(wt, "rev-parse", "HEAD") == st.incumbent_commit
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD") == mf.branch
    assert git(Path(mf.repo), "rev-parse", mf.branch) == st.incumbent_commit


def statuses(paths: RunPaths) -> list[str]:
    return [r.status for r in results(paths)]
