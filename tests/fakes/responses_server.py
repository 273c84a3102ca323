"""A fake OpenAI Responses API on 127.0.0.1, scripted per test, for driving the real Codex CLI.

`POST /v1/responses` with `stream: true` answers with the documented SSE events (`response.created`,
`response.in_progress`, `response.output_item.added`/`.done` around each output item, the
reasoning-summary, `output_text`, `function_call_arguments` and `custom_tool_call_input` deltas,
then `response.completed` with `usage`, or `response.failed`), or with an HTTP error in the API's
error-body format. Each request takes the next step of the script (a step, or a callable
that picks one from the request body); once the script is exhausted `then` answers everything.
Requests are recorded in memory (never written anywhere) so tests can assert what the CLI sent.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A streamed response: optional text, then optional function calls, then `completed`."""

    text: str = ""
    reasoning: str = ""
    """A reasoning summary streamed before everything else."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """Raw output items (e.g. a `web_search_call`) sent as added + done, after the reasoning."""
    calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    """(tool name, arguments) pairs, e.g. ("exec_command", {"cmd": "ls"}) or, for a freeform
    tool, ("apply_patch", "*** Begin Patch …"): sent as the type the request declared."""
    input_tokens: int = 1000
    cached_tokens: int = 200
    output_tokens: int = 50
    cut: bool = False
    """Drop the connection after the text, before any call and `response.completed`."""
    failed: dict[str, Any] | None = None
    """End with `response.failed` carrying this `error` object instead of `completed`."""


@dataclass
class HttpError:
    """A non-200 answer in the API's `{"error": {...}}` format."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Step = Reply | HttpError
Responder = Step | Callable[[dict[str, Any]], Step]
"""A step, or a function choosing one from the request body (a scripted model policy)."""
Script = list[Responder]

UNAUTHORIZED = HttpError(
    401,
    "Incorrect API key provided: sk-test. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    code="invalid_api_key",
)
QUOTA = HttpError(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    type="insufficient_quota",
    code="insufficient_quota",
)
RATE_LIMITED = HttpError(
    429,
    "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
    type="requests",
    code="rate_limit_exceeded",
    headers={"retry-after": "7"},
)
SERVER_ERROR = HttpError(
    500, "The server had an error while processing your request.", type="server_error"
)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


def last_tool_output(body: dict[str, Any]) -> str | None:
    """The output of the most recent tool call in a request's input, if it ends with one."""
    items = body.get("input") or []
    if items and items[-1].get("type", "").endswith("_call_output"):
        output = items[-1].get("output")
        return output if isinstance(output, str) else json.dumps(output)
    return None


