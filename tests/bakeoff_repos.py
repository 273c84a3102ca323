"""Real git repositories with a bakeoff, for tests that run the real bakeoff daemon.

Task `tN` asks for `answers/tN.txt` holding `solved-tN`; its criteria check the file exists and
holds that word, in expd's criteria tree at the attempt's commit. The agents are committed shell
scripts of known skill: `solver` solves every task, `half` the tasks with an even N, `breaker`
exits 1. Each appends `task/variant/attempt` to `$MARKS` when set (a file outside the repository:
those variants run unconfined), so a test can count how often an attempt really ran.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared import codec
from shared.bakeoffs.grading import latest, read_records
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.schema import AttemptRecord, BakeoffState
from shared.locking import is_locked
from shared.schema import Event
from shared.tail import read_complete_lines
from tests.repos import git, wait_for

PREAMBLE = """#!/bin/bash
cat > /dev/null
key="$EXPD_TASK/$EXPD_VARIANT/$EXPD_ATTEMPT"
if [ -n "$MARKS" ]; then echo "$key $(date +%s.%N)" >> "$MARKS"; fi
${AGENT_EXTRA:-true}
"""
SOLVE = 'mkdir -p answers && echo "solved-$EXPD_TASK" > "answers/$EXPD_TASK.txt"\n'
AGENTS = {
    "solver": PREAMBLE + SOLVE + 'echo "EXPD-DESCRIPTION: solved $EXPD_TASK"\n',
    "half": PREAMBLE
    + "n=${EXPD_TASK#t}\nif [ $((n % 2)) -eq 0 ]; then\n  "
    + SOLVE
    + 'else\n  mkdir -p answers && echo wrong > "answers/$EXPD_TASK.txt"\nfi\n',
    "breaker": PREAMBLE + 'echo "giving up" >&2\nexit 1\n',
}


def criteria(task: str) -> str:
    exists = f"test_pass:test -f answers/{task}.txt"
    return f'["{exists}", "command:grep -q solved-{task} answers/{task}.txt"]'


def make_bakeoff_repo(
    root: Path,
    *,
    name: str = "bk",
    tasks: int = 4,
    variants: dict[str, str] | None = None,
    attempts: int = 1,
    concurrency: int = 2,
    timeout: str = "20s",
    sandbox: str | None = None,
    env: dict[str, str] | None = None,
    extra: str = "",
    agents: dict[str, str] | None = None,
    task_extra: str = "",
) -> BakeoffPaths:
    """A committed repository with agents/<kind>.sh and a bakeoff `name`: `variants` maps each
    variant id to an agent script (default: solver, half, breaker by those names)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("a repository for bakeoffs\n")
    (root / "agents").mkdir()
    for kind, script in {**AGENTS, **(agents or {})}.items():
        (root / "agents" / f"{kind}.sh").write_text(script)
        (root / "agents" / f"{kind}.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    (root / ".git" / "info" / "exclude").write_text("/.expd/\n")
    paths = BakeoffPaths(root, name)
    paths.dir.mkdir(parents=True)
    lines = [
        f"attempts = {attempts}",
        f"concurrency = {concurrency}",
        f'timeout = "{timeout}"',
        'criteria_timeout = "20s"',
        extra,
    ]
    for variant, kind in (variants or {k: k for k in AGENTS}).items():
        lines += ["[[variant]]", f'id = "{variant}"', 'kind = "command"']
        lines.append(f'command = "./agents/{kind}.sh"')
        if sandbox:
            lines.append(f'sandbox = "{sandbox}"')
        if env:
            lines.append(
                "env = {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items()) + "}"
            )
    for i in range(tasks):
        task = f"t{i}"
        lines += [
            "[[task]]",
            f'id = "{task}"',
            f'prompt = "Create answers/{task}.txt holding the word solved-{task}."',
            f"criteria = {criteria(task)}",
            task_extra,
        ]
    paths.toml.write_text("\n".join(lines) + "\n")
    return paths


def bk_state(paths: BakeoffRunPaths) -> BakeoffState:
    return codec.read(paths.state_json, BakeoffState)


def records(paths: BakeoffRunPaths) -> list[AttemptRecord]:
    return read_records(paths)


def newest(paths: BakeoffRunPaths) -> dict[str, AttemptRecord]:
    return latest(read_records(paths))


def events(paths: BakeoffRunPaths) -> list[Event]:
    return [
        codec.decode(line, Event, source="events") for line in read_complete_lines(paths.events)
    ]


def wait_done(paths: BakeoffRunPaths, timeout: float = 90.0) -> BakeoffState:
    """Until the daemon recorded its end and let go of the run."""
    wait_for(
        lambda: (
            bk_state(paths).phase in ("complete", "crashed")
            and not is_locked(paths.daemon_lock)
            and not is_locked(paths.dir)
        ),
        timeout,
        "the bakeoff run to finish",
    )
    return bk_state(paths)


def statuses(paths: BakeoffRunPaths) -> dict[str, str]:
    return {key: r.status for key, r in newest(paths).items()}


def marks(path: Path) -> list[str]:
    """The attempts that really ran (one line each time an agent started)."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
