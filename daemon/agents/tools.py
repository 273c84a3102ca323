"""The built-in `openai` agent's tools: read, write, edit, list, run shell — all inside the worktree.

Paths are resolved (symlinks included) and must stay inside the worktree, so a model cannot read
or change anything else on the machine through them; `run_shell` runs in the worktree with a
timeout and the agent's sandbox, its whole process group killed on timeout or abort, its output
truncated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.ops import children as process
from daemon.ops.sandbox import UNCONFINED, Sandbox

MAX_OUTPUT = 20_000
"""Characters of a tool's output sent back to the model (head and tail kept)."""
MAX_READ_BYTES = 8 << 20
SHELL_TIMEOUT_S = 120.0
SHELL_MAX_TIMEOUT_S = 600.0


class ToolError(Exception):
    """A tool call the model got wrong: reported back to it as an error result, not raised on."""


def _schema(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


_STR = {"type": "string"}
SCHEMAS: list[dict[str, Any]] = [
    _schema(
        "read_file",
        "Read a text file (path relative to the worktree); a long one in parts, by line numbers.",
        {
            "path": _STR,
            "start_line": {"type": "integer", "description": "first line, from 1 (default 1)"},
            "end_line": {"type": "integer", "description": "last line (default: the end)"},
        },
        ["path"],
    ),
    _schema(
        "write_file",
        "Create or overwrite a file with the given content.",
        {"path": _STR, "content": _STR},
        ["path", "content"],
    ),
    _schema(
        "edit_file",
        "Replace the exact text old_string (which must occur exactly once) with new_string.",
        {"path": _STR, "old_string": _STR, "new_string": _STR},
        ["path", "old_string", "new_string"],
    ),
    _schema(
        "list_dir",
        "List a directory (default: the worktree root); directories end with '/'.",
        {"path": _STR},
        [],
    ),
    _schema(
        "run_shell",
        f"Run a bash command in the worktree; output truncated to {MAX_OUTPUT} characters.",
        {"command": _STR, "timeout": {"type": "number", "description": "seconds (default 120)"}},
        ["command"],
    ),
]


def truncate(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 40) // 2  # room for the marker: the result stays within `limit`
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


@dataclass
class Workspace:
    """The tools bound to one experiment's worktree."""

    root: Path
    env: Mapping[str, str]
    on_process_start: Callable[[int], None] = lambda pgid: None
    sandbox: Sandbox = UNCONFINED

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def resolve(self, path: str, *, writing: bool = False) -> Path:
        """`path` inside the worktree, or ToolError; symlinks are followed before checking."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("path must be a non-empty string")
        target = (self.root / path).resolve()
        if target != self.root and not target.is_relative_to(self.root):
            raise ToolError(f"{path}: outside the worktree (only paths inside it are allowed)")
        rel = target.relative_to(self.root)
        if writing and rel.parts and rel.parts[0] == ".git":
            raise ToolError(f"{path}: git's own files are not to be changed")
        return target

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """Run tool `name`; ToolError for anything the model should correct."""
        match name:
            case "read_file":
                return self.read_file(
                    args.get("path", ""), args.get("start_line"), args.get("end_line")
                )
            case "write_file":
                return self.write_file(args.get("path", ""), _text(args, "content"))
            case "edit_file":
                return self.edit_file(
                    args.get("path", ""), _text(args, "old_string"), _text(args, "new_string")
                )
            case "list_dir":
                return self.list_dir(args.get("path") or ".")
            case "run_shell":
                return await self.run_shell(_text(args, "command"), args.get("timeout"))
        raise ToolError(
            f"unknown tool {name!r} (tools: read_file, write_file, edit_file, list_dir, run_shell)"
        )

    def read_file(self, path: str, start: Any = None, end: Any = None) -> str:
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        if target.stat().st_size > MAX_READ_BYTES:
            raise ToolError(f"{path}: larger than {MAX_READ_BYTES >> 20} MB; use run_shell")
        text = target.read_text(errors="replace")
        if start is None and end is None:
            if len(text) <= MAX_OUTPUT:
                return text
            count = len(text.splitlines())
            note = f"[{path} has {count} lines: read the middle with start_line/end_line]"
            return truncate(text, MAX_OUTPUT - len(note) - 2) + "\n" + note
        if not all(v is None or isinstance(v, int) for v in (start, end)):
            raise ToolError("start_line and end_line must be integers")
        lines = text.splitlines(keepends=True)
        first = max(start or 1, 1)
        return truncate("".join(lines[first - 1 : end]))

    def write_file(self, path: str, content: str) -> str:
        target = self.resolve(path, writing=True)
        if target.is_dir():
            raise ToolError(f"{path}: is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} characters to {path}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        target = self.resolve(path, writing=True)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        if not old:
            raise ToolError("old_string must not be empty (use write_file to create a file)")
        text = target.read_text(errors="replace")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"{path}: old_string not found (it must match the file exactly)")
        if count > 1:
            raise ToolError(f"{path}: old_string occurs {count} times; include more context")
        target.write_text(text.replace(old, new, 1))
        return f"edited {path}"

    def list_dir(self, path: str) -> str:
        target = self.resolve(path)
        if not target.is_dir():
            raise ToolError(f"{path}: not a directory")
        names = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in target.iterdir()
            if entry.name != ".git"
        )
        return truncate("\n".join(names)) if names else "(empty)"

    async def run_shell(self, command: str, timeout: Any = None) -> str:
        if not command.strip():
            raise ToolError("command must not be empty")
        try:
            limit = float(timeout) if timeout is not None else SHELL_TIMEOUT_S
        except (TypeError, ValueError):
            raise ToolError(f"timeout must be a number of seconds, not {timeout!r}") from None
        limit = min(max(limit, 0.1), SHELL_MAX_TIMEOUT_S)
        capture = _Capture()
        result = await process.run(
            command,
            cwd=self.root,
            env=self.env,
            timeout=limit,
            on_line=capture.add,
            on_start=self.on_process_start,
            keep_stdout=False,
            sandbox=self.sandbox,
        )
        output = capture.text()
        if result.timed_out:
            return f"timed out after {limit:g}s (process group killed)\n{output}"
        return f"exit code {result.returncode}\n{output}"


def _text(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolError(f"argument {key!r} must be a string")
    return value


class _Capture:
    """A command's output, bounded: its head and its tail, with a count of what was cut."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.half = limit // 2 - 100
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.cut = 0

    def add(self, stream: str, line: str) -> None:
        if self.head_size < self.half:
            self.head.append(line)
            self.head_size += len(line) + 1
            return
        self.tail.append(line)
        self.tail_size += len(line) + 1
        while self.tail_size > self.half and len(self.tail) > 1:
            self.tail_size -= len(self.tail.popleft()) + 1
            self.cut += 1

    def text(self) -> str:
        cut = [f"… [{self.cut} lines cut] …"] if self.cut else []
        return truncate("\n".join([*self.head, *cut, *self.tail]))
