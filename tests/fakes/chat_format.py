"""The OpenAI chat-completions shapes the fake server sends: scripted replies and their JSON.

Field for field what OpenAI documents for `chat.completion` and `chat.completion.chunk` objects,
including `usage.prompt_tokens_details.cached_tokens` and the error envelope `{"error": {...}}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_USAGE = (100, 20, 0)
"""(prompt_tokens, completion_tokens, cached_tokens) of a reply that does not say otherwise."""


@dataclass(frozen=True)
class Call:
    """One tool call the fake model makes; `arguments` is encoded to the JSON string OpenAI sends."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    kind: Literal["message", "error", "malformed", "hang", "cut"]
    content: str | None = None
    calls: tuple[Call, ...] = ()
    usage: tuple[int, int, int] = DEFAULT_USAGE
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    """`hang`: how long to hold the connection; otherwise a delay before answering."""

    @staticmethod
    def text(
        content: str, *, usage: tuple[int, int, int] = DEFAULT_USAGE, delay: float = 0.0
    ) -> Reply:
        """A final assistant message (finish_reason "stop")."""
        return Reply("message", content=content, usage=usage, seconds=delay)

    @staticmethod
    def tool_calls(
        calls: Sequence[Call | tuple[str, Mapping[str, Any] | str]],
        *,
        content: str | None = None,
        usage: tuple[int, int, int] = DEFAULT_USAGE,
        delay: float = 0.0,
    ) -> Reply:
        """An assistant message calling tools (finish_reason "tool_calls")."""
        made = tuple(c if isinstance(c, Call) else Call(c[0], c[1]) for c in calls)
        return Reply("message", content=content, calls=made, usage=usage, seconds=delay)

    @staticmethod
    def error(
        status: int,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An HTTP error; a mapping body is sent as JSON, e.g. `{"error": {...}}`."""
        text = json.dumps(body) if isinstance(body, Mapping) else (body or "")
        return Reply("error", status=status, body=text, headers=tuple((headers or {}).items()))

    @staticmethod
    def auth_error() -> Reply:
        return Reply.error(
            401,
            error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        )

    @staticmethod
    def quota_error() -> Reply:
        message = "You exceeded your current quota, please check your plan and billing details."
        return Reply.error(429, error_body(message, "insufficient_quota", "insufficient_quota"))

    @staticmethod
    def rate_limited(retry_after: float | None = 1) -> Reply:
        message = "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1."
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return Reply.error(429, error_body(message, "requests", "rate_limit_exceeded"), headers)

    @staticmethod
    def server_error(status: int = 500) -> Reply:
        message = "The server had an error while processing your request. Sorry about that!"
        return Reply.error(status, error_body(message, "server_error", None))

    @staticmethod
    def malformed(body: str = '{"id": "chatcmpl-x", "choices": [', status: int = 200) -> Reply:
        """A body that is not valid JSON (or, streamed, a `data:` line that is not)."""
        return Reply("malformed", status=status, body=body)

    @staticmethod
    def hang(seconds: float = 3600.0) -> Reply:
        """Accept the request and answer nothing for `seconds`, then drop the connection."""
        return Reply("hang", seconds=seconds)

    @staticmethod
    def cut(content: str = "partial answer") -> Reply:
        """Start a valid response and drop the connection before it is complete."""
        return Reply("cut", content=content)


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _usage(reply: Reply) -> dict[str, Any]:
    prompt, completion_tokens, cached = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _calls(reply: Reply, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_{n}_{i}",
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.arguments
                if isinstance(call.arguments, str)
                else json.dumps(call.arguments),
            },
        }
        for i, call in enumerate(reply.calls)
    ]


def _envelope(body: dict[str, Any], n: int, obj: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{n}",
        "object": obj,
        "created": int(time.time()),
        "model": body.get("model") or "fake-model",
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def completion(reply: Reply, body: dict[str, Any], n: int) -> dict[str, Any]:
    """The non-streamed `chat.completion` object for `reply`."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
        "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = _calls(reply, n)
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "tool_calls" if reply.calls else "stop",
    }
    return {
        **_envelope(body, n, "chat.completion"),
        "choices": [choice],
        "usage": _usage(reply),
    }


def chunks(reply: Reply, body: dict[str, Any], n: int, include_usage: bool) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects for `reply`, split the way OpenAI streams them."""
    head = _envelope(body, n, "chat.completion.chunk")
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], **extra}

    out = [
        chunk({"role": "assistant", "content": "" if not reply.calls else None, "refusal": None})
    ]
    text = reply.content or ""
    out += [chunk({"content": text[i : i + 8]}) for i in range(0, len(text), 8)]
    for i, call in enumerate(_calls(reply, n)):
        fn = call["function"]
        start = {"name": fn["name"], "arguments": ""}
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": i, "id": call["id"], "type": "function", "function": start}
                    ]
                }
            )
        )
        args = fn["arguments"]
        for j in range(0, len(args), 12):
            out.append(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 12]}}]})
            )
    out.append(chunk({}, "tool_calls" if reply.calls else "stop"))
    if include_usage:
        out.append({**head, "choices": [], "usage": _usage(reply)})
    return out
