"""Real git repositories with expd programs, for tests that run the real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from shared import codec
from shared.errors import ContractError
from shared.paths import RepoPaths, RunPaths
from shared.schema import ResultRecord, RunState
from shared.tail import read_complete_lines

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}

# The agent: bumps x in f.py by one each experiment and prints what it did.
AGENT_SH = """#!/bin/bash
cat > /dev/null
n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
echo "EXPD-DESCRIPTION: x from $n to $((n + 1))"
echo "x = $((n + 1))" > f.py
${AGENT_EXTRA:-true}
"""

# The measurement: score = |x - target| + 1 (lower is better), target from $TARGET (default 3).
MEASURE_SH = """#!/bin/bash
x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
t=${TARGET:-3}
d=$(( x > t ? x - t : t - x ))
${MEASURE_EXTRA:-true}
echo "{\\"score\\": $((d + 1))}"
"""


FIXED_DECIDE = 'policy = "fixed"\nrepeats = 1\nmin_effect = 0.01'


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(
    root: Path,
    *,
    program: str = "p",
    toml_extra: str = "",
    max_experiments: int = 3,
    agent_sh: str = AGENT_SH,
    measure_sh: str = MEASURE_SH,
    agent_command: str = "./agent.sh",
    decide: str = FIXED_DECIDE,
    sandbox: str | None = None,
    keep_tree: str | None = "always",
) -> Path:
    """A committed repo with `f.py`, `agent.sh`, and a `command` program measuring `score`.

    `decide` is the `[decide]` table's body: the fixed policy with one run by default, so these
    deterministic tests count measurements exactly; the sequential default has its own tests.
    `sandbox` sets `[agent] sandbox` (default: `auto`, the agent confined). An agent that talks
    to the test through files does it in its tree's `.expd/` (ignored, and writable when confined);
    only a test of something a sandbox forbids (reaching outside the tree) needs `"none"`.
    `keep_tree` is `[loop] keep_tree`: these tests look into a run's trees after it ends, so they
    are kept unless a test asks for the product's default (None).
    """
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "f.py").write_text("x = 0\n")
    (root / "agent.sh").write_text(agent_sh)
    (root / "agent.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    prog = RepoPaths(root).program(program)
    prog.runs_dir.mkdir(parents=True)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("/.expd/\n")
    prog.toml.write_text(
        textwrap.dedent(
            f"""\
            metric = "score"
            direction = "lower"
            [decide]
            {{decide}}
            [loop]
            max_experiments = {max_experiments}
            {{keep_tree}}
            [agent]
            kind = "command"
            command = "{agent_command}"
            timeout = "20s"
            """
        )
        .replace("{decide}", decide)
        .replace("{keep_tree}", f'keep_tree = "{keep_tree}"' if keep_tree else "")
        + (f'sandbox = "{sandbox}"\n' if sandbox else "")
        + toml_extra
    )
    prog.md.write_text("# p\nMake score lower.\n")
    prog.measure_sh.write_text(measure_sh)
    return root


def measure_toml(*writable: Path, sandbox: str | None = None, extra: str = "") -> str:
    """A `[measure]` table: the folders outside the measurement tree a measurement that talks to
    the test may write (it is confined like the agent), and its sandbox when not the default."""
    lines = ["[measure]", f"writable = {[str(p) for p in writable]!r}".replace("'", '"')]
    if sandbox:
        lines.append(f'sandbox = "{sandbox}"')
    return "\n".join([*lines, extra]) + "\n"


def expd(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh interpreter, with no terminal on stdin (nothing can prompt)."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(
    repo: Path, program: str = "p", *extra: str, env: dict[str, str] | None = None
) -> RunPaths:
    proc = expd("start", program, "--json", *extra, cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    info = json.loads(proc.stdout)
    program_name, stamp = info["run_id"].split("/", 1)
    return RepoPaths(repo).program(program_name).run(stamp)


def state(paths: RunPaths) -> RunState:
    return codec.read(paths.state_json, RunState)


def results(paths: RunPaths) -> list[ResultRecord]:
    return [
        codec.decode(line, ResultRecord, source="results")
        for line in read_complete_lines(paths.results)
    ]


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> object:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, ContractError):  # e.g. state.json not written yet
            value = None
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_finished(paths: RunPaths, timeout: float = 60.0) -> RunState:
    from shared.locking import is_locked

    wait_for(
        lambda: state(paths).phase in ("complete", "crashed") and not is_locked(paths.daemon_lock),
        timeout,
        "the run to finish",
    )
    return state(paths)


def wait_dead(paths: RunPaths, timeout: float = 30.0) -> None:
    from shared.locking import is_locked

    wait_for(lambda: not is_locked(paths.daemon_lock), timeout, "the daemon to exit")


def _live_processes() -> list[tuple[int, int, Path]]:
    """(pid, pgid, /proc entry) of every live (non-zombie) process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            out.append((int(entry.name), int(fields[2]), entry))
    return out


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (an agent's or a measurement's whole tree)."""
    return [pid for pid, group, _ in _live_processes() if group == pgid]


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is inside `directory` (e.g. a run's worktree)."""
    root = str(directory.resolve())
    out = []
    for pid, _, entry in _live_processes():
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep):
            out.append(pid)
    return out
