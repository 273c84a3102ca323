"""Crash-safe file writes: a reader sees the old file or the new one, never a torn one.

Writes never follow a symlink someone planted in their place (the link is removed instead): a
run directory's files must not become a way to write into another file of the user.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def open_own(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` that replaces a symlink at `path` instead of following it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    os.unlink(path)
    return os.open(path, flags | os.O_NOFOLLOW, mode)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` by writing a temp file beside it, fsyncing, renaming, fsyncing the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_own(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def append_line(path: Path, line: bytes, *, durable: bool = True) -> None:
    """Append one complete line (with its newline) in a single write, optionally fsynced."""
    if not line.endswith(b"\n"):
        line += b"\n"
    fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
