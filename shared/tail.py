"""Every read of an append-only file by byte offset, forwards or backwards, in one place.

The writers (the daemon's results, events and logs) only ever append, and a reader may look at any
moment, mid-write. So line readers hand out complete lines only: a line without its newline yet is
left for the next call. Backward reads cost what they return, not what the file holds, so a view of
a night-long run's last lines is as cheap as of a fresh one's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

CHUNK = 65536
"""How much a backward read takes per step."""


class TailReader:
    """Reads what was appended to a file since the last call.

    Consumes only up to the last newline, so a line the writer has not finished stays for the next
    call. A file that shrank (truncated) or was replaced by another file (a new inode, as after a
    rotation) is read again from the start, and `truncated` says so until the next call.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.truncated = False
        self._inode: tuple[int, int] | None = None

    def read_lines(self) -> list[bytes]:
        self.truncated = False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            st = os.fstat(fd)
            inode = (st.st_dev, st.st_ino)
            if st.st_size < self.offset or self._inode not in (None, inode):
                self.offset = 0
                self.truncated = True
            self._inode = inode
            if st.st_size == self.offset:
                return []
            data = os.pread(fd, st.st_size - self.offset, self.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return _lines(data[:end])


def read_complete_lines(path: Path) -> list[bytes]:
    """All complete lines of an append-only file (a torn last line is left out)."""
    return TailReader(path).read_lines()


def head_lines(path: Path, max_bytes: int) -> list[bytes]:
    """The complete lines within the first `max_bytes` of the file (where its header records are)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        data = os.pread(fd, max_bytes, 0)
    finally:
        os.close(fd)
    return _lines(data[: max(data.rfind(b"\n"), 0)])


def tail_lines(path: Path, count: int, chunk: int = CHUNK) -> tuple[list[bytes], int]:
    """The last `count` complete lines and the offset just past the last of them.

    The offset is where a `TailReader` takes over, so a view shows the recent past and then
    follows without a gap or a repeat.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return [], 0
    try:
        data, pos = _read_back(fd, os.fstat(fd).st_size, max(count, 0), chunk)
    finally:
        os.close(fd)
    end = data.rfind(b"\n")
    if end < 0:
        return [], pos  # no newline anywhere: the whole file is one unfinished line
    lines = data[:end].split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first piece may be a partial line
    lines = [line for line in lines if line]
    return (lines[-count:] if count > 0 else []), pos + end + 1


def last_lines(path: Path, count: int, chunk: int = CHUNK) -> list[bytes]:
    """The last `count` complete lines, reading backwards so the cost does not grow with the file."""
    return tail_lines(path, count, chunk)[0]


def end_of_last_line(path: Path, chunk: int = CHUNK) -> int:
    """The offset just past the last complete line: where following only new lines starts."""
    return tail_lines(path, 0, chunk)[1]


def last_bytes(path: Path, limit: int) -> tuple[bytes, int] | None:
    """The file's last `limit` bytes (fewer when a UTF-8 character straddles the cut, so the text
    never starts mid-character) and their offset; None when the file does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        start = max(os.fstat(fd).st_size - limit, 0)
        data = os.pread(fd, limit, start)
    finally:
        os.close(fd)
    skip = 0
    while start > 0 and skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
        skip += 1  # a UTF-8 continuation byte: the character began before the cut
    return data[skip:], start + skip


def read_from(path: Path, offset: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Everything past `offset`, in chunks, for copying a log out as it grows (nothing if missing)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        while data := f.read(chunk):
            yield data


def _read_back(fd: int, size: int, count: int, chunk: int) -> tuple[bytes, int]:
    """The file's end from the offset returned on, holding `count` complete non-blank lines after
    its first (maybe partial) one, or all of the file."""
    pieces: list[bytes] = []
    pos, newlines = size, 0
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        pieces.append(os.pread(fd, step, pos))
        newlines += pieces[-1].count(b"\n")
        if newlines > count:  # cheap test first; blank lines make it optimistic
            data = b"".join(reversed(pieces))
            if len(_lines(data[data.find(b"\n") + 1 : data.rfind(b"\n")])) >= count:
                return data, pos
    return b"".join(reversed(pieces)), pos


def _lines(data: bytes) -> list[bytes]:
    """Non-empty lines of newline-terminated data, given without its final newline."""
    return [line for line in data.split(b"\n") if line]
