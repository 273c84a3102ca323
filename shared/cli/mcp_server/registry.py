"""The tool registry: a typed function returning a msgspec struct becomes an MCP tool.

A tool is a plain function in one of the `GROUPS` modules, decorated with `@tool(OutputStruct)`:
its annotated parameters are the input schema (pydantic reads them, `Field(description=…)` in an
`Annotated` describes one), the struct is the output schema (`schemas.output_schema`). The call
returns the struct as `structuredContent` and, for clients that read only text, the same object
as indented JSON. A `UserError` becomes a tool error whose text is the line the CLI prints
(`expd: error: …`); anything else becomes `expd: internal error: …`, logged with its traceback on
stderr. The server never dies of a tool.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import msgspec
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ValidationError

from shared.cli.mcp_server.schemas import output_schema
from shared.display import one_line
from shared.errors import UserError

GROUPS = ("tools_programs", "tools_runs", "tools_control", "tools_bakeoff", "tools_queue")
"""The modules (in `shared.cli.mcp_server`) whose `@tool` functions the server offers, in order."""
PROGRESS = "progress"
"""The parameter through which a long tool reports progress (see `as_mcp_tool`)."""


@dataclass(frozen=True)
class ToolDef:
    fn: Callable[..., msgspec.Struct]
    output: type[msgspec.Struct]
    read_only: bool
    destructive: bool
    idempotent: bool


REGISTERED: dict[str, ToolDef] = {}


def tool(
    output: type[msgspec.Struct],
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a tool named like it, returning an `output`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn.__name__ in REGISTERED:
            raise ValueError(f"tool {fn.__name__!r} is registered twice")
        REGISTERED[fn.__name__] = ToolDef(fn, output, read_only, destructive, idempotent)
        return fn

    return register


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def reply(obj: msgspec.Struct) -> CallToolResult:
    """The struct as structured content, and as the same JSON in text for text-only clients."""
    text = msgspec.json.format(msgspec.json.encode(obj), indent=2).decode()
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=msgspec.to_builtins(obj)
    )


def call(fn: Callable[..., msgspec.Struct], kwargs: dict[str, Any]) -> CallToolResult:
    """Run one tool; every failure is a tool error, never an exception out of the server."""
    try:
        return reply(fn(**kwargs))
    except UserError as exc:
        return error_result(f"expd: error: {one_line(str(exc))}")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return error_result(f"expd: internal error: {type(exc).__name__}: {one_line(str(exc))}")


def argument_errors(exc: ValidationError) -> str:
    """Pydantic's report as one line: `field: problem; field: problem`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "model") or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class ExpdTool(Tool):
    """A tool whose bad arguments are a tool error with one line, like the CLI's usage errors,
    instead of the SDK's multi-line validation report."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            result = error_result(f"expd: error: {self.name}: {argument_errors(exc)}")
            return self.fn_metadata.convert_result(result) if convert_result else result
        return await super().run(arguments, context, convert_result)


def progress_of(ctx: Context) -> Callable[[int, int, str], None]:
    """A tool's `progress(done, total, message)`, sent to the client as progress notifications
    (none when the call asked for none). Tools run on a worker thread: this hops to the loop."""

    def tell(done: int, total: int, message: str) -> None:
        with contextlib.suppress(Exception):  # a client gone mid-call must not fail the tool
            anyio.from_thread.run(ctx.report_progress, done, total, message)

    return tell


def as_mcp_tool(d: ToolDef) -> Tool:
    """The SDK's Tool for `d`: the function's typed parameters, the struct's output schema. A
    `progress` parameter is not the client's to give: it becomes the call's progress reporter."""
    hints = typing.get_type_hints(d.fn, include_extras=True)
    sig = inspect.signature(d.fn)
    params = [
        p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name != PROGRESS
    ]
    wants_progress = PROGRESS in sig.parameters
    if wants_progress:
        params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))

    def run(**kwargs: Any) -> CallToolResult:
        ctx = kwargs.pop("ctx", None)
        if wants_progress and ctx is not None:
            kwargs[PROGRESS] = progress_of(ctx)
        return call(d.fn, kwargs)

    run.__name__ = d.fn.__name__
    run.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=CallToolResult
    )
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": CallToolResult}
    made = ExpdTool.from_function(
        run,
        name=d.fn.__name__,
        description=inspect.cleandoc(d.fn.__doc__ or ""),
        annotations=ToolAnnotations(
            read_only_hint=d.read_only,
            destructive_hint=d.destructive,
            idempotent_hint=d.read_only or d.idempotent,
            open_world_hint=False,
        ),
    )
    # Published, not re-validated here: the struct already is the shape.
    made.fn_metadata.output_schema = output_schema(d.output)
    return made


def all_tools() -> list[Tool]:
    """Every registered tool, group by group (importing a group registers its tools)."""
    for group in GROUPS:
        importlib.import_module(f"shared.cli.mcp_server.{group}")
    return [as_mcp_tool(d) for d in REGISTERED.values()]
