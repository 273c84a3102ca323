"""Which adapter serves which agent kind; each is imported only when chosen, so a `command` run
never pays for Optuna or httpx."""

from __future__ import annotations

from pathlib import Path

from daemon.agents.base import Agent, AgentUnavailable
from shared.schema import ProgramConfig


def make_agent(config: ProgramConfig, *, kind: str, model: str | None, run_dir: Path) -> Agent:
    """The adapter for `kind`; imports lazily so a `command` run never pays for Optuna."""
    if kind == "command":
        from daemon.agents.command import CommandAgent

        return CommandAgent(config)
    if kind == "tune":
        from daemon.agents.tune import TuneAgent

        return TuneAgent(config, run_dir=run_dir)
    if kind == "claude":
        from daemon.agents.claude import ClaudeAgent

        return ClaudeAgent(config, model=model)
    if kind == "codex":
        from daemon.agents.codex import CodexAgent

        return CodexAgent(config, model=model)
    if kind == "opencode":
        from daemon.agents.opencode import OpenCodeAgent

        return OpenCodeAgent(config, model=model)
    if kind == "openai":
        from daemon.agents.openai import OpenAIAgent

        return OpenAIAgent(config, model=model)
    raise AgentUnavailable(f"unknown agent kind {kind!r}")
