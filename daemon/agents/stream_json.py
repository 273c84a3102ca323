"""Small helpers for agents whose CLI streams NDJSON events (one JSON object per line)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from daemon.agents.base import AgentEvent

PATH_KEYS = ("file_path", "notebook_path", "path")
MARKUP = re.compile(r"^(?:#{1,6}\s+|[-*+]\s+)")
"""A Markdown heading or bullet opening a summary line."""


def decode(line: str) -> dict[str, Any] | None:
    """The object on `line`, or None for blank lines, junk, and JSON that is not an object."""
    line = line.strip()
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def first_line(text: str, limit: int = 200) -> str:
    """The first non-blank line, cut to `limit` characters (an experiment's description)."""
    for line in text.splitlines():
        if line.strip():
            line = MARKUP.sub("", line.strip()) or line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def clip(value: Any, limit: int = 160) -> Any:
    """Long strings cut, containers encoded then cut: enough to show what a tool was given."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    if isinstance(value, (dict, list)):
        return clip(json.dumps(value, ensure_ascii=False), limit)
    return value


def short_input(data: Any, worktree: Path) -> dict[str, Any]:
    """A tool call's input for the log: paths relative to the worktree, long values clipped."""
    if not isinstance(data, dict):
        return {"input": clip(data)}
    roots = {str(worktree), str(worktree.resolve())}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in PATH_KEYS and isinstance(value, str):
            for root in roots:
                if value == root or value.startswith(root + "/"):
                    value = value[len(root) :].lstrip("/") or "."
                    break
        out[key] = clip(value)
    return out


def content_text(content: Any) -> str:
    """Text of a tool result's content: a string, or a list of `{"type": "text", …}` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif isinstance(block, dict) and block.get("type"):
                parts.append(f"[{block['type']}]")
        return "\n".join(parts)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def redactor(secrets: Iterable[str | None]) -> Callable[[AgentEvent], AgentEvent]:
    """Replaces each secret (e.g. an API key a tool printed) by `[redacted]` in an event."""
    values = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def redact(event: AgentEvent) -> AgentEvent:
        if not values:
            return event
        data = msgspec.json.encode(event).decode()
        clean = data
        for value in values:
            clean = clean.replace(json.dumps(value)[1:-1], "[redacted]")
        if clean == data:
            return event
        return msgspec.json.decode(clean, type=type(event))

    return redact
