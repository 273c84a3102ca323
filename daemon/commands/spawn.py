"""`expd start` and `expd resume`: create the run, spawn the detached daemon, wait until it is alive.

Starting follows tmux's order — check, lock, check again, then start — so two racing starts of the
same program cannot both run: starts are serialised by `start.lock`, and a running daemon holds the
program's `active.lock` for its whole life.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

import daemon
from daemon.commands.carry import carry_forward
from daemon.commands.validate import recent_calibration
from daemon.ops.git.lookup import is_tracked, repo_head
from daemon.ops.git.run_trees import create_trees, remove_trees, run_trees
from daemon.ops.reaper import is_zombie
from daemon.ops.sandbox import Choice, SandboxUnavailable, resolve
from daemon.policies.noise import start_note
from shared import __version__, agent_kinds, codec, runs, seal
from shared.arms import arms_of
from shared.atomic import write_atomic
from shared.errors import ContractError, UserError
from shared.liveness import pid_alive
from shared.locking import is_locked, lock_blocking, unlock
from shared.paths import (
    ProgramPaths,
    RepoPaths,
    RunPaths,
    branch_name,
    check_program_name,
    find_repo_root,
    run_id,
)
from shared.programs import exclude_expd, file_digests, load_program
from shared.schema import (
    AGENT_KINDS,
    TERMINAL_PHASES,
    DaemonInfo,
    ProgramConfig,
    RunManifest,
    RunState,
)
from shared.tail import last_lines

ALIVE_TIMEOUT_S = 15.0
_SHELL_WORDS = {"cd", "export", "source", ".", "exec", "eval", "set", "true", ":", "env", "time"}


@dataclass
class Started:
    run_id: str
    pid: int
    worktree: Path
    branch: str
    run_dir: Path
    sandbox: str = "none"
    """The backend confining the agent (bwrap, landlock or none) and why, for people."""
    sandbox_detail: str = ""
    noise: str = ""
    """The noise warning a recent calibration gives (empty: none, or the noise is fine)."""


def check_agent(config: ProgramConfig, repo: Path) -> None:
    """Refuse an agent that cannot run, before anything is created."""
    if config.agent.kind not in AGENT_KINDS:
        raise UserError(
            f"unknown agent kind {config.agent.kind!r}: use one of {', '.join(AGENT_KINDS)}"
        )
    if config.agent.kind != "command":
        available = agent_kinds.check(config.agent)
        if not available.ok:
            raise UserError(f"agent kind {config.agent.kind!r} cannot run: {available.detail}")
        return
    command = (config.agent.command or "").strip()
    if not command:
        raise UserError("agent kind 'command' needs [agent] command in program.toml")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"[agent] command is not valid shell ({exc})") from None
    words = [w for w in words if not ("=" in w and not w.startswith(("/", ".")))]
    if not words or words[0] in _SHELL_WORDS:
        return
    exe = words[0]
    if "/" in exe:
        path = Path(exe) if os.path.isabs(exe) else repo / exe
        if not path.exists():
            raise UserError(f"agent command not found: {exe} (from [agent] command {command!r})")
        if not os.path.isabs(exe) and not is_tracked(repo, exe):
            raise UserError(
                f"agent command {exe} is not committed, so the run's worktree will not have it"
            )
    elif shutil.which(exe) is None:
        raise UserError(
            f"agent command not found on PATH: {exe} (from [agent] command {command!r})"
        )


def check_ray(config: ProgramConfig) -> None:
    """`[lanes] executor = 'ray'`: Ray installed, only agents a worker can run, and a measurement
    command (a measure.sh lives on this machine, not on the workers)."""
    if config.lanes.executor != "ray":
        return
    try:
        from daemon.ray.cluster import options
    except ImportError:
        raise UserError(
            "[lanes] executor = 'ray' needs the ray extra: pip install 'expd[ray]'"
        ) from None
    for arm in arms_of(config):
        if arm.agent.kind != "command":
            raise UserError(
                f"[lanes] executor = 'ray' runs only 'command' agents (arm {arm.id!r} is "
                f"{arm.agent.kind!r})"
            )
    if config.agent.kind != "command":
        raise UserError(
            f"[lanes] executor = 'ray' runs only 'command' agents, not {config.agent.kind!r}"
        )
    if not (config.measure.command or "").strip():
        raise UserError("[lanes] executor = 'ray' needs [measure] command (it runs on the workers)")
    for key in ("agent_resources", "measure_resources"):
        try:
            options(getattr(config.lanes, key))
        except ValueError as exc:
            raise UserError(f"[lanes] {key}: {exc}") from None


def check_arms_can_run(config: ProgramConfig, repo: Path) -> None:
    """Every arm's agent and sandbox can run here, before anything is created (an arm that cannot
    would only be paused after its first experiment crashed)."""
    for arm in arms_of(config):
        try:
            check_agent(msgspec.structs.replace(config, agent=arm.agent), repo)
            check_sandbox(arm.agent.sandbox)
        except UserError as exc:
            raise UserError(f"arm {arm.id!r}: {exc}") from None


def check_sandbox(mode: str, key: str = "[agent] sandbox") -> Choice:
    """The sandbox `key` (`[agent]` or `[measure] sandbox`) resolves to here; a clear error when
    it cannot run."""
    try:
        return resolve(mode, key)
    except SandboxUnavailable as exc:
        raise UserError(str(exc)) from None


def _new_stamp(program: ProgramPaths) -> str:
    base = time.strftime("%Y%m%d-%H%M%S")
    stamp, n = base, 1
    while program.run(stamp).dir.exists():
        n += 1
        stamp = f"{base}-{n}"
    return stamp


FINISHING_WAIT_S = 60.0
"""How long a start waits for a daemon whose run is over but which is still exiting (closing its
agents, giving back its trees): a client that saw `finished` and starts again is not refused."""


def _busy(program: ProgramPaths) -> bool:
    """Whether a run of `program` is active; a run already over only delays the answer."""
    deadline = time.monotonic() + FINISHING_WAIT_S
    while is_locked(program.active_lock):
        if time.monotonic() > deadline or not all(
            _over(RunPaths(d))
            for d in program.runs_dir.glob("*")
            if is_locked(RunPaths(d).daemon_lock)
        ):
            return True
        time.sleep(0.05)
    return False


def _over(paths: RunPaths) -> bool:
    try:
        state = codec.read_optional(paths.state_json, RunState)
    except ContractError:
        return False
    return state is not None and state.phase in TERMINAL_PHASES


def _active_run(program: ProgramPaths) -> str:
    for run_dir in sorted(program.runs_dir.glob("*"), reverse=True):
        if is_locked(RunPaths(run_dir).daemon_lock):
            return run_id(program.name, run_dir.name)
    return "(unknown)"


def start_run(
    repo_root: Path,
    program: str,
    *,
    max_experiments: int | None = None,
    agent: str | None = None,
    model: str | None = None,
    fresh: bool = False,
) -> Started:
    """Launch a new run; unless `fresh`, its agents hear what earlier runs of it found."""
    repo = RepoPaths(find_repo_root(repo_root))
    prog = repo.program(check_program_name(program))
    config = load_program(prog)
    if agent is not None:
        config.agent.kind = agent
    if model is not None:
        config.agent.model = model
    if max_experiments is not None and max_experiments < 0:
        raise UserError("--max-experiments must be ≥ 0")
    check_ray(config)
    check_agent(config, repo.root)
    sandbox = check_sandbox(config.agent.sandbox)
    check_arms_can_run(config, repo.root)
    measuring = check_sandbox(config.measure.sandbox, "[measure] sandbox")
    base = repo_head(repo.root)
    lock = lock_blocking(prog.start_lock)
    try:
        if _busy(prog):
            raise UserError(
                f"program {program!r} already has an active run: {_active_run(prog)} "
                "(stop it first, or wait for it to finish)"
            )
        stamp = _new_stamp(prog)
        paths = prog.run(stamp)
        rid = run_id(program, stamp)
        worktree = repo.worktree(program, stamp)
        branch = branch_name(program, stamp)
        manifest = RunManifest(
            run_id=rid,
            program=program,
            repo=str(repo.root),
            program_dir=str(prog.dir),
            worktree=str(worktree),
            branch=branch,
            base_commit=base,
            program_files=file_digests(prog),
            created_at=time.time(),
            expd_version=__version__,
            config=codec.to_builtins(config),
            max_experiments=(
                config.loop.max_experiments if max_experiments is None else max_experiments
            ),
            agent_kind=config.agent.kind,
            agent_model=config.agent.model,
            calibration=recent_calibration(prog),
            carry_forward="" if fresh else carry_forward(prog),
            sandbox=sandbox.backend,
            measure_sandbox=measuring.backend,
        )
        exclude_expd(repo.root)  # runs and trees must never show up in the user's checkout
        paths.dir.mkdir(parents=True)
        # The key before the daemon: a control request sent the moment `start` returns is sealed.
        seal.create_key(paths)
        agent_tree, eval_tree = run_trees(paths, manifest)
        try:
            create_trees(agent_tree, eval_tree, base)
            write_atomic(paths.run_json, codec.encode(manifest))
            pid = _spawn(paths)
        except BaseException:
            remove_trees(agent_tree, eval_tree)
            shutil.rmtree(paths.dir, ignore_errors=True)
            raise
        runs.register(paths, repo.root, rid)
    finally:
        unlock(lock)
    noise = start_note(config, manifest.calibration) or ""
    return Started(rid, pid, worktree, branch, paths.dir, sandbox.backend, sandbox.detail, noise)


def resume_run(run_dir: Path) -> Started:
    paths = RunPaths(run_dir)
    manifest = codec.read(paths.run_json, RunManifest)
    if is_locked(paths.daemon_lock):
        raise UserError(f"run {manifest.run_id} is already running")
    try:
        state = codec.read_optional(paths.state_json, RunState)
    except ContractError:
        state = None  # unreadable: the daemon rebuilds it from results.jsonl
    if state is not None and state.phase == "complete":
        reason = state.termination_reason or "complete"
        raise UserError(
            f"run {manifest.run_id} is complete ({reason}); start a new run with "
            f"`expd start {manifest.program}`"
        )
    repo = Path(manifest.repo)
    prog = ProgramPaths(repo, manifest.program)
    load_program(prog)
    agent = manifest.config.get("agent")
    sandbox = check_sandbox(str((agent if isinstance(agent, dict) else {}).get("sandbox", "auto")))
    measure = manifest.config.get("measure")
    check_sandbox(
        str((measure if isinstance(measure, dict) else {}).get("sandbox", "auto")),
        "[measure] sandbox",
    )
    lock = lock_blocking(prog.start_lock)
    try:
        if _busy(prog):
            raise UserError(
                f"program {manifest.program!r} already has an active run: {_active_run(prog)}"
            )
        # The trees (and expd's git dirs for them) are repaired by the daemon as it starts.
        if not paths.results.exists() or b'"baseline"' not in paths.results.read_bytes()[:4096]:
            # No baseline yet: whatever the program files are now is what this run measures.
            manifest.program_files = file_digests(prog)
            write_atomic(paths.run_json, codec.encode(manifest))
        pid = _spawn(paths)
    finally:
        unlock(lock)
    return Started(
        run_id=manifest.run_id,
        pid=pid,
        worktree=Path(manifest.worktree),
        branch=manifest.branch,
        run_dir=paths.dir,
        sandbox=sandbox.backend,
        sandbox_detail=sandbox.detail,
    )


def _spawn(paths: RunPaths) -> int:
    """Launch `python -m daemon RUN_DIR` detached (own session, reparented to init)."""
    env = dict(os.environ)
    source_root = str(Path(daemon.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    env["EXPD_DAEMON_LOG"] = str(paths.daemon_log)
    launcher = subprocess.run(
        [
            "/bin/sh",
            "-c",
            '"$@" </dev/null >>"$EXPD_DAEMON_LOG" 2>&1 & echo $!',
            "sh",
            sys.executable,
            "-m",
            "daemon",
            str(paths.dir),
        ],
        cwd=paths.dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    try:
        pid = int(launcher.stdout.strip())
    except ValueError:
        raise UserError(f"could not launch the daemon: {launcher.stderr.strip()}") from None
    _wait_alive(paths, pid)
    return pid


def _wait_alive(paths: RunPaths, pid: int) -> None:
    deadline = time.monotonic() + ALIVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if paths.daemon_json.exists() and is_locked(paths.daemon_lock):
            try:
                info = codec.read(paths.daemon_json, DaemonInfo)
            except UserError:
                info = None
            if info is not None and info.pid == pid:
                return
        if not pid_alive(pid) or is_zombie(pid):
            break
        time.sleep(0.01)
    tail = [line.decode(errors="replace") for line in last_lines(paths.daemon_log, 3)]
    detail = tail[-1] if tail else "no output"
    if pid_alive(pid) and not is_zombie(pid):
        os.kill(pid, signal.SIGKILL)  # the caller cleans up; a late daemon must not run on
        raise UserError(f"the daemon did not report alive within {ALIVE_TIMEOUT_S:g}s ({detail})")
    raise UserError(f"the daemon exited at start-up: {detail} (see {paths.daemon_log})")
