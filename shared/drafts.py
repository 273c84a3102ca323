"""A drafted program: the files a drafting agent must leave, checked strictly, and the mark a draft
keeps until it is accepted or validated.

The agent writes into a folder expd gives it (`expd init NAME --draft`, docs/setup.md): it is
untrusted text, so every file is read without following a link, capped in size, and `program.toml`
goes through the same strict loader as a hand-written one, then through an allow-list: the agent
proposes the goal, the measurement and the statistics, never how its successors are confined, what
runs when a run ends, or which agent runs (expd writes `[agent]` from the command line).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from shared.atomic import write_atomic
from shared.errors import UserError
from shared.paths import ProgramPaths
from shared.programs import parse_program
from shared.schema import ProgramConfig

REQUIRED = ("program.md", "measure.sh", "program.toml")
OPTIONAL = ("build.sh",)
MAX_FILE_BYTES = 64 * 1024
ALLOWED: dict[str, frozenset[str] | None] = {
    "metric": None,
    "direction": None,
    "measure": frozenset({"timeout", "build_timeout", "protect"}),
    "decide": None,
    "gates": None,
    "secondary": None,
    "loop": frozenset(
        {"max_experiments", "max_consecutive_discards", "max_cost_usd", "keep_simplifications"}
    ),
}
"""The keys a draft's `program.toml` may set (None: the whole table). Everything else the strict
loader knows is refused: `[agent]`, `[[arms]]`, `[lanes]`, `[tune]`, `[measure] sandbox`,
`writable`, `command`, `build` (the measurement lives in `measure.sh` and `build.sh`), `[loop]
notify`."""
MARK_FILE = "draft.json"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class DraftError(UserError):
    """The draft breaks the output contract (one line, naming the file)."""


@dataclass(frozen=True)
class Draft:
    """A draft that passed the contract: the files' texts and the program they make."""

    files: dict[str, str]
    config: ProgramConfig


def printable(text: str) -> str:
    """A draft's text as a terminal may show it: control characters but newline and tab (an
    escape sequence would be obeyed, not shown) replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


def read_file(folder: Path, name: str) -> str | None:
    """`folder/name` as text; None when absent. A link, a non-regular file, a file over the cap or
    one that is not UTF-8 is a DraftError: the agent's folder is never followed elsewhere."""
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DraftError(f"{name}: cannot be read ({exc.strerror or exc}; a link?)") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise DraftError(f"{name}: not a regular file")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DraftError(f"{name}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise DraftError(f"{name}: not UTF-8 text") from None


def _check_keys(raw: Mapping[str, Any]) -> None:
    for key, value in raw.items():
        allowed = ALLOWED.get(key, frozenset())
        if allowed is None:
            continue
        if not allowed or not isinstance(value, dict):
            raise DraftError(f"program.toml: {_name(key, value)} is not for a draft to set")
        for sub in value:
            if sub not in allowed:
                raise DraftError(f"program.toml: [{key}] {sub} is not for a draft to set")


def _name(key: str, value: object) -> str:
    return f"[{key}]" if isinstance(value, dict | list) else f"'{key}'"


def agent_table(kind: str, model: str | None) -> str:
    """The `[agent]` table expd appends to a drafted `program.toml` (what `expd init` writes)."""
    quote = msgspec.json.encode
    lines = ["", "[agent]", f"kind = {quote(kind).decode()}"]
    if model:
        lines.append(f"model = {quote(model).decode()}")
    if kind == "command":
        lines.append('command = "./agent.sh"  # reads the prompt on stdin, edits the worktree')
    lines.append('timeout = "30m"')
    return "\n".join(lines) + "\n"


def check_draft(
    folder: Path,
    *,
    kind: str,
    model: str | None,
    metric: str | None = None,
    direction: str | None = None,
) -> Draft:
    """The draft in `folder`, or a DraftError saying what breaks the contract. `metric` and
    `direction`, when the user gave them, must be what the draft measures."""
    if kind == "tune":
        raise DraftError("a draft cannot set up the tune agent: use claude, codex, opencode …")
    files: dict[str, str] = {}
    for name in (*REQUIRED, *OPTIONAL):
        text = read_file(folder, name)
        if text is None and name in REQUIRED:
            raise DraftError(f"{name}: missing (the agent must write {', '.join(REQUIRED)})")
        if text is not None and name in REQUIRED and not text.strip():
            raise DraftError(f"{name}: empty")
        if text is not None:
            files[name] = text
    toml = files["program.toml"]
    try:
        raw = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        raise DraftError(f"program.toml: invalid TOML ({exc})") from None
    if "agent" in raw:
        raise DraftError("program.toml: [agent] is not for a draft to set (expd writes it)")
    files["program.toml"] = toml.rstrip("\n") + "\n" + agent_table(kind, model)
    try:  # the strict loader first: an unknown key reads as it does for any program.toml
        config = parse_program(files["program.toml"], source=Path("program.toml"))
    except UserError as exc:
        raise DraftError(str(exc)) from None
    _check_keys(raw)
    if metric is not None and config.metric != metric:
        raise DraftError(f"program.toml: metric is {config.metric!r}, not {metric!r} as asked")
    if direction is not None and config.direction != direction:
        raise DraftError(f"program.toml: direction is {config.direction!r}, not {direction!r}")
    return Draft(files=files, config=config)


# --------------------------------------------------------------------------- the mark


class DraftMark(msgspec.Struct, kw_only=True):
    """`draft.json` beside a drafted program until it is accepted (or validated after an edit)."""

    agent: str
    model: str | None = None
    created_at: float = 0.0
    status: Literal["validated", "failed"] = "failed"
    reason: str = ""


def mark_path(program: ProgramPaths) -> Path:
    return program.dir / MARK_FILE


def write_mark(
    program: ProgramPaths, *, agent: str, model: str | None, usable: bool, reason: str
) -> None:
    mark = DraftMark(
        agent=agent,
        model=model,
        created_at=time.time(),
        status="validated" if usable else "failed",
        reason=reason,
    )
    write_atomic(mark_path(program), msgspec.json.encode(mark))


def read_mark(program: ProgramPaths) -> DraftMark | None:
    try:
        return msgspec.json.decode(mark_path(program).read_bytes(), type=DraftMark)
    except (OSError, msgspec.DecodeError):
        return None


def accept(program: ProgramPaths) -> None:
    """The user keeps the draft: it becomes an ordinary program."""
    with contextlib.suppress(FileNotFoundError):
        mark_path(program).unlink()


def check_startable(program: ProgramPaths) -> None:
    """A draft whose measurement failed validation is not started until it is fixed."""
    mark = read_mark(program)
    if mark is not None and mark.status == "failed":
        raise UserError(
            f"program {program.name!r} is a draft whose measurement failed validation "
            f"({mark.reason}): edit {program.dir} and run `expd validate {program.name}`"
        )


def discard(program: ProgramPaths) -> None:
    """Remove a drafted program; refused for a program that is not a draft or has runs."""
    if read_mark(program) is None:
        raise UserError(f"program {program.name!r} is not a draft: expd does not delete it")
    runs = program.runs_dir
    if runs.is_dir() and any(runs.iterdir()):
        raise UserError(f"program {program.name!r} has runs: expd does not delete it")
    shutil.rmtree(program.dir)
