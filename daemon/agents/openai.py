"""`openai` agent: a minimal tool loop against any OpenAI-compatible chat-completions endpoint.

OpenAI, OpenRouter, Ollama, vLLM, llama.cpp… all speak `POST {base_url}/chat/completions` with
function tools. The model works in the worktree through `daemon.agents.tools`; its final message
(one without tool calls) describes the change. Provider failures are classified (auth, quota,
rate_limit, transient) so the loop retries the same experiment; the API key is only ever put in
the request header — never in a log, an event, a result, or the shell the model runs commands in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    Emit,
    Final,
    StatelessAgent,
    Text,
    ToolResult,
    ToolUse,
    Usage,
)
from daemon.agents.chat_api import REQUEST_TIMEOUT, ChatAPI, ProviderError, Spend
from daemon.agents.stream_json import first_line
from daemon.agents.tools import SCHEMAS, ToolError, Workspace
from shared.schema import ProgramConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_TURNS = 30

PREAMBLE = """You are a coding agent working in a git worktree (your current directory). Use the \
tools to inspect and change files and to run commands; paths are relative to the worktree and \
cannot leave it. Make the ONE change the instructions below ask for. Committing is optional: expd \
commits, measures and keeps or reverts your change. When you are done, reply WITHOUT calling a \
tool, with a one-line summary of what you changed — it becomes the experiment's description."""
TASK_PREAMBLE = """You are a coding agent working in a git worktree (your current directory). Use \
the tools to inspect and change files and to run commands; paths are relative to the worktree and \
cannot leave it. Carry out the task below. Committing is optional: expd commits your work and \
checks it against the task's criteria. When you are done, reply WITHOUT calling a tool, with your \
final answer: what the task asks for, or a one-line summary of what you changed."""

DRAFT_PREAMBLE = """You are a coding agent drafting a program for expd, in a scratch folder (your \
current directory). Use the tools to read the repository copy the brief names and to run \
commands; paths are relative to the folder and cannot leave it. Write the files the brief below \
asks for, and change nothing else. When you are done, reply WITHOUT calling a tool, with a \
one-line summary of your proposal."""
FRAMES = {
    "experiment": (
        PREAMBLE,
        "Make your change for experiment {n} now; finish with the one-line summary.",
    ),
    "task": (TASK_PREAMBLE, "Carry out the task now; finish with your final answer."),
    "draft": (DRAFT_PREAMBLE, "Write the draft now; finish with the one-line summary."),
}
"""What frames the brief, by the task's purpose: the system preamble and the first user message."""


