"""A scripted Anthropic Messages API server on 127.0.0.1, for the real Claude Code CLI.

A real HTTP server (stdlib, one thread per connection) answering `POST /v1/messages` the way the
API documents it: with `"stream": true` the SSE events `message_start`, `content_block_start`,
`content_block_delta` (`text_delta` / `input_json_delta`), `content_block_stop`, `message_delta`,
`message_stop`; otherwise one `message` JSON object; errors as `{"type": "error", "error": {...}}`.

Requests offering tools are the agent's own turns and take the next scripted `Turn`; the CLI's
side requests (titles, quota probes, …, sent without tools) get `side` (by default a short text).
`/v1/messages/count_tokens` is answered from the request size; other paths are logged in
`.unknown` and answered 404 the way the API does.

    with AnthropicServer([Turn.tool("Write", {"file_path": p, "content": "x"}), Turn.text("ok")])
        as server:
        env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "test-key"}
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

DEFAULT_USAGE = (100, 20, 0, 0)
"""(input, output, cache_read_input, cache_creation_input) tokens of a turn that does not say."""


@dataclass(frozen=True)
class Block:
    """One content block of the fake model's message: text, or a tool call."""

    text: str | None = None
    tool: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    kind: Literal["message", "error", "hang", "cut"]
    blocks: tuple[Block, ...] = ()
    usage: tuple[int, int, int, int] = DEFAULT_USAGE
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @staticmethod
    def text(text: str, *, usage: tuple[int, int, int, int] = DEFAULT_USAGE) -> Turn:
        """A final answer (stop_reason "end_turn")."""
        return Turn("message", (Block(text=text),), usage)

    @staticmethod
    def tool(
        name: str,
        input: Mapping[str, Any],
        *,
        text: str | None = None,
        usage: tuple[int, int, int, int] = DEFAULT_USAGE,
    ) -> Turn:
        """One tool call, optionally after some text (stop_reason "tool_use")."""
        head = (Block(text=text),) if text else ()
        return Turn("message", (*head, Block(tool=name, input=input)), usage)

    @staticmethod
    def error(
        status: int, type_: str, message: str, headers: Mapping[str, str] | None = None
    ) -> Turn:
        body = {"type": "error", "error": {"type": type_, "message": message}}
        return Turn(
            "error", status=status, body=json.dumps(body), headers=tuple((headers or {}).items())
        )

    @staticmethod
    def auth_error() -> Turn:
        return Turn.error(401, "authentication_error", "invalid x-api-key")

    @staticmethod
    def credit_too_low() -> Turn:
        message = (
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits."
        )
        return Turn.error(400, "invalid_request_error", message)

    @staticmethod
    def rate_limited(retry_after: float = 0) -> Turn:
        message = "Number of request tokens has exceeded your per-minute rate limit"
        return Turn.error(429, "rate_limit_error", message, {"retry-after": f"{retry_after:g}"})

    @staticmethod
    def overloaded() -> Turn:
        return Turn.error(529, "overloaded_error", "Overloaded")

    @staticmethod
    def cut(text: str = "partial answer") -> Turn:
        """Start streaming a text answer and drop the connection before `message_stop`."""
        return Turn("cut", (Block(text=text),))

    @staticmethod
    def hang(seconds: float = 3600.0) -> Turn:
        """Accept the request and answer nothing for `seconds`."""
        return Turn("hang", seconds=seconds)


Script = Iterable[Turn] | Callable[[dict[str, Any]], Turn | None]
"""Turns in request order, or a function of the request body (None: the default turn)."""


class AnthropicServer:
    """Scripted Messages API; `.url` is the ANTHROPIC_BASE_URL to give the CLI (no /v1)."""

    def __init__(
        self, script: Script = (), *, default: Turn | None = None, side: Turn | None = None
    ) -> None:
        self._script = script if callable(script) else list(script)
        self.default = default or Turn.text("Done.")
        self.side = side or Turn.text("ok")
        self.requests: list[dict[str, Any]] = []
        """Bodies of the agent's turns (requests offering tools), in order."""
        self.side_requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.unknown: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def next_turn(self, body: dict[str, Any]) -> tuple[Turn, int]:
        with self._lock:
            if not body.get("tools"):
                self.side_requests.append(body)
                return self.side, next(self._ids)
            self.requests.append(body)
            if callable(self._script):
                turn = self._script(body)
            else:
                turn = self._script.pop(0) if self._script else None
            return turn or self.default, next(self._ids)

    def tool_names(self) -> list[str]:
        """The tools the CLI offered in its first agent turn."""
        return [t.get("name", "") for t in (self.requests[0].get("tools") or [])]

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> AnthropicServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet (and never logs headers, which carry the key): tests read the recordings."""

    @property
    def fake(self) -> AnthropicServer:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.fake.paths.append(f"GET {self.path}")
        self._unknown()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?", 1)[0].rstrip("/")
        self.fake.paths.append(self.command + " " + self.path)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        if path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": max(1, len(raw) // 4)})
        elif path == "/v1/messages":
            self._messages(body)
        else:
            self._unknown()

    def _unknown(self) -> None:
        self.fake.unknown.append(f"{self.command} {self.path}")
        error = {"type": "not_found_error", "message": f"Not found: {self.path}"}
        self._json(404, {"type": "error", "error": error})

    def _messages(self, body: dict[str, Any]) -> None:
        turn, n = self.fake.next_turn(body)
        if turn.kind == "hang":
            self.fake.stopping.wait(turn.seconds)
            self.close_connection = True
            return
        if turn.kind == "error":
            headers = (("request-id", f"req_fake{n}"), *turn.headers)
            self._send(turn.status, turn.body.encode(), "application/json", headers)
            return
        message = _message(turn, body, n)
        if not body.get("stream"):
            self._json(200, message)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", f"req_fake{n}")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = sse_events(message)
        if turn.kind == "cut":
            events = events[:3]
        for name, data in events:
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        if turn.kind == "cut":
            self.close_connection = True
            return
        self._chunk(b"")

    def _send(
        self, status: int, data: bytes, ctype: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _message(turn: Turn, body: dict[str, Any], n: int) -> dict[str, Any]:
    """The complete `message` object the turn stands for."""
    content: list[dict[str, Any]] = []
    for i, block in enumerate(turn.blocks):
        if block.tool is not None:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{n:04d}{i}",
                    "name": block.tool,
                    "input": dict(block.input),
                }
            )
        else:
            content.append({"type": "text", "text": block.text or ""})
    tools = any(b.tool is not None for b in turn.blocks)
    inp, out, cache_read, cache_creation = turn.usage
    return {
        "id": f"msg_fake{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-sonnet-4-5",
        "content": content,
        "stop_reason": "tool_use" if tools else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": inp,
            "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read,
            "output_tokens": out,
            "service_tier": "standard",
        },
    }


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The stream of `message`, split into events the way the Messages API sends them."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            head = {"type": "text", "text": ""}
            text = block["text"]
            deltas = [
                {"type": "text_delta", "text": text[i : i + 16]} for i in range(0, len(text), 16)
            ]
        else:
            head = {**block, "input": {}}
            args = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": args[i : i + 24]}
                for i in range(0, len(args), 24)
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": head},
            )
        )
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
