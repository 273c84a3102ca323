"""The agent kinds expd knows, and whether each can run here (for `expd agents` and `start`).

Standard library only: `expd agents` is a read command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from shared.schema import AgentConfig


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    executable: str | None = None
    """The CLI it drives (`[agent] command` may name another path)."""
    key_envs: tuple[str, ...] = ()
    """Variables that can hold its credentials (informational: CLIs may be logged in instead)."""
    default_model: str | None = None


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("command", "any shell command; prompt on stdin and in $EXPD_PROMPT_FILE"),
        Kind("tune", "built-in offline tuner (Optuna) for parameters declared in program.toml"),
        Kind(
            "claude",
            "Claude Code CLI in headless mode (claude -p --output-format stream-json)",
            executable="claude",
            key_envs=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
        ),
        Kind(
            "codex",
            "Codex CLI (codex exec --json)",
            executable="codex",
            key_envs=("OPENAI_API_KEY", "CODEX_API_KEY"),
        ),
        Kind("opencode", "OpenCode CLI (opencode run --format json)", executable="opencode"),
        Kind(
            "openai",
            "built-in tool loop for any OpenAI-compatible chat-completions endpoint",
            key_envs=("OPENAI_API_KEY",),
        ),
    )
}


@dataclass(frozen=True)
class Availability:
    kind: str
    ok: bool
    detail: str
    model: str | None
    executable: str | None = None
    version: str | None = None


def executable_for(kind: Kind, config: AgentConfig) -> str | None:
    if kind.executable is None:
        return None
    return (config.command or "").strip() or kind.executable


def check(
    config: AgentConfig, env: Mapping[str, str] | None = None, *, with_version: bool = False
) -> Availability:
    """Can `config`'s kind run on this machine? `detail` says why not, or what it will use."""
    env = os.environ if env is None else env
    kind = KINDS.get(config.kind)
    if kind is None:
        return Availability(
            config.kind, False, f"unknown agent kind (known: {', '.join(KINDS)})", None
        )
    model = config.model or kind.default_model
    if config.kind in ("command", "tune"):
        return Availability(config.kind, True, "built in", model)
    if config.kind == "openai":
        if not config.model:
            return Availability("openai", False, "needs [agent] model", None)
        key_env = config.api_key_env or ("OPENAI_API_KEY" if not config.base_url else None)
        if key_env and not env.get(key_env):
            return Availability("openai", False, f"${key_env} is not set", model)
        where = config.base_url or "https://api.openai.com/v1"
        return Availability(
            "openai", True, f"{where} (key from ${key_env})" if key_env else where, model
        )
    if config.base_url and not config.model:
        return Availability(config.kind, False, "[agent] base_url needs [agent] model", None)
    exe = executable_for(kind, config) or ""
    path = shutil.which(exe, path=env.get("PATH"))
    if path is None:
        return Availability(config.kind, False, f"{exe} not found on PATH", model, exe)
    version = _version(path) if with_version else None
    keys = [k for k in kind.key_envs if env.get(k)]
    detail = path + (f" (key in ${keys[0]})" if keys else "")
    return Availability(config.kind, True, detail, model, path, version)


def _version(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0][:80] if lines else None
