"""Byte-offset reading of append-only files: only complete lines, never a half-written one."""

from __future__ import annotations

import os
from pathlib import Path


class TailReader:
    """Reads what was appended to a file since the last call.

    Consumes only up to the last newline, so a line the writer has not finished stays for the next
    call. A file that shrank (truncated or replaced) is read again from the start.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.truncated = False

    def read_lines(self, max_bytes: int | None = None) -> list[bytes]:
        self.truncated = False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self.offset = 0
                self.truncated = True
            if size == self.offset:
                return []
            want = size - self.offset
            if max_bytes is not None:
                want = min(want, max_bytes)
            data = os.pread(fd, want, self.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return [line for line in data[: end + 1].split(b"\n")[:-1] if line]


def read_complete_lines(path: Path) -> list[bytes]:
    """All complete lines of an append-only file (a torn last line is left out)."""
    return TailReader(path).read_lines()


def last_lines(path: Path, count: int, chunk: int = 65536) -> list[bytes]:
    """The last `count` complete lines, reading backwards so the cost does not grow with the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        data = b""
        pos = size
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            data = os.pread(fd, step, pos) + data
            if data.count(b"\n") > count:
                break
    finally:
        os.close(fd)
    end = data.rfind(b"\n")
    if end < 0:
        return []
    lines = [line for line in data[:end].split(b"\n") if line]
    if pos > 0:
        lines = lines[1:]  # the first piece may be a partial line
    return lines[-count:]
