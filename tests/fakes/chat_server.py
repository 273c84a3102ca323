"""A scripted OpenAI chat-completions server on 127.0.0.1, for agents that speak that protocol.

A real HTTP server (stdlib, one thread per connection) answering `POST …/chat/completions` with
the exact shapes OpenAI documents: a `chat.completion` JSON body, or with `"stream": true` SSE
`chat.completion.chunk` events ending in `data: [DONE]` (plus the usage-only chunk when the
request asks for `stream_options.include_usage`). Each request takes the next scripted `Reply`;
when the script runs out it answers with a final text ("done").

    with ChatServer([Reply.tool_calls([Call("read_file", {"path": "f.py"})]), Reply.text("ok")])
        as server:
        agent(base_url=server.url)          # http://127.0.0.1:PORT/v1
        assert server.requests[1]["messages"][-1]["role"] == "tool"
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.chat_format import Call, Reply, chunks, completion, error_body

__all__ = ["Call", "ChatServer", "Reply", "Script"]

Script = Iterable[Reply] | Callable[[dict[str, Any]], Reply | None]
"""A list of replies in request order, or a function of the request body (None: the default)."""


class ChatServer:
    """Scripted chat-completions server; `.url` is the base URL to give a client (ends in /v1)."""

    def __init__(
        self,
        script: Script = (),
        *,
        default: Reply | None = None,
        always_stream_usage: bool = False,
    ) -> None:
        self._script = script if callable(script) else list(script)
        self.default = default or Reply.text("done")
        self.always_stream_usage = always_stream_usage
        self.requests: list[dict[str, Any]] = []
        """Received request bodies, in order (malformed bodies are recorded as {"_raw": text})."""
        self.request_headers: list[dict[str, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.chat = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *replies: Reply) -> None:
        """Append to a list script (e.g. between two phases of a test)."""
        assert isinstance(self._script, list), "add() needs a list script"
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            if callable(self._script):
                reply = self._script(body)
            else:
                reply = self._script.pop(0) if self._script else None
            return reply or self.default, next(self._ids)

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `.requests` instead."""

    @property
    def chat(self) -> ChatServer:
        return self.server.chat  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            models = sorted({str(r.get("model")) for r in self.chat.requests if r.get("model")})
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, error_body(f"Unknown path {self.path}", "invalid_request_error", None))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode(errors="replace")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, error_body(f"Unknown path {self.path}", "invalid_request_error", None))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw}
        reply, n = self.chat.next_reply(body, {k.lower(): v for k, v in self.headers.items()})
        if reply.kind == "hang":
            self.chat.stopping.wait(reply.seconds)
            self.close_connection = True
            return
        if reply.seconds and self.chat.stopping.wait(reply.seconds):
            return
        stream = bool(body.get("stream"))
        if reply.kind == "error":
            self._send(reply.status, reply.body.encode(), "application/json", reply.headers)
        elif reply.kind == "malformed" and not stream:
            self._send(reply.status, reply.body.encode(), "application/json")
        elif stream:
            usage = self.chat.always_stream_usage or bool(
                (body.get("stream_options") or {}).get("include_usage")
            )
            self._stream(reply, body, n, usage)
        elif reply.kind == "cut":
            self._cut_json(completion(reply, body, n))
        else:
            self._json(200, completion(reply, body, n))

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

    def _cut_json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def _stream(self, reply: Reply, body: dict[str, Any], n: int, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        events = [json.dumps(c) for c in chunks(reply, body, n, include_usage)]
        if reply.kind == "malformed":
            events.insert(1, reply.body)
        if reply.kind == "cut":
            events = events[:2]
        for event in events:
            self._chunk(f"data: {event}\n\n".encode())
        if reply.kind == "cut":
            self.close_connection = True
            return
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
