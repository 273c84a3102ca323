"""The MCP SDK's own stdio client against `expd mcp` as a real subprocess, driven from
synchronous tests through a blocking portal (one event loop in a thread per server)."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from tests.repos import GIT_ENV


class McpServer:
    """One `expd mcp` process and an initialized client session to it."""

    def __init__(
        self,
        cwd: Path,
        errlog: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.errlog_path = errlog
        self._stack = contextlib.ExitStack()
        self._errlog = self._stack.enter_context(errlog.open("w"))
        self.portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "shared.cli.main", "mcp", *args],
            cwd=str(cwd),
            env={
                "PATH": os.environ["PATH"],
                **GIT_ENV,
                **(env or {}),
            },
        )
        streams = self._stack.enter_context(
            self.portal.wrap_async_context_manager(stdio_client(params, errlog=self._errlog))
        )
        self.session: ClientSession = self._stack.enter_context(
            self.portal.wrap_async_context_manager(ClientSession(*streams))
        )
        self.initialized = self.portal.call(self.session.initialize)

    def call(self, name: str, /, **arguments: Any) -> CallToolResult:
        result = self.portal.call(self.session.call_tool, name, arguments)
        assert isinstance(result, CallToolResult)
        return result

    def call_with_progress(
        self, name: str, /, **arguments: Any
    ) -> tuple[CallToolResult, list[tuple[float, float | None, str | None]]]:
        """A call with a progress token: its result and the progress notifications it got."""
        heard: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            heard.append((progress, total, message))

        result = self.portal.call(
            functools.partial(
                self.session.call_tool, name, arguments, progress_callback=on_progress
            )
        )
        assert isinstance(result, CallToolResult)
        return result, heard

    def ok(self, name: str, /, **arguments: Any) -> dict[str, Any]:
        """A call that must succeed: its structured content."""
        result = self.call(name, **arguments)
        assert not result.is_error, f"{name}: {text(result)}"
        assert isinstance(result.structured_content, dict)
        return result.structured_content

    def error(self, name: str, /, **arguments: Any) -> str:
        """A call that must fail as a tool error: its text."""
        result = self.call(name, **arguments)
        assert result.is_error, f"{name} did not fail: {text(result)}"
        return text(result)

    def poll(
        self, name: str, done: Any, /, timeout: float = 60.0, **arguments: Any
    ) -> dict[str, Any]:
        """Call `name` until `done(structured content)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.ok(name, **arguments)
            if done(got):
                return got
            assert time.monotonic() < deadline, f"timed out polling {name}: {got}"
            time.sleep(0.1)

    def close(self) -> None:
        self._stack.close()


def text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))
