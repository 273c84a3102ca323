#!/usr/bin/env python3
"""A stand-in for the `claude` CLI that replays a stream-json sample captured from the real one.

Configured through the environment (the adapter passes `[agent] env` through):
  FAKE_CLAUDE_SAMPLE   the .jsonl to replay; `{{WORKTREE}}` becomes the current directory
  FAKE_CLAUDE_MODE     comma-separated: `malformed` (junk between lines), `truncate` (stop before
                       the result), `hang` (stop before the result, start a child, sleep forever)
  FAKE_CLAUDE_STDERR   written to stderr first; FAKE_CLAUDE_EXIT: the exit code (default 0)
  FAKE_CLAUDE_RECORD   where to write {"argv": [...], "stdin": "...", "env": {names only}}
  FAKE_CLAUDE_PIDS     where `hang` writes its pid, its child's and its process group
Like the real CLI, it refuses stream-json output without --verbose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

JUNK = ["not json at all", '{"type": "assistant", "message": {"content": [', "[1, 2, 3]", ""]


def main() -> int:
    argv = sys.argv[1:]
    if "-p" not in argv and "--print" not in argv:
        print("fake claude only runs headless (-p)", file=sys.stderr)
        return 2
    if "stream-json" in argv and "--verbose" not in argv:
        print(
            "Error: When using --print, --output-format=stream-json requires --verbose",
            file=sys.stderr,
        )
        return 1
    stdin = sys.stdin.read()
    env = os.environ
    if env.get("FAKE_CLAUDE_RECORD"):
        record = {"argv": argv, "stdin": stdin, "env": sorted(env), "cwd": os.getcwd()}
        Path(env["FAKE_CLAUDE_RECORD"]).write_text(json.dumps(record))
    if env.get("FAKE_CLAUDE_STDERR"):
        print(env["FAKE_CLAUDE_STDERR"], file=sys.stderr, flush=True)
    modes = set(filter(None, env.get("FAKE_CLAUDE_MODE", "").split(",")))
    sample = Path(env["FAKE_CLAUDE_SAMPLE"]).read_text().replace("{{WORKTREE}}", os.getcwd())
    lines = sample.splitlines()
    if modes & {"truncate", "hang"}:
        lines = [line for line in lines if '"type":"result"' not in line]
    if "hang" in modes:  # the child first: the adapter may kill the group while lines flow
        child = subprocess.Popen(["sleep", "300"])
        if env.get("FAKE_CLAUDE_PIDS"):
            pids = f"{os.getpid()} {child.pid} {os.getpgid(0)}"
            Path(env["FAKE_CLAUDE_PIDS"]).write_text(pids)
    for i, line in enumerate(lines):
        if "malformed" in modes:
            print(JUNK[i % len(JUNK)], flush=True)
        print(line, flush=True)
    while "hang" in modes:
        time.sleep(60)
    return int(env.get("FAKE_CLAUDE_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
