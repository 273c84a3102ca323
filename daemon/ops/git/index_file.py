"""expd's own index files read and written directly (git's format, versions 2 and 3), so a reset
keeps the stat data of every file it did not write, as git does.

libgit2 (through pygit2) can set an index entry's path, id and mode but not its stat data: an index
rebuilt through it makes every status re-hash every file. Here an entry's stat data is carried over
from the index it had (the file was verified unchanged) or taken from the file just written. Only
expd's private git dirs are written this way; anything unexpected raises IndexFormatError and the
caller falls back to libgit2.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">4sLL")
_STAT = struct.Struct(">LLLLLLLLLL")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size
_FIXED = 62  # the stat data, a 20-byte object id and the 2-byte flags
_ENTRY = struct.Struct(">40s20sH")


class IndexFormatError(Exception):
    """The index is not one this module reads (a version 4 index, an unmerged entry, …)."""


@dataclass(frozen=True, slots=True)
class Entry:
    stat: bytes
    """The 40 bytes of stat data, as git stores them (mode included)."""
    oid: bytes
    """The raw 20-byte object id."""

    @property
    def mode(self) -> int:
        return int.from_bytes(self.stat[24:28], "big")


def read_entries(path: Path) -> dict[bytes, Entry]:
    """The index's entries by path; IndexFormatError for a version, stage or flag not handled here,
    or a bad checksum."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size + 20 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
        raise IndexFormatError("truncated or bad checksum")
    signature, version, count = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3):
        raise IndexFormatError(f"index version {version}")
    out: dict[bytes, Entry] = {}
    at = _HEADER.size
    end = len(data) - 20
    for _ in range(count):
        if at + _FIXED > end:
            raise IndexFormatError("truncated entry")
        stat, oid, flags = _ENTRY.unpack_from(data, at)
        if flags & 0x3000 or flags & 0x8000:  # a conflict stage, or assume-valid
            raise IndexFormatError("an unmerged or assume-valid entry")
        start = at + _FIXED
        if flags & 0x4000:  # extended flags (intent-to-add, skip-worktree)
            raise IndexFormatError("an entry with extended flags")
        nul = data.index(b"\0", start, end)
        name = data[start:nul]
        out[name] = Entry(stat, oid)
        at += (_FIXED + len(name) + 8) & ~7
    return out


def stat_bytes(st: os.stat_result, mode: int) -> bytes:
    """An entry's stat data for a file just written (`mode`: the git mode it is recorded with)."""
    m = 0xFFFFFFFF
    return _STAT.pack(
        int(st.st_ctime) & m,
        st.st_ctime_ns % 1_000_000_000,
        int(st.st_mtime) & m,
        st.st_mtime_ns % 1_000_000_000,
        st.st_dev & m,
        st.st_ino & m,
        mode,
        st.st_uid & m,
        st.st_gid & m,
        st.st_size & m,
    )


def write_entries(path: Path, entries: dict[bytes, Entry]) -> None:
    """Write a version 2 index of `entries` (sorted as git sorts them) through a lock file renamed
    into place; no extensions (libgit2 rebuilds its tree cache when it needs one)."""
    parts = [_HEADER.pack(b"DIRC", 2, len(entries))]
    for name in sorted(entries):
        entry = entries[name]
        flags = min(len(name), 0xFFF)
        pad = 8 - (_FIXED + len(name)) % 8
        parts.append(_ENTRY.pack(entry.stat, entry.oid, flags) + name + b"\0" * pad)
    body = b"".join(parts)
    data = body + hashlib.sha1(body).digest()
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
        os.close(fd)
        fd = -1
        os.replace(lock, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        raise
