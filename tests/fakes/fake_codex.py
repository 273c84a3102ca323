#!/usr/bin/env python3
"""A stand-in for the `codex` CLI: replays a `codex exec --json` sample captured from the real one.

Configured through the environment (tests set it with `[agent] env`):
  FAKE_CODEX_SAMPLE   a sample name in tests/samples/codex, or a path to a .jsonl file
  FAKE_CODEX_EDIT     a shell command run in the worktree first (the change the replay stands for)
  FAKE_CODEX_LINES    print only the first N lines of the sample (a truncated stream)
  FAKE_CODEX_GARBAGE  "1": interleave malformed and unknown lines
  FAKE_CODEX_STDERR   text to print on stderr
  FAKE_CODEX_HANG     "1": then hang (with a child process that hangs too)
  FAKE_CODEX_EXIT     exit code, or "kill" to die of SIGKILL (default: 1 if the turn failed)
  FAKE_CODEX_RECORD   a file to write what it was given: argv, stdin, CODEX_HOME, which keys were set
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "codex"
GARBAGE = [
    "not json at all",
    '{"type": "item.completed", "item": ',
    "[1, 2, 3]",
    '{"type": "something.new", "payload": {"x": 1}}',
    '{"type": "item.completed", "item": "not an object"}',
    '{"type": "error"}',
    '{"type": "item.started", "item": {"id": "x9", "type": "future_tool", "detail": [1]}}',
    "",
]


def main() -> int:
    argv = sys.argv[1:]
    worktree = argv[argv.index("--cd") + 1] if "--cd" in argv else os.getcwd()
    prompt = sys.stdin.read() if argv and argv[-1] == "-" else ""
    env = os.environ
    if env.get("FAKE_CODEX_RECORD"):
        record = {
            "argv": argv,
            "stdin": prompt,
            "cwd": os.getcwd(),
            "codex_home": env.get("CODEX_HOME"),
            "keys_set": sorted(k for k in ("CODEX_API_KEY", "OPENAI_API_KEY") if env.get(k)),
        }
        Path(env["FAKE_CODEX_RECORD"]).write_text(json.dumps(record))
    if env.get("FAKE_CODEX_EDIT"):
        subprocess.run(env["FAKE_CODEX_EDIT"], shell=True, cwd=worktree, check=True)
    name = env.get("FAKE_CODEX_SAMPLE", "edit_shell")
    path = Path(name) if name.endswith(".jsonl") else SAMPLES / f"{name}.jsonl"
    lines = path.read_text().replace("@WORKTREE@", worktree).splitlines()
    if env.get("FAKE_CODEX_LINES"):
        lines = lines[: int(env["FAKE_CODEX_LINES"])]
    for i, line in enumerate(lines):
        if env.get("FAKE_CODEX_GARBAGE") == "1":
            print(GARBAGE[i % len(GARBAGE)], flush=True)
        print(line, flush=True)
    if env.get("FAKE_CODEX_STDERR"):
        print(env["FAKE_CODEX_STDERR"], file=sys.stderr, flush=True)
    if env.get("FAKE_CODEX_HANG") == "1":
        subprocess.Popen(["sleep", "300"])
        time.sleep(300)
    code = env.get("FAKE_CODEX_EXIT")
    if code == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if code is not None:
        return int(code)
    return 1 if any('"turn.failed"' in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
