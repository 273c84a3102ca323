"""`expd agents`: which agent kinds can run here, with what executable, version and model, and
which sandbox would confine them (the daemon's probe is imported only here, lazily)."""

from __future__ import annotations

import argparse
import json

from shared import agent_kinds
from shared.display import sandbox_line
from shared.paths import RepoPaths, find_repo_root
from shared.programs import load_program
from shared.schema import AgentConfig


def cmd_agents(args: argparse.Namespace) -> int:
    configured: AgentConfig | None = None
    if args.program:
        configured = load_program(RepoPaths(find_repo_root()).program(args.program)).agent
    sandbox, detail, backends = _sandbox(configured.sandbox if configured else "auto")
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
                "sandbox": sandbox,
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
    print(f"\nsandbox: {sandbox_line(sandbox) if sandbox else 'NOT AVAILABLE'}")
    if sandbox in (None, "none"):
        print(f"  ({detail})")
    for name, ok, why in backends:
        print(f"  {name:<{width}}{'ready  ' if ok else 'missing'}  {why}")
    return 0


def _sandbox(mode: str) -> tuple[str | None, str, list[tuple[str, bool, str]]]:
    """(the backend `mode` resolves to or None, why, each backend's probe) on this machine."""
    from daemon.ops.sandbox import SandboxUnavailable, probe, resolve

    backends = [(p.name, p.ok, p.detail) for p in map(probe, ("bwrap", "landlock"))]
    try:
        choice = resolve(mode)
    except SandboxUnavailable as exc:
        return None, str(exc), backends
    return choice.backend, choice.detail, backends
