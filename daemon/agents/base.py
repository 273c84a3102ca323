"""The one interface every agent kind implements, and the typed events they stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from daemon.ops.sandbox import UNCONFINED, Sandbox
from shared.schema import ResultRecord


class AgentEvent(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of what an agent streams; written to `agent/NNNN.log` and `events.jsonl`."""


class Text(AgentEvent, tag="text"):
    text: str
    stream: str = "stdout"


class ToolUse(AgentEvent, tag="tool_use"):
    name: str
    input: dict[str, Any] = {}


class ToolResult(AgentEvent, tag="tool_result"):
    name: str = ""
    output: str = ""
    is_error: bool = False


class Usage(AgentEvent, tag="usage"):
    cost_usd: float = 0.0
    tokens: int = 0


class AgentErrorEvent(AgentEvent, tag="error"):
    message: str
    error_class: str = "other"


class Final(AgentEvent, tag="result"):
    description: str = ""
    session_id: str | None = None


Emit = Callable[[AgentEvent], None]


@dataclass
class AgentTask:
    """One experiment for an agent to carry out."""

    experiment: int
    worktree: Path
    run_dir: Path
    prompt: str
    prompt_file: Path
    timeout: float
    env: dict[str, str]
    on_process_start: Callable[[int], None] = lambda pgid: None
    sandbox: Sandbox = UNCONFINED
    """Where the agent's processes may write and what they may see (see daemon/ops/sandbox.py)."""
    purpose: str = "experiment"
    """`experiment` (one change in a program's loop), `task` (a bakeoff attempt: do the task,
    end with the final answer) or `draft` (`expd init --draft`: write a program's files in a
    scratch folder): the adapters frame the prompt accordingly."""
    title: str = ""
    """How the attempt is named to the agent's CLI (a session title); empty: `experiment N`."""

    @property
    def name(self) -> str:
        return self.title or f"experiment {self.experiment}"


@dataclass
class AgentOutcome:
    """What the agent reports back; the daemon still inspects git for what really changed."""

    description: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    session_id: str | None = None
    error: str | None = None
    timed_out: bool = False
    unavailable: bool = False
    """The agent cannot run at all (missing executable): the run stops after this one."""
    error_class: str | None = None
    """Set for provider failures (auth, quota, rate_limit, transient, other): the experiment is
    retried under the same number instead of being recorded as a crash."""
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AgentUnavailable(Exception):
    """The agent cannot run at all (missing executable, bad configuration): the run stops."""


class Agent(Protocol):
    kind: str

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        """Make one change in `task.worktree` (committing is optional: the daemon commits)."""
        ...

    async def feedback(self, record: ResultRecord) -> None:
        """Tell the agent how its experiment ended (the `tune` agent learns from this)."""
        ...

    async def recover(self, interrupted: int) -> None:
        """On resume: forget experiment `interrupted`, which never finished."""
        ...

    def switch_model(self, model: str) -> None:
        """Use `model` from now on (after the provider reported a quota exhausted)."""
        ...

    async def close(self) -> None: ...


class StatelessAgent:
    """The Agent protocol's bookkeeping for agents that start every experiment afresh."""

    model: str | None = None

    async def feedback(self, record: ResultRecord) -> None:
        """Nothing to learn between experiments: each one starts a fresh session."""

    async def recover(self, interrupted: int) -> None:
        """No state outside the session, which died with the previous daemon."""

    def switch_model(self, model: str) -> None:
        self.model = model

    async def close(self) -> None:
        """Nothing held open between experiments."""


def render(event: AgentEvent) -> str:
    """The human-readable line for `agent/NNNN.log`."""
    match event:
        case Text(text=text, stream="stderr"):
            return f"! {text}"
        case Text(text=text):
            return text
        case ToolUse(name=name, input=args):
            return f"→ {name} {msgspec.json.encode(args).decode()[:500]}"
        case ToolResult(name=name, output=output, is_error=is_error):
            mark = "✗" if is_error else "←"
            return f"{mark} {name} {output[:500]}"
        case Usage(cost_usd=cost, tokens=tokens):
            return f"[usage] ${cost:.4f} {tokens} tokens"
        case AgentErrorEvent(message=message, error_class=cls):
            return f"[error:{cls}] {message}"
        case Final(description=description):
            return f"[done] {description}"
    return repr(event)
