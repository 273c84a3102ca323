"""The `tune` agent's parameters: checking declarations, reading and rewriting their files."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from daemon.agents.base import AgentUnavailable
from shared.schema import TuneParam

Value = str | int | float | bool


class TuneError(Exception):
    """A parameter's file cannot be read or its pattern matches nothing; the message names both."""


@dataclass(frozen=True)
class Param:
    name: str
    spec: TuneParam
    pattern: re.Pattern[str]


def check_param(name: str, spec: TuneParam) -> None:
    """Reject declarations Optuna cannot represent, before the run starts rather than mid-run."""
    where = f"[tune.params.{name}]"
    if spec.type == "choice":
        return
    if spec.log and spec.step is not None:
        raise AgentUnavailable(f"{where}: log and step cannot be combined")
    if spec.type == "int":
        for key in ("low", "high", "step"):
            value = getattr(spec, key)
            if value is not None and float(value) != int(value):
                raise AgentUnavailable(f"{where}: {key} must be a whole number for type 'int'")
        if spec.step is not None and spec.step < 1:
            raise AgentUnavailable(f"{where}: step must be at least 1 for type 'int'")
    elif spec.step is not None and spec.step <= 0:
        raise AgentUnavailable(f"{where}: step must be positive")


def format_value(spec: TuneParam, value: Value) -> str:
    """The file's new text: ints as ints, floats short yet precise, choices as their str."""
    if spec.type == "int":
        return str(int(value))
    if spec.type == "float":
        return repr(float(f"{float(value):.12g}"))
    return str(value)


def parse_value(spec: TuneParam, text: str) -> Value | None:
    """The value a file currently holds, or None if it is not one of the declared type."""
    try:
        if spec.type == "int":
            return int(text.strip())
        if spec.type == "float":
            number = float(text.strip())
            return number if math.isfinite(number) else None
    except ValueError:
        return None
    for choice in spec.choices or []:
        if str(choice) == text:
            return choice
    return None


def read_files(params: list[Param], worktree: Path) -> dict[str, str]:
    """Each parameter file's text; raises TuneError naming the file and parameter."""
    texts: dict[str, str] = {}
    for param in params:
        if param.spec.file in texts:
            continue
        path = worktree / param.spec.file
        try:
            texts[param.spec.file] = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TuneError(
                f"cannot read {param.spec.file} for tune param {param.name!r}: {exc}"
            ) from None
    return texts


def match(param: Param, text: str) -> re.Match[str]:
    found = param.pattern.search(text)
    if found is None or found.start(1) < 0:
        raise TuneError(
            f"tune param {param.name!r}: pattern {param.spec.pattern!r} matches nothing "
            f"in {param.spec.file}"
        )
    return found


def current_values(params: list[Param], texts: dict[str, str]) -> dict[str, Value | None]:
    """What the files hold now (None where the text is not a value of the declared type)."""
    return {p.name: parse_value(p.spec, match(p, texts[p.spec.file]).group(1)) for p in params}


def render(params: list[Param], texts: dict[str, str], values: dict[str, Value]) -> dict[str, str]:
    """The files' new text: group 1 of each pattern's first match replaced by the value."""
    out = dict(texts)
    for param in params:
        text = out[param.spec.file]
        found = match(param, text)
        new = format_value(param.spec, values[param.name])
        out[param.spec.file] = text[: found.start(1)] + new + text[found.end(1) :]
    return out
