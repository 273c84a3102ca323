"""`expd agents`: which agent kinds can run here, with what executable, version and model."""

from __future__ import annotations

import argparse
import json

from shared import agent_kinds
from shared.paths import RepoPaths, find_repo_root
from shared.programs import load_program
from shared.schema import AgentConfig


def cmd_agents(args: argparse.Namespace) -> int:
    configured: AgentConfig | None = None
    if args.program:
        configured = load_program(RepoPaths(find_repo_root()).program(args.program)).agent
    rows = []
    for name in agent_kinds.KINDS:
        if configured is not None and configured.kind == name:
            config = configured
        else:
            config = AgentConfig(kind=name, model=configured.model if configured else None)
            if configured is not None and name == "openai":
                config = AgentConfig(kind=name)
        available = agent_kinds.check(config, with_version=True)
        rows.append(
            {
                "kind": name,
                "available": available.ok,
                "detail": available.detail,
                "executable": available.executable,
                "version": available.version,
                "model": available.model,
                "selected": configured is not None and configured.kind == name,
                "summary": agent_kinds.KINDS[name].summary,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["kind"]) for r in rows) + 2
    for r in rows:
        mark = "*" if r["selected"] else " "
        state = "ready  " if r["available"] else "missing"
        extra = [r["detail"]]
        if r["version"]:
            extra.append(f"version {r['version']}")
        if r["model"]:
            extra.append(f"model {r['model']}")
        print(f"{mark} {r['kind']:<{width}}{state}  {' · '.join(extra)}")
        print(f"  {'':<{width}}         {r['summary']}")
    if configured is not None:
        print(f"\n* = the kind program {args.program!r} uses")
    return 0
