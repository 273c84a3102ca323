"""The agent's sandbox, tried as a hostile agent would, through the real daemon on every backend.

One `command` agent tries to write outside its tree, read the evaluator, the run and the user's
checkout, find the daemon and read its environment (where the canary key is) or signal it, and
leaves a `setsid` double-forked sleeper and a child holding its stdout before it exits. Each
attempt prints ALLOWED or REFUSED into the agent log. A backend's test is skipped only when it
cannot run here. Whole runs keep the five invariants of tests/hostile.py (the unconfined `none`
control writes the user's checkout itself, so it checks the other four); the tests of one
mechanism (a sandbox's mounts, `children.run`, the dashboard) and the one that kills the daemon
on purpose say what they check instead.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.ops import children, landlock_exec, sandbox
from shared import codec
from shared.paths import RepoPaths, RunPaths
from shared.schema import DaemonInfo, RunState
from tests.hostile import (
    Hostile,
    add_user_work,
    check_invariants,
    finished,
    hostile_agent,
    hostile_start,
    prepare,
    survivors,
)
from tests.repos import AGENT_SH, expd, git, make_repo, results, state, wait_for

HOSTILE = (
    AGENT_SH
    + r"""
try() { if bash -c "$2" >/dev/null 2>&1; then echo "ALLOWED $1"; else echo "REFUSED $1"; fi; }
echo "the daemon's key: $HOSTILE_CANARY_KEY"
program="$HOSTILE_REPO/.expd/programs/p"
try write-checkout "echo x > '$HOSTILE_REPO/escaped.txt'"
try write-outside "echo x > '$HOSTILE_OUTSIDE/escaped.txt'"
try write-program "echo x > '$program/notes.txt'"
try write-run "echo forged > '$EXPD_RUN_DIR/forged.txt'"
try write-tmp "echo ok > \"\${TMPDIR:-/tmp}/ok\""
try read-checkout "cat '$HOSTILE_REPO/agent.sh'"
try read-program "cat '$program/measure.sh'"
try read-run "cat '$EXPD_RUN_DIR/run.json'"
daemon=""
for p in /proc/[0-9]*; do
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "-m daemon $EXPD_RUN_DIR"; then daemon=${p#/proc/}; fi
done
try see-daemon "test -n '$daemon'"
try read-daemon-environ "test -n '$daemon' && grep -qa HOSTILE_CANARY_KEY /proc/$daemon/environ"
try signal-daemon "test -n '$daemon' && kill -0 $daemon"
if [ "$HOSTILE_BACKEND" = bwrap ]; then  # unmounting is tried only where a mount hides things
  try unmount-hidden "umount -l /tmp; umount -l '$HOSTILE_REPO'; cat '$HOSTILE_REPO/agent.sh'"
fi
( setsid bash -c "exec -a hostile-sleeper-$HOSTILE_MARK sleep 300" </dev/null >/dev/null 2>&1 & )
bash -c "exec -a hostile-holder-$HOSTILE_MARK sleep 300" &
sleep 0.3
for name in sleeper holder; do
  grep -qa "hostile-$name-$HOSTILE_MARK" /proc/[0-9]*/cmdline && echo "LEFT $name"
done
exit 0
"""
)
ATTEMPTS = [
    "write-checkout",
    "write-outside",
    "write-program",
    "write-run",
    "write-tmp",
    "read-checkout",
    "read-program",
    "read-run",
    "see-daemon",
    "read-daemon-environ",
    "signal-daemon",
]
LANDLOCK_READS = {"write-tmp", "read-checkout", "read-program", "read-run", "see-daemon"}
EXPECTED = {
    "bwrap": {"write-tmp"},
    # Landlock confines writes only: reading stays possible (and says so in docs/security.md);
    # signals reach the daemon on kernels before Landlock ABI 6.
    "landlock": LANDLOCK_READS | ({"signal-daemon"} if landlock_exec.abi() < 6 else set()),
    # Unconfined, only the daemon's non-dumpable environment resists (and not root's ptrace).
    "none": set(ATTEMPTS) - ({"read-daemon-environ"} if os.geteuid() else set()),
}
"""What each backend lets the agent do; everything else must be REFUSED."""


def available(name: str) -> bool:
    return name == "none" or sandbox.probe(name).ok


def hostile_run(tmp_path: Path, backend: str) -> tuple[RunPaths, dict[str, str], str]:
    """The hostile agent's whole run, checked for the five invariants; (its run, each attempt's
    verdict, the agent log)."""
    if not available(backend):
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = make_repo(tmp_path / "repo", max_experiments=1, agent_sh=HOSTILE, sandbox=backend)
    env = {"HOSTILE_REPO": str(repo), "HOSTILE_OUTSIDE": str(outside), "HOSTILE_BACKEND": backend}
    h, paths = hostile_start(add_user_work(repo), env=env)
    finished(paths)
    assert survivors(h.mark) == [], "a process the agent started outlived its turn"
    final = check_invariants(h, paths, repo_attacked=backend == "none")
    assert final.termination_reason == "max_experiments", final.message
    log = paths.agent_log(1).read_text()
    verdicts = {}
    for line in log.splitlines():
        word, _, name = line.partition(" ")
        if word in ("ALLOWED", "REFUSED"):
            verdicts[name] = word
    assert "LEFT sleeper" in log and "LEFT holder" in log, log  # the attempts were real
    if backend != "none":
        assert not (outside / "escaped.txt").exists()
    return paths, verdicts, log


@pytest.mark.parametrize("backend", ["bwrap", "landlock", "none"])
def test_a_hostile_agent_is_confined_and_leaves_nothing_behind(
    tmp_path: Path, backend: str
) -> None:
    paths, verdicts, log = hostile_run(tmp_path, backend)
    allowed = {name for name, word in verdicts.items() if word == "ALLOWED"}
    assert set(verdicts) == set(ATTEMPTS) | ({"unmount-hidden"} if backend == "bwrap" else set())
    assert allowed == EXPECTED[backend], log
    repo = tmp_path / "repo"
    program = RepoPaths(repo).program("p")
    if backend != "none":
        assert not (repo / "escaped.txt").exists()
        assert not (program.dir / "notes.txt").exists()
        assert not (paths.dir / "forged.txt").exists()
    # The agent exited while a child held its stdout: done, not timed out.
    record = results(paths)[1]
    assert record.status in ("keep", "discard"), record.reason
    assert record.agent_s < 10, record.agent_s
    assert state(paths).sandbox == backend


def test_status_and_report_say_which_sandbox_confines_the_agent(tmp_path: Path) -> None:
    """Confined: status names the backend; unconfined: status, --json and the report say so."""
    confined = sandbox.resolve("auto").backend
    agent = hostile_agent("true")
    repo = add_user_work(make_repo(tmp_path / "confined", max_experiments=1, agent_sh=agent))
    h = prepare(repo)
    proc = expd("start", "p", "--json", cwd=repo, env=h.env())
    assert proc.returncode == 0, proc.stderr
    started = json.loads(proc.stdout)
    assert started["sandbox"] == confined
    paths = RepoPaths(repo).program("p").run(started["run_id"].split("/", 1)[1])
    check_invariants(h, paths)
    shown = json.loads(expd("status", "--json", cwd=repo).stdout)
    assert shown["sandbox"] == confined and shown["confined"] is (confined != "none")
    text = expd("status", cwd=repo).stdout
    assert f"sandbox   {confined}" in text or confined == "none"

    repo = make_repo(tmp_path / "unconfined", max_experiments=1, agent_sh=agent, sandbox="none")
    add_user_work(repo)
    h = prepare(repo)
    proc = expd("start", "p", cwd=repo, env=h.env())
    assert proc.returncode == 0, proc.stderr
    assert "sandbox  UNCONFINED" in proc.stdout, proc.stdout
    run = json.loads(expd("list", "--json", cwd=repo).stdout)[0]["runs"][0]
    check_invariants(h, RunPaths(Path(run["run_dir"])))
    shown = json.loads(expd("status", "--json", cwd=repo).stdout)
    assert shown["sandbox"] == "none" and shown["confined"] is False
    assert "UNCONFINED" in expd("status", cwd=repo).stdout
    assert "**Sandbox**: UNCONFINED" in expd("report", cwd=repo).stdout


def test_start_refuses_a_sandbox_that_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a backend this machine lacks is one clear line at `expd start`, nothing made
    (no run starts, so the five invariants do not apply)."""
    from shared.cli.main import main

    missing = sandbox.Probe("bwrap", False, "bwrap is not installed (the bubblewrap package)")
    monkeypatch.setattr(sandbox, "probe_bwrap", lambda: missing)
    repo = make_repo(tmp_path / "repo", max_experiments=1, sandbox="bwrap")
    monkeypatch.chdir(repo)
    assert main(["start", "p"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sandbox = 'bwrap' is not available" in err, err
    assert not any(RepoPaths(repo).program("p").runs_dir.iterdir())


def test_agents_names_the_sandbox(tmp_path: Path) -> None:
    """`expd agents` only (no run)."""
    proc = expd("agents", "--json", cwd=tmp_path)
    rows = json.loads(proc.stdout)
    assert {row["sandbox"] for row in rows} == {sandbox.resolve("auto").backend}
    text = expd("agents", cwd=tmp_path).stdout
    assert "\nsandbox: " in text and "  bwrap " in text and "  landlock " in text


# --------------------------------------------------------------------------- the agent's lifetime

WAITING = (
    AGENT_SH
    + r"""
echo "the daemon's key: $HOSTILE_CANARY_KEY"
( setsid bash -c "exec -a hostile-waiter-$HOSTILE_MARK sleep 300" </dev/null >/dev/null 2>&1 & )
echo READY
exec -a "hostile-main-$HOSTILE_MARK" sleep 300
"""
)


def waiting_run(tmp_path: Path, backend: str) -> tuple[Hostile, RunPaths]:
    """A run whose agent leaves a detached sleeper, says READY, then waits for ever."""
    if not available(backend):
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    repo = make_repo(tmp_path / "repo", max_experiments=3, agent_sh=WAITING, sandbox=backend)
    h, paths = hostile_start(add_user_work(repo))
    wait_for(lambda: "READY" in paths.agent_log(1).read_text(), 15, "the agent to say it is ready")
    wait_for(lambda: len(survivors(h.mark)) == 2, 5, "the agent and its detached sleeper")
    return h, paths


@pytest.mark.parametrize("backend", ["bwrap", "landlock"])
def test_abort_ends_the_confined_agent_and_what_it_detached(tmp_path: Path, backend: str) -> None:
    h, paths = waiting_run(tmp_path, backend)
    began = time.monotonic()
    assert expd("abort", f"p/{paths.dir.name}", cwd=h.repo).returncode == 0
    final = finished(paths, timeout=10)
    assert final.termination_reason == "aborted"
    assert survivors(h.mark) == []
    assert time.monotonic() - began < 5
    check_invariants(h, paths)


def test_a_dead_daemon_takes_its_bwrap_agent_with_it(tmp_path: Path) -> None:
    """`--die-with-parent` and the PID namespace: not even a resume is needed to end them. The
    daemon is killed on purpose, so the run does not end by itself: only what it left running
    is checked."""
    h, paths = waiting_run(tmp_path, "bwrap")
    os.kill(codec.read(paths.daemon_json, DaemonInfo).pid, signal.SIGKILL)
    wait_for(lambda: survivors(h.mark) == [], 5, "the sandbox to die with the daemon")


async def test_an_exit_while_a_child_holds_stdout_is_done_not_timed_out(tmp_path: Path) -> None:
    """Reading stops a moment after the main process exits; the holder is killed. (`children.run`
    alone; the whole-run hostile agent above holds its stdout too.)"""
    command = "sleep 300 & echo done"
    started = time.monotonic()
    result = await children.run(command, cwd=tmp_path, env=dict(os.environ), timeout=20)
    assert not result.timed_out and result.returncode == 0
    assert result.stdout == "done"
    assert time.monotonic() - started < 5


def test_bwrap_mounts_hide_the_repository_and_bind_the_tree_back(tmp_path: Path) -> None:
    """The mount operations alone (no run)."""
    repo, tree, objects = tmp_path / "r", tmp_path / "r" / ".expd" / "wt", tmp_path / "r" / ".git"
    for path in (tree, objects / "objects", tmp_path / "state"):
        path.mkdir(parents=True)
    c = sandbox.Confinement(
        tree=tree,
        hidden=(repo, repo / ".expd", tmp_path / "state"),
        readonly=(objects / "objects",),
    )
    ops = sandbox.Sandbox("bwrap", c, ("bwrap",)).wrap(["true"], cwd=tree, tmp=tmp_path / "t")
    flat = " ".join(ops)
    view = "--ro-bind / / --dev /dev --proc /proc"
    assert flat.startswith(f"bwrap {view} --bind {tmp_path / 't'} /tmp --tmpfs {repo} ")
    # A measurement keeps the host's device nodes (GPUs): /dev is bound, not made afresh.
    measuring = sandbox.Sandbox("bwrap", replace(c, host_dev=True), ("bwrap",))
    flat = " ".join(measuring.wrap(["true"], cwd=tree, tmp=tmp_path / "t"))
    assert flat.startswith("bwrap --ro-bind / / --dev-bind /dev /dev --proc /proc --bind ")
    flat = " ".join(ops)
    assert f"--tmpfs {repo / '.expd'}" not in flat  # inside a hidden one already
    assert flat.index(f"--tmpfs {repo} ") < flat.index(f"--bind {tree} {tree}")
    assert f"--ro-bind {objects / 'objects'}" in flat and f"--tmpfs {tmp_path / 'state'}" in flat
    assert flat.endswith(f"--remount-ro {tmp_path / 'state'} --chdir {tree} -- true")


@pytest.mark.parametrize("backend", ["bwrap", "landlock"])
async def test_a_confined_agent_that_times_out_is_ended_whole(tmp_path: Path, backend: str) -> None:
    """`children.run` under a sandbox alone (no run): what outlives a timeout is ended."""
    if not available(backend):
        pytest.skip(f"{backend} is not available here: {sandbox.probe(backend).detail}")
    mark = uuid.uuid4().hex[:12]
    confined = sandbox.make(
        sandbox.Choice(backend, "", sandbox.probe(backend).argv), sandbox.Confinement(tree=tmp_path)
    )
    command = f"exec -a hostile-timeout-{mark} sleep 300"
    result = await children.run(
        command, cwd=tmp_path, env=dict(os.environ), timeout=1, sandbox=confined
    )
    assert result.timed_out
    wait_for(lambda: survivors(mark) == [], 5, "the timed-out agent to be killed")


def test_the_dashboard_says_unconfined_in_its_phase_bar() -> None:
    """The phase bar alone (no run)."""
    from tui.widgets.phase_bar import PhaseView, phase_line

    def line(backend: str) -> str:
        return phase_line(PhaseView(state=RunState(phase="idle", sandbox=backend)), 0.0).plain

    assert "UNCONFINED" in line("none")
    assert "UNCONFINED" not in line("bwrap") and "UNCONFINED" not in line("")


def test_a_daemons_socket_is_out_of_reach_under_bwrap(tmp_path: Path) -> None:
    """A read-only file system still lets a process connect to a socket: /dev/null covers it."""
    import socket
    import subprocess

    if not available("bwrap"):
        pytest.skip(f"bwrap is not available here: {sandbox.probe('bwrap').detail}")
    path = tmp_path / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    tree = tmp_path / "tree"
    tree.mkdir()
    box = sandbox.make(sandbox.resolve("bwrap"), sandbox.Confinement(tree=tree, hidden=(path,)))
    probe = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
    argv = box.wrap(["python3", "-c", probe], cwd=tree, tmp=tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    server.close()
    assert done.returncode != 0 and "ConnectionRefusedError" in done.stderr, done.stderr


def test_a_runs_confinement_shows_only_the_objects_its_tree_borrows(tmp_path: Path) -> None:
    """The agent's tree borrows the user's objects (and what they borrow in turn): those are
    shown read-only; the rest of the user's repository and expd's own paths are hidden; only
    the tree is writable. A linked worktree's main git dir and main checkout are hidden too."""
    from daemon.ops.confine import run_confinement

    shared = tmp_path / "shared-objects"
    shared.mkdir()
    main = make_repo(tmp_path / "main")
    (main / ".git" / "objects" / "info" / "alternates").write_text(f"{shared}\n")
    tree = main / ".expd" / "worktrees" / "p-1"
    tree.mkdir(parents=True)
    private = (main / ".expd" / "programs" / "p", main / ".expd" / "eval" / "p-1")
    c = run_confinement(main, tree, private)
    assert c.tree == tree.resolve() and c.writable == ()
    assert c.readonly == ((main / ".git" / "objects").resolve(), shared.resolve())
    assert {main.resolve(), (main / ".git").resolve(), *(p.resolve() for p in private)} <= set(
        c.hidden
    )

    linked = tmp_path / "linked"
    git(main, "worktree", "add", "-q", str(linked))
    c = run_confinement(linked, linked / ".expd" / "worktrees" / "p-1", ())
    assert c.readonly[0] == (main / ".git" / "objects").resolve()
    assert {linked.resolve(), (main / ".git").resolve(), main.resolve()} <= set(c.hidden)
