"""Reading `codex exec --json` output: its JSONL events become expd agent events.

Event names checked against the real CLI (`@openai/codex` 0.169.0): `thread.started`,
`turn.started`, `turn.completed` (usage), `turn.failed`, `error` (also "Reconnecting… n/5" notes),
and `item.started`/`item.updated`/`item.completed` for agent_message, reasoning, command_execution,
file_change, mcp_tool_call, todo_list, web_search and error items.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from daemon.agents.base import AgentEvent, Emit, Text, ToolResult, ToolUse
from daemon.agents.errors import classify_message
from daemon.agents.stream_json import decode

_AUTH = re.compile(r"missing environment variable|no codex credentials|codex login", re.I)
_TRANSIENT = re.compile(
    r"stream disconnected|high demand|unexpected status 5\d\d|error sending request", re.I
)
_RETRY_IN = re.compile(
    r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*"
    r"(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b",
    re.I,
)
_SHELL_WRAP = re.compile(r"^(?:/usr)?/bin/(?:ba|z)?sh -l?c ")


def classify(message: str) -> str:
    """errors.classify_message, plus the wording Codex uses for missing keys and 5xx retries."""
    cls = classify_message(message)
    if cls == "other" and _AUTH.search(message):
        return "auth"
    if cls == "other" and _TRANSIENT.search(message):
        return "transient"
    return cls


def retry_after(message: str) -> float | None:
    """The wait the provider asked for ("Please try again in 1.5s"), when Codex passes it on."""
    match = _RETRY_IN.search(message)
    if not match:
        return None
    unit = (match.group(2) or "s").lower()
    if unit == "ms" or unit.startswith("milli"):
        return float(match.group(1)) / 1000
    if unit == "m" or unit.startswith("min"):
        return float(match.group(1)) * 60
    return float(match.group(1))


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _unwrap(command: str) -> str:
    """`/bin/bash -lc 'sed …'` → `sed …`: the command the model asked for."""
    if _SHELL_WRAP.match(command):
        try:
            parts = shlex.split(command)
        except ValueError:
            return command
        if len(parts) == 3:
            return parts[2]
    return command


class CodexStream:
    """Turns `codex exec --json` lines into agent events; tolerant of junk and of a cut stream."""

    def __init__(self, worktree: Path, emit: Emit) -> None:
        self.roots = {str(worktree).rstrip("/") + "/", str(worktree.resolve()).rstrip("/") + "/"}
        self.emit = emit
        self.session_id: str | None = None
        self.message = ""
        self.completed = False
        self.failure: str | None = None
        self.last_error: str | None = None
        self.usages: list[tuple[int, int, int]] = []
        self._started: set[str] = set()
        self._plans: dict[str, str] = {}

    def feed(self, line: str) -> None:
        if not line.strip():
            return
        event = decode(line)
        if event is None:
            self.emit(Text(text=line))
            return
        kind = event.get("type")
        if kind == "thread.started":
            self.session_id = str(event.get("thread_id") or "") or self.session_id
        elif kind == "turn.completed":
            self.completed = True
            usage = event.get("usage")
            usage = usage if isinstance(usage, dict) else {}
            self.usages.append(
                (
                    _int(usage.get("input_tokens")),
                    _int(usage.get("cached_input_tokens")),
                    _int(usage.get("output_tokens")),
                )
            )
        elif kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            self.failure = str(message or "codex reported that the turn failed")
        elif kind == "error":
            message = str(event.get("message") or "")
            if message and not message.startswith("Reconnecting"):
                self.last_error = message
            if message:
                self.emit(Text(text=message, stream="stderr"))
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = event.get("item")
            if isinstance(item, dict):
                self._item(kind.split(".")[1], item)

    def _item(self, phase: str, item: dict[str, Any]) -> None:
        item_id = str(item.get("id") or "")
        kind = str(item.get("type") or "")
        first = item_id not in self._started
        self._started.add(item_id)
        done = phase == "completed"
        if kind == "agent_message":
            if done:
                self.message = str(item.get("text") or "")
                self.emit(Text(text=self.message))
        elif kind == "reasoning":
            if done:
                self.emit(Text(text=f"[reasoning] {item.get('text') or ''}", stream="reasoning"))
        elif kind == "command_execution":
            if first:
                command = _unwrap(str(item.get("command") or ""))
                self.emit(ToolUse(name="shell", input={"command": _short(command)}))
            if done:
                code = item.get("exit_code")
                failed = item.get("status") == "failed" or code not in (0, None)
                output = str(item.get("aggregated_output") or "").rstrip()[-2000:]
                prefix = f"[exit {code}] " if code not in (0, None) else ""
                self.emit(ToolResult(name="shell", output=prefix + output, is_error=failed))
        elif kind == "file_change":
            changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
            paths = [self._relative(str(c.get("path") or "")) for c in changes]
            if first:
                for change, path in zip(changes, paths, strict=True):
                    self.emit(
                        ToolUse(name="edit", input={"path": path, "kind": change.get("kind")})
                    )
            if done:
                failed = item.get("status") == "failed"
                self.emit(ToolResult(name="edit", output=", ".join(paths), is_error=failed))
        elif kind == "mcp_tool_call":
            name = f"mcp:{item.get('server')}/{item.get('tool')}"
            if first:
                args = item.get("arguments")
                shown = args if isinstance(args, dict) else {"arguments": args}
                self.emit(ToolUse(name=name, input={k: _short(v) for k, v in shown.items()}))
            if done:
                self.emit(self._mcp_result(name, item))
        elif kind == "todo_list":
            steps = [s for s in item.get("items") or [] if isinstance(s, dict)]
            plan = "; ".join(
                f"[{'x' if s.get('completed') else ' '}] {s.get('text')}" for s in steps
            )
            if plan and self._plans.get(item_id) != plan:
                self._plans[item_id] = plan
                self.emit(Text(text=f"[plan] {plan}"))
        elif kind == "web_search":
            if done:
                self.emit(ToolUse(name="web_search", input={"query": _short(item.get("query"))}))
        elif kind == "error":
            if done:
                self.emit(Text(text=str(item.get("message") or ""), stream="stderr"))
        elif done:
            shown = {k: _short(v) for k, v in item.items() if k not in ("id", "type")}
            self.emit(ToolUse(name=kind or "item", input=shown))

    def _relative(self, path: str) -> str:
        """Paths inside the worktree as the repository spells them (Codex reports them absolute)."""
        for root in self.roots:
            if path.startswith(root):
                return path[len(root) :]
        return path

    @staticmethod
    def _mcp_result(name: str, item: dict[str, Any]) -> AgentEvent:
        error = item.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            return ToolResult(name=name, output=_short(message, 2000), is_error=True)
        result = item.get("result") or {}
        content = result.get("content") if isinstance(result, dict) else result
        if isinstance(content, list):
            texts = [str(c.get("text")) for c in content if isinstance(c, dict) and "text" in c]
            content = "\n".join(texts) if texts else content
        failed = item.get("status") == "failed"
        return ToolResult(name=name, output=_short(content or "", 2000), is_error=failed)
