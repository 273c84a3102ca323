"""Parsing `claude -p --output-format stream-json --verbose`: one JSON object per line.

Lines seen from Claude Code 2.1 (see tests/samples/claude/): `system` (`init` with the session id,
model and tools; `api_retry` while the CLI retries a failed request itself; `permission_denied`),
`assistant` (one content block per line: text or tool_use; an API error arrives as a synthetic
message flagged `is_api_error_message`), `user` (tool_result blocks), and the final `result` with
`total_cost_usd`, `usage`, `num_turns`, `is_error`, `subtype` and, for API errors,
`api_error_status`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.agents.base import AgentOutcome, Emit, Text, ToolResult, ToolUse
from daemon.agents.errors import classify_http, classify_message
from daemon.agents.prices import cost_usd
from daemon.agents.stream_json import content_text, decode, first_line, short_input
from shared.schema import Price

AUTH_RETRY_LIMIT = 2
"""Claude Code retries a refused credential ten times over minutes (an OAuth token may refresh
after the first); one refused twice will not start working, so the experiment stops there."""


class ClaudeStream:
    """Turns `claude -p --output-format stream-json --verbose` lines into events and an outcome.

    Junk lines are logged and skipped; a stream cut before its `result` still yields an outcome.
    """

    def __init__(
        self,
        emit: Emit,
        worktree: Path,
        model: str | None,
        prices: dict[str, Price],
        stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.emit = emit
        self.stop = stop
        """Kills the CLI (when it keeps retrying a request that cannot succeed)."""
        self.worktree = worktree
        self.model = model
        self.prices = prices
        self.session_id: str | None = None
        self.result: dict[str, Any] | None = None
        self.last_text = ""
        self.api_error = ""
        self.retry: dict[str, Any] | None = None
        self.auth_retries = 0
        self.stderr: list[str] = []
        self.tools: dict[str, str] = {}
        self.usage: dict[str, dict[str, Any]] = {}
        """Per message id (its blocks arrive as separate lines): the cost when no result came."""

    def line(self, stream: str, line: str) -> None:
        if stream == "stderr":
            if line.strip():
                self.stderr = [*self.stderr[-19:], line]
                self.emit(Text(text=line, stream="stderr"))
            return
        event = decode(line)
        if event is None:
            if line.strip():
                self.emit(Text(text=f"unparseable output: {line[:300]}", stream="stderr"))
            return
        kind = event.get("type")
        try:
            self.session_id = str(event.get("session_id") or self.session_id or "") or None
            if kind == "assistant":
                self._assistant(event)
            elif kind == "user":
                self._user(event)
            elif kind == "system":
                self._system(event)
            elif kind == "result":
                self.result = event
        except (AttributeError, TypeError, ValueError) as exc:  # a shape this parser doesn't know
            self.emit(Text(text=f"unexpected {kind} event ({exc}): {line[:300]}", stream="stderr"))

    def _assistant(self, event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        if event.get("is_api_error_message"):
            self.api_error = content_text(message.get("content")) or str(event.get("error"))
            self.emit(Text(text=self.api_error, stream="stderr"))
            return
        if message.get("id") and isinstance(message.get("usage"), dict):
            self.usage[str(message["id"])] = message["usage"]
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text") or "").strip():
                self.last_text = str(block["text"])
                self.emit(Text(text=self.last_text))
            elif block.get("type") == "tool_use":
                name = str(block.get("name") or "?")
                self.tools[str(block.get("id"))] = name
                self.emit(ToolUse(name=name, input=short_input(block.get("input"), self.worktree)))

    def _user(self, event: dict[str, Any]) -> None:
        content = (event.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                self.emit(
                    ToolResult(
                        name=self.tools.get(str(block.get("tool_use_id")), ""),
                        output=content_text(block.get("content"))[:2000],
                        is_error=bool(block.get("is_error")),
                    )
                )

    def _system(self, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            self.model = event.get("model") or self.model
            version = event.get("claude_code_version") or "?"
            self.emit(
                Text(text=f"Claude Code {version}, model {self.model}, session {self.session_id}")
            )
        elif subtype == "api_retry":
            self.retry = event
            status, error = event.get("error_status"), str(event.get("error") or "")
            delay = _num(event.get("retry_delay_ms")) / 1000
            self.emit(
                Text(
                    text=f"API error {status or ''} {error}: Claude Code retries in {delay:.1f}s "
                    f"(attempt {event.get('attempt')}/{event.get('max_retries')})",
                    stream="stderr",
                )
            )
            self.auth_retries = self.auth_retries + 1 if _classify(status, error) == "auth" else 0
            if self.auth_retries == AUTH_RETRY_LIMIT:
                self.stop()
        elif subtype == "permission_denied":
            reason = event.get("message") or event.get("decision_reason") or ""
            self.emit(
                Text(text=f"permission denied: {event.get('tool_name')}: {reason}", stream="stderr")
            )

    def outcome(self, returncode: int | None = None) -> AgentOutcome:
        """What the stream says happened (the caller handles timeouts and a missing CLI)."""
        return self._no_result(returncode) if self.result is None else self._from(self.result)

    def _no_result(self, returncode: int | None) -> AgentOutcome:
        """A cut stream: a provider failure classified by what the CLI last said, else `other`."""
        outcome = AgentOutcome(session_id=self.session_id)
        outcome.tokens, outcome.cost_usd = self._spend(self.usage.values(), None)
        if self.auth_retries >= AUTH_RETRY_LIMIT and self.retry is not None:
            status = self.retry.get("error_status") or ""
            outcome.error = (
                f"the API refused the credential twice ({status} {self.retry.get('error')}); "
                "stopped Claude Code retrying"
            )
            outcome.error_class = "auth"
            return outcome
        hint = self.api_error or "\n".join(self.stderr[-5:])
        code = f" (exit code {returncode})" if returncode else ""
        last = hint.strip().splitlines()[-1][:300] if hint.strip() else ""
        outcome.error = f"stream ended without a result{code}" + (last and f": {last}")
        outcome.error_class = classify_message(hint)
        return outcome

    def _from(self, r: dict[str, Any]) -> AgentOutcome:
        """The `result` line: success, an API error (a provider failure), or a crash."""
        outcome = AgentOutcome(session_id=r.get("session_id") or self.session_id)
        outcome.tokens, outcome.cost_usd = self._spend([r.get("usage")], r)
        outcome.extra = {"num_turns": r.get("num_turns"), "model": self.model}
        text = r.get("result") if isinstance(r.get("result"), str) else ""
        if not r.get("is_error"):
            outcome.description = first_line(text) or first_line(self.last_text)
            return outcome
        status = r.get("api_error_status")
        errors = [str(e) for e in r["errors"] if e] if isinstance(r.get("errors"), list) else []
        message = first_line("; ".join(errors) or text or self.api_error, 300) or "error"
        if status or r.get("terminal_reason") == "api_error" or r.get("subtype") == "success":
            outcome.error = f"API error{f' {status}' if status else ''}: {message}"
            outcome.error_class = _classify(status, message)
        else:
            outcome.error = f"{r.get('subtype') or 'error'}: {message}"
            cls = classify_message(message)
            outcome.error_class = cls if cls in ("auth", "quota", "rate_limit") else None
            outcome.description = first_line(self.last_text)
        if outcome.error_class == "rate_limit" and self.retry is not None:
            outcome.retry_after = _num(self.retry.get("retry_delay_ms")) / 1000 or None
        return outcome

    def _spend(self, usages: Any, result: dict[str, Any] | None) -> tuple[int, float]:
        """(tokens, dollars): the CLI's own total when it gave one, else priced from tokens."""
        fresh = cache_read = cache_write = output = 0
        for usage in (u for u in usages if isinstance(u, dict)):
            fresh += _int(usage.get("input_tokens"))
            cache_read += _int(usage.get("cache_read_input_tokens"))
            cache_write += _int(usage.get("cache_creation_input_tokens"))
            output += _int(usage.get("output_tokens"))
        tokens = fresh + cache_read + cache_write + output
        reported = (result or {}).get("total_cost_usd", (result or {}).get("cost_usd"))
        if isinstance(reported, (int, float)) and not isinstance(reported, bool):
            return tokens, max(0.0, float(reported))
        priced = cost_usd(
            self.model,
            self.prices,
            input_tokens=fresh + cache_read + cache_write,
            output_tokens=output,
            cached_input_tokens=cache_read,
        )
        return tokens, priced or 0.0


def _classify(status: Any, message: str) -> str:
    return classify_http(status, message) if isinstance(status, int) else classify_message(message)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