class OpenAIAgent(StatelessAgent):
    kind = "openai"

    def __init__(self, config: ProgramConfig, *, model: str | None = None) -> None:
        self.config = config.agent
        self.model = model or self.config.model or ""
        self.base_url = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.key_env = self.config.api_key_env or (
            None if self.config.base_url else "OPENAI_API_KEY"
        )
        self.max_turns = self.config.max_turns or DEFAULT_MAX_TURNS
        self.options: dict[str, Any] = {}
        """`[agent] temperature` and `effort` as request fields; unset ones are not sent, so the
        endpoint's defaults hold (and servers that reject the fields are never sent them)."""
        if self.config.temperature is not None:
            self.options["temperature"] = self.config.temperature
        if self.config.effort is not None:
            self.options["reasoning_effort"] = self.config.effort

    async def run(self, task: AgentTask, emit: Emit) -> AgentOutcome:
        env = {**os.environ, **task.env, **self.config.env}
        key = env.get(self.key_env, "") if self.key_env else ""
        redact = _redactor(key)

        def out(event: AgentEvent) -> None:
            emit(_redact_event(event, redact))

        outcome = AgentOutcome()
        if not self.model:
            outcome.error, outcome.unavailable = "[agent] model is not set in program.toml", True
        elif self.key_env and not key:
            outcome.error = (
                f"${self.key_env} is not set: export the API key in it before `expd start`, "
                "or name the variable that holds it with [agent] api_key_env"
            )
            outcome.error_class = "auth"
        if outcome.error:
            out(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "other"))
            return outcome
        shell_env = {k: v for k, v in env.items() if k != self.key_env}
        workspace = Workspace(task.worktree, shell_env, task.on_process_start, task.sandbox)
        spend = Spend()
        headers = {"authorization": f"Bearer {key}"} if key else {}
        try:
            with anyio.move_on_after(task.timeout) as scope:
                async with httpx.AsyncClient(
                    base_url=self.base_url, headers=headers, timeout=REQUEST_TIMEOUT
                ) as client:
                    api = ChatAPI(client, self.key_env)
                    text, note = await self._converse(api, task, workspace, out, spend)
            if scope.cancelled_caught:
                outcome.timed_out = True
                outcome.error = (
                    f"agent timed out after {task.timeout:g}s (its shell commands were killed)"
                )
            else:
                if note:
                    out(Text(text=note, stream="stderr"))
                outcome.description = first_line(text) or note or ""
                out(Final(description=outcome.description))
        except ProviderError as exc:
            outcome.error = redact(str(exc))
            outcome.error_class, outcome.retry_after = exc.error_class, exc.retry_after
        except Exception as exc:  # a bug or an unforeseen reply: a crash, not a provider failure
            outcome.error = redact(f"openai agent failed: {type(exc).__name__}: {exc}")
        finally:
            if spend.unpriced:
                out(Text(text=_no_price(self.model), stream="stderr"))
            if spend.tokens:
                out(Usage(cost_usd=spend.cost, tokens=spend.tokens))
        outcome.cost_usd, outcome.tokens = spend.cost, spend.tokens
        if outcome.error:
            out(AgentErrorEvent(message=outcome.error, error_class=outcome.error_class or "other"))
        return outcome

    async def _converse(
        self,
        api: ChatAPI,
        task: AgentTask,
        workspace: Workspace,
        emit: Emit,
        spend: Spend,
    ) -> tuple[str, str | None]:
        """Talk until a final message: (its text, None), or (last text, why it stopped early)."""
        preamble, ask = FRAMES.get(task.purpose, FRAMES["experiment"])
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"{preamble}\n\n{task.prompt}"},
            {"role": "user", "content": ask.format(n=task.experiment)},
        ]
        last = ""
        for _ in range(self.max_turns):
            message, usage = await api.complete(self.model, messages, SCHEMAS, self.options)
            spend.add(usage, self.model, self.config.prices)
            content = _content(message.get("content"))
            if content.strip():
                emit(Text(text=content))
                last = content
            calls = message.get("tool_calls") or []
            if not calls:
                return content, None
            messages.append({"role": "assistant", "content": content or None, "tool_calls": calls})
            for call in calls:
                messages.append(await self._tool(call, workspace, emit))
            limit = self.config.max_tokens
            if limit and spend.tokens >= limit:
                return (
                    last,
                    f"stopped: {spend.tokens} tokens used, the budget is {limit} (max_tokens)",
                )
        return last, f"stopped after {self.max_turns} turns (max_turns)"

    async def _tool(self, call: Any, workspace: Workspace, emit: Emit) -> dict[str, Any]:
        """Run one tool call; the tool message for the model (errors included, never raised)."""
        call = call if isinstance(call, Mapping) else {}
        function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        name = str(function.get("name") or "")
        raw = function.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(args, Mapping):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            emit(ToolUse(name=name, input={"arguments": _short(str(raw))}))
            output, is_error = f"arguments are not valid JSON ({exc})", True
        else:
            emit(ToolUse(name=name, input={k: _short(v) for k, v in args.items()}))
            try:
                output, is_error = await workspace.call(name, args), False
            except ToolError as exc:
                output, is_error = str(exc), True
            except Exception as exc:  # e.g. permission denied: the model may try another way
                output, is_error = f"{type(exc).__name__}: {exc}", True
        emit(ToolResult(name=name, output=output[:2000], is_error=is_error))
        content = f"error: {output}" if is_error else output
        return {"role": "tool", "tool_call_id": str(call.get("id") or ""), "content": content}


def _content(value: Any) -> str:
    """Message content as text (a string, or a list of text parts from some servers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, Mapping))
    return ""


def _short(value: Any) -> Any:
    return value[:200] + "…" if isinstance(value, str) and len(value) > 200 else value


def _no_price(model: str) -> str:
    return (
        f"no price known for model {model!r}: its cost is counted as $0 — set "
        f'[agent.prices."{model}"] input/output (USD per million tokens) in program.toml'
    )


def _redactor(key: str) -> Callable[[str], str]:
    if len(key) < 4:
        return lambda text: text
    return lambda text: text.replace(key, "[redacted]")


def _redact_event(event: AgentEvent, redact: Callable[[str], str]) -> AgentEvent:
    """The event with the API key blanked out wherever a tool or the provider echoed it."""
    match event:
        case Text():
            return Text(text=redact(event.text), stream=event.stream)
        case ToolUse():
            data = redact(json.dumps(event.input))
            return ToolUse(name=event.name, input=json.loads(data))
        case ToolResult():
            return ToolResult(name=event.name, output=redact(event.output), is_error=event.is_error)
        case AgentErrorEvent():
            return AgentErrorEvent(message=redact(event.message), error_class=event.error_class)
    return event
