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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">4sLL")
_STAT = struct.Struct(">LLLLLLLLLL")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size
_FIXED = 62  # the stat data, a 20-byte object id and the 2-byte flags
_ENTRY = struct.Struct(">40s20sH")


class IndexFormatError(Exception):
    """The index is not one this module reads (a version 4 index, an unmerged entry, …)."""


@dataclass
class IndexFile:
    entries: dict[bytes, bytes]
    """Each entry's whole record as stored (written back unchanged), by path."""
    trees: bytes = b""
    """The cached tree ids (git's TREE extension), so writing a tree from the index does not hash
    every directory again; b"" when there is none."""


def read_index(path: Path) -> IndexFile:
    """The index's entries and tree cache (other extensions are dropped); IndexFormatError for a
    version, stage or flag not handled here, or a bad checksum."""
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
    trees = b""
    while at + 8 <= end:
        kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "big")
        if kind == b"TREE":
            trees = data[at + 8 : at + 8 + size]
        at += 8 + size
    return IndexFile(out, trees)


def invalidate_trees(trees: bytes, paths: Iterable[str]) -> bytes:
    """The tree cache with every directory holding one of `paths` (the root included) marked
    invalid, as git does when an entry changes; b"" (no cache) when it cannot be read."""
    if not trees:
        return b""
    dirs = {b""}
    for path in paths:
        name = os.fsencode(path)
        cut = name.find(b"/")
        while cut >= 0:
            dirs.add(name[: cut + 1])
            cut = name.find(b"/", cut + 1)
    nodes: list[tuple[bytes, int, int, bytes]] = []  # name, entry count, subtree count, id
    at = 0
    try:
        while at < len(trees):
            nul = trees.index(b"\0", at)
            line = trees.index(b"\n", nul)
            count, subtrees = (int(x) for x in trees[nul + 1 : line].split(b" "))
            oid = trees[line + 1 : line + 21] if count >= 0 else b""
            nodes.append((trees[at:nul], count, subtrees, oid))
            at = line + 1 + len(oid)
        paths_of: list[bytes] = []

        def walk(i: int, prefix: bytes) -> int:
            paths_of.append(prefix)
            j = i + 1
            for _ in range(nodes[i][2]):
                j = walk(j, prefix + nodes[j][0] + b"/")
            return j

        if not nodes or walk(0, b"") != len(nodes):
            return b""
    except (ValueError, IndexError, RecursionError):
        return b""
    out = []
    for (name, count, subtrees, oid), where in zip(nodes, paths_of, strict=True):
        if where in dirs:
            count, oid = -1, b""
        out.append(b"%s\0%d %d\n%s" % (name, count, subtrees, oid))
    return b"".join(out)


def record(name: bytes, stat: bytes, oid: bytes) -> bytes:
    """An entry's record: its stat data, object id, flags and path, padded as version 2 pads."""
    pad = 8 - (_FIXED + len(name)) % 8
    return _ENTRY.pack(stat, oid, min(len(name), 0xFFF)) + name + b"\0" * pad


def stat_bytes(st: os.stat_result, mode: int) -> bytes:
    """An entry's stat data for a file just written (`mode`: the git mode it is recorded with)."""
    m = 0xFFFFFFFF
    return _STAT.pack(
        st.st_ctime_ns // 1_000_000_000 & m,
        st.st_ctime_ns % 1_000_000_000,
        st.st_mtime_ns // 1_000_000_000 & m,
        st.st_mtime_ns % 1_000_000_000,
        st.st_dev & m,
        st.st_ino & m,
        mode,
        st.st_uid & m,
        st.st_gid & m,
        st.st_size & m,
    )


def write_index(path: Path, index: IndexFile) -> None:
    """Write a version 2 index of `index` (records sorted as git sorts them, then the tree cache)
    through a lock file renamed into place."""
    entries = index.entries
    parts = [_HEADER.pack(b"DIRC", 2, len(entries)), *(entries[n] for n in sorted(entries))]
    if index.trees:
        parts += [b"TREE", len(index.trees).to_bytes(4, "big"), index.trees]
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
