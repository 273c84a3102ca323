"""`expd mcp`: serve expd's tools to an MCP client (Claude Code, Codex, Cursor, …) over stdio.

The server works on one repository: `--repo DIR`, else the directory it was started in. The SDK
is imported only here, so no other command pays for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.errors import UserError
from shared.paths import find_repo_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--repo", metavar="DIR", help="the repository to serve (default: the current directory)"
    )


def cmd_mcp(args: argparse.Namespace) -> int:
    if args.repo:
        directory = Path(args.repo).expanduser()
        if not directory.is_dir():
            raise UserError(f"--repo: {directory} is not a directory")
        os.chdir(find_repo_root(directory.resolve()))
    if sys.stdin.isatty():
        print(
            "expd mcp: serving the Model Context Protocol on stdin/stdout: start it from an MCP "
            "client (see: docs/mcp.md); Ctrl-C quits",
            file=sys.stderr,
        )
    from shared.cli.mcp_server.server import serve

    serve()
    return 0