class ResponsesServer:
    """`with ResponsesServer(script) as server:` … `server.base_url` is `http://127.0.0.1:P/v1`."""

    def __init__(self, script: Script | None = None, then: Responder | None = None) -> None:
        self.script: Script = list(script or [])
        self.then: Responder = then or Reply(text="Done.")
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def responses(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/responses")]

    def __enter__(self) -> ResponsesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            step = self.script.pop(0) if self.script else self.then
        return step(body) if callable(step) else step

    def _call_item(
        self, name: str, arguments: dict[str, Any] | str, tools: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], str]:
        """A call of `name` shaped as the request advertised it: `custom` tools (Codex's freeform
        `apply_patch`) take raw `input`, `function` tools JSON `arguments`; "ns.tool" names a tool
        of a `namespace` group and is sent with `namespace`. Returns the item (as added, with
        empty input) and the full input its deltas will carry."""
        n = next(self._ids)
        namespace, _, short = name.rpartition(".")
        scope = tools
        if namespace:  # "mcp__srv.tool": a tool inside a `namespace` tool (how Codex sends MCP)
            group = next((t for t in tools if t.get("name") == namespace), {})
            scope = list(group.get("tools") or [])
        kind = next((t.get("type") for t in scope if t.get("name") == short), "function")
        if kind == "custom":
            text = arguments if isinstance(arguments, str) else str(arguments.get("input", ""))
            item = {"id": f"ctc_{n}", "type": "custom_tool_call", "input": ""}
        else:
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            item = {"id": f"fc_{n}", "type": "function_call", "arguments": ""}
        item |= {"status": "in_progress", "call_id": f"call_{n}", "name": short}
        if namespace:
            item["namespace"] = namespace
        return item, text

    def _events(
        self, reply: Reply, model: str, tools: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """The SSE event payloads of one streamed response, in the documented order."""
        base = {"id": f"resp_{next(self._ids)}", "object": "response", "created_at": 1_700_000_000}
        response = base | {"model": model, "status": "in_progress", "output": [], "error": None}
        yield {"type": "response.created", "response": response}
        yield {"type": "response.in_progress", "response": response}
        items: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Iterator[dict[str, Any]]]]]
        items = []
        if reply.reasoning:
            item = {"id": f"rs_{next(self._ids)}", "type": "reasoning", "summary": []}
            items.append((item, lambda where: _reasoning(where, reply.reasoning)))
        items += [(raw, lambda where: iter(())) for raw in reply.items]
        if reply.text:
            item = {"id": f"msg_{next(self._ids)}", "type": "message", "status": "in_progress"}
            item["role"] = "assistant"
            items.append((item | {"content": []}, lambda where: _text(where, reply.text)))
        for name, arguments in [] if reply.cut else reply.calls:
            item, text = self._call_item(name, arguments, tools)
            items.append((item, lambda where, item=item, text=text: _call_input(where, item, text)))
        output: list[dict[str, Any]] = []
        for index, (item, body) in enumerate(items):
            yield {"type": "response.output_item.added", "output_index": index, "item": item}
            done = item | {"status": "completed"} if "status" in item else dict(item)
            for event in body({"item_id": item["id"], "output_index": index}):
                done |= event.pop("_done", {})
                yield event
            yield {"type": "response.output_item.done", "output_index": index, "item": done}
            output.append(done)
        if reply.cut:
            return
        if reply.failed is not None:
            failed = response | {"status": "failed", "error": reply.failed}
            yield {"type": "response.failed", "response": failed}
            return
        usage = {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": reply.cached_tokens},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        completed = response | {"status": "completed", "output": output, "usage": usage}
        yield {"type": "response.completed", "response": completed}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test output is for the test."""

            def _record(self, body: dict[str, Any] | None) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(Recorded(self.command, self.path, headers, body))

            def _json(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._record(None)
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [_model("gpt-5")], "models": []})
                else:
                    self._json(404, _error("not found", "invalid_request_error", None))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                self._record(body)
                if not self.path.rstrip("/").endswith("/responses"):
                    self._json(404, _error("not found", "invalid_request_error", None))
                    return
                step = server._next(body)
                if isinstance(step, HttpError):
                    payload = _error(step.message, step.type, step.code)
                    self._json(step.status, payload, step.headers)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                model = str(body.get("model") or "gpt-5")
                events = server._events(step, model, list(body.get("tools") or []))
                for seq, event in enumerate(events):
                    event["sequence_number"] = seq
                    data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                    self.wfile.write(data.encode())
                    self.wfile.flush()

        return Handler


def _reasoning(where: dict[str, Any], text: str) -> Iterator[dict[str, Any]]:
    where = where | {"summary_index": 0}
    part = {"type": "summary_text", "text": ""}
    yield {"type": "response.reasoning_summary_part.added", **where, "part": part}
    for chunk in _chunks(text):
        yield {"type": "response.reasoning_summary_text.delta", **where, "delta": chunk}
    yield {"type": "response.reasoning_summary_text.done", **where, "text": text}
    part = part | {"text": text}
    yield {
        "type": "response.reasoning_summary_part.done",
        **where,
        "part": part,
        "_done": {"summary": [part]},
    }


def _text(where: dict[str, Any], text: str) -> Iterator[dict[str, Any]]:
    where = where | {"content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    yield {"type": "response.content_part.added", **where, "part": part}
    for chunk in _chunks(text):
        yield {"type": "response.output_text.delta", **where, "delta": chunk, "logprobs": []}
    yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
    part = part | {"text": text}
    done = {"status": "completed", "content": [part]}
    yield {"type": "response.content_part.done", **where, "part": part, "_done": done}


def _call_input(where: dict[str, Any], item: dict[str, Any], text: str) -> Iterator[dict[str, Any]]:
    """`custom_tool_call_input` deltas for freeform tools, `function_call_arguments` otherwise."""
    field_name, kind = (
        ("input", "custom_tool_call_input")
        if item["type"] == "custom_tool_call"
        else ("arguments", "function_call_arguments")
    )
    for chunk in _chunks(text):
        yield {"type": f"response.{kind}.delta", **where, "delta": chunk}
    yield {"type": f"response.{kind}.done", **where, field_name: text, "_done": {field_name: text}}


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
