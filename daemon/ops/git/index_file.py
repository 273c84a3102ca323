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
from pathlib import Path

_HEADER = struct.Struct(">4sLL")
_STAT = struct.Struct(">LLLLLLLLLL")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size
_FIXED = 62  # the stat data, a 20-byte object id and the 2-byte flags
_ENTRY = struct.Struct(">40s20sH")


class IndexFormatError(Exception):
    """The index is not one this module reads (a version 4 index, an unmerged entry, …)."""


def read_entries(path: Path) -> dict[bytes, bytes]:
    """The index's entries by path, each its whole record as stored (written back unchanged);
    IndexFormatError for a version, stage or flag not handled here, or a bad checksum."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size + 20 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
        raise IndexFormatError("truncated or bad checksum")
    signature, version, count = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3):
        raise IndexFormatError(f"index version {version}")
    out: dict[bytes, bytes] = {}
    at = _HEADER.size
    end = len(data) - 20
    find = data.index
    for _ in range(count):
        flags = int.from_bytes(data[at + 60 : at + 62], "big")
        if flags & 0xF000:  # assume-valid, extended flags, or a conflict stage
            raise IndexFormatError("an unmerged, assume-valid or extended entry")
        start = at + _FIXED
        nul = find(b"\0", start, end)
        size = (nul - at + 8) & ~7
        out[data[start:nul]] = data[at : at + size]
        at += size
    if at > end:
        raise IndexFormatError("truncated entry")
    return out


def record(name: bytes, stat: bytes, oid: bytes) -> bytes:
    """An entry's record: its stat data, object id, flags and path, padded as version 2 pads."""
    pad = 8 - (_FIXED + len(name)) % 8
    return _ENTRY.pack(stat, oid, min(len(name), 0xFFF)) + name + b"\0" * pad


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


def write_entries(path: Path, entries: dict[bytes, bytes]) -> None:
    """Write a version 2 index of `entries` (records by path, sorted as git sorts them) through a
    lock file renamed into place; no extensions (libgit2 rebuilds its tree cache when needed)."""
    body = b"".join(
        [_HEADER.pack(b"DIRC", 2, len(entries)), *(entries[n] for n in sorted(entries))]
    )
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
