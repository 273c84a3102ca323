"""Decoding of contract files with errors that name the file and the problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from shared.errors import ContractError

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def encode_line(obj: Any) -> bytes:
    return _encoder.encode(obj) + b"\n"


def decode(data: bytes, type_: type[T], *, source: str | os.PathLike[str]) -> T:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ContractError(f"{source}: unreadable ({exc})") from None


def read(path: Path, type_: type[T]) -> T:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContractError(f"{path}: missing") from None
    except OSError as exc:
        raise ContractError(f"{path}: cannot read ({exc.strerror})") from None
    return decode(data, type_, source=path)


def read_optional(path: Path, type_: type[T]) -> T | None:
    """Like `read`, but a missing file is None rather than an error."""
    if not path.exists():
        return None
    return read(path, type_)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
