"""A stand-in `opencode` executable replaying a stream captured from the real CLI.

Run it as `[agent] command` (through a wrapper that execs this file with Python). It reads the
prompt from stdin like `opencode run` does, and is driven by environment variables:

    FAKE_OPENCODE_SAMPLE  the `tests/samples/opencode/*.jsonl` file to print, line by line
    FAKE_OPENCODE_MODE    replay (default) | malformed (junk between the lines) |
                          truncated (the last line cut in half) | hang (one line, then sleep,
                          with a child process in the same group)
    FAKE_OPENCODE_EXIT    the exit code (default: 1 when the sample holds an error, else 0)
    FAKE_OPENCODE_STDERR  text written to stderr before exiting
    FAKE_OPENCODE_RECORD  a file to write {argv, stdin, cwd, env} to (env: OPENCODE_*, XDG_*, PWD, …)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

JUNK = ["opencode: warming up…", "{not json", "[1, 2, 3]", "", '"just a string"']


def main() -> int:
    stdin = sys.stdin.read()
    record = os.environ.get("FAKE_OPENCODE_RECORD")
    if record:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENCODE_", "XDG_")) or k in ("PWD", "FAKE_KEY", "npm_config_cache")
        }
        info = {"argv": sys.argv[1:], "stdin": stdin, "cwd": os.getcwd(), "env": env}
        Path(record).write_text(json.dumps(info))
    sample = os.environ.get("FAKE_OPENCODE_SAMPLE")
    lines = Path(sample).read_text().splitlines() if sample else []
    mode = os.environ.get("FAKE_OPENCODE_MODE", "replay")
    out = sys.stdout
    if mode == "hang":
        out.write(lines[0] + "\n" if lines else "")
        out.flush()
        subprocess.Popen(["sleep", "3600"])
        time.sleep(3600)
        return 0
    for i, line in enumerate(lines):
        if mode == "truncated" and i == len(lines) - 1:
            out.write(line[: len(line) // 2])
            break
        out.write(line + "\n")
        if mode == "malformed":
            out.write(JUNK[i % len(JUNK)] + "\n")
        out.flush()
    out.flush()
    if text := os.environ.get("FAKE_OPENCODE_STDERR"):
        sys.stderr.write(text + "\n")
    code = os.environ.get("FAKE_OPENCODE_EXIT")
    if code is not None:
        return int(code)
    errored = any('"type":"error"' in line for line in lines)
    return 1 if errored or mode == "truncated" else 0


if __name__ == "__main__":
    sys.exit(main())
