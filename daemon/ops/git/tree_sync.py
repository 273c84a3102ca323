"""A checkout that writes only what differs: the files between a tree's index and the target
commit, plus whatever the tree's status shows changed; every other file and its stat data stay.

libgit2's checkout walks and re-examines the whole tree and costs ~0.2 ms per file it writes (a
lane's reset after a hundred keeps brings in a hundred files). Here the paths to touch come from
the tree's status (what was changed, added or left behind since the index was written) and the
index-to-target diff; each is written through directory file descriptors opened without following
symlinks, as a new file (`O_EXCL`: never through a hard link or a symlink planted there), and the
index is written with the stat data of the files kept and of those written. The tree must then show
no change at all against the target (untracked files allowed only when not `clean`), or
`FallBack` is raised and the caller does the full libgit2 checkout. Anything unusual (a nested
repository, a submodule, a directory where a file goes, an index this module does not read) also
falls back.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import pygit2
from pygit2.enums import FileStatus

from daemon.ops.git.index_file import (
    IndexFile,
    IndexFormatError,
    invalidate_trees,
    read_index,
    record,
    stat_bytes,
    write_index,
)

_WORKTREE = (
    FileStatus.WT_NEW
    | FileStatus.WT_MODIFIED
    | FileStatus.WT_DELETED
    | FileStatus.WT_TYPECHANGE
    | FileStatus.WT_RENAMED
    | FileStatus.WT_UNREADABLE
    | FileStatus.CONFLICTED
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BLOB_MODES = (0o100644, 0o100755, 0o120000)
RACY_WRITES = 16
"""More files written than this: wait for the clock to pass their timestamps before writing the
index, so no entry is racily clean (a status would re-hash it each time)."""
_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5 if os.uname().sysname == "Linux" else None)


BLOB_CACHE_BYTES = 16 << 20
"""The most blob content kept in memory for the next checkouts (objects are immutable: a blob's
id names its content)."""
_BLOBS: OrderedDict[bytes, bytes] = OrderedDict()
_BLOBS_LOCK = threading.Lock()
_blobs_size = 0


class FallBack(Exception):
    """The fast path cannot do this checkout safely; the full one must."""


def sync_tree(
    repo: pygit2.Repository, workdir: Path, target: pygit2.Commit, *, clean: bool
) -> None:
    """Make `workdir` (the work directory of `repo`, an expd private git dir) exactly `target`:
    tracked files, the index and a detached HEAD; untracked files removed when `clean`. Raises
    FallBack (before or after writing) when it cannot; the full checkout then does it all again."""
    gitdir = Path(repo.path)
    try:
        old = read_index(gitdir / "index")
    except FileNotFoundError:
        old = IndexFile({})  # a new git dir: every file is written
    except (OSError, IndexFormatError, ValueError) as exc:
        raise FallBack(f"index: {exc}") from None
    status = repo.status(untracked_files="all")
    dirty: dict[str, int] = {}
    for name, flags in status.items():
        if name.endswith("/"):
            raise FallBack(f"a nested repository at {name}")
        if flags & _WORKTREE:
            dirty[name] = flags
    index = repo.index
    touched: set[str] = set(dirty)
    for delta in index.diff_to_tree(target.tree).deltas:
        touched.update((delta.old_file.path, delta.new_file.path))
    if not touched and _head(gitdir) == str(target.id):
        return
    tree = target.tree
    wanted: dict[str, tuple[pygit2.Oid, int] | None] = {}
    for name in touched:
        if not clean and dirty.get(name) == FileStatus.WT_NEW and name not in index:
            try:
                tree[name]
            except KeyError:
                continue  # an untracked file, kept when not cleaning
        wanted[name] = _target(tree, name)
    entries = old.entries
    try:
        root = os.open(workdir, _DIR_FLAGS)
    except OSError as exc:
        raise FallBack(f"the tree: {exc}") from None
    try:
        _remove(root, tree, [n for n, w in wanted.items() if w is None], entries)
        written = _write(repo, root, {n: w for n, w in wanted.items() if w is not None}, entries)
    except OSError as exc:
        raise FallBack(f"writing: {exc}") from None
    finally:
        os.close(root)
    if len(written) > RACY_WRITES:
        _wait_past(max(written))
    try:
        write_index(gitdir / "index", IndexFile(entries, invalidate_trees(old.trees, wanted)))
        _write_head(gitdir, str(target.id))
    except OSError as exc:
        raise FallBack(f"index: {exc}") from None
    index.read(True)
    left = repo.status(untracked_files="all")
    if clean:
        bad = sorted(left)
    else:
        bad = sorted(n for n, f in left.items() if f != FileStatus.WT_NEW or n.endswith("/"))
    if bad or _head(gitdir) != str(target.id):
        raise FallBack(f"not clean after the fast checkout: {bad[:3]}")


def _target(tree: pygit2.Tree, name: str) -> tuple[pygit2.Oid, int] | None:
    """The target's blob or symlink at `name`; None when it has none (a directory there is checked
    when writing)."""
    _check_name(name)
    try:
        entry = tree[name]
    except KeyError:
        return None
    if entry.filemode == 0o040000:
        return None
    if entry.filemode not in _BLOB_MODES:
        raise FallBack(f"{name}: mode {entry.filemode:o}")
    if len(entry.id.raw) != 20:
        raise FallBack("not a SHA-1 repository")
    return entry.id, entry.filemode


def _check_name(name: str) -> None:
    for part in name.split("/"):
        if part in ("", ".", "..") or part.lower() == ".git" or "\ufffd" in part:
            raise FallBack(f"an odd path {name!r}")


def _remove(
    root: int, tree: pygit2.Tree, names: Iterable[str], entries: dict[bytes, bytes]
) -> None:
    """Remove each file (or symlink) at `names`, then the directories that held them, when empty
    and not in the target."""
    parents: set[str] = set()
    for name in names:
        entries.pop(os.fsencode(name), None)
        head, _, leaf = name.rpartition("/")
        fd = _open_dir(root, head, create=False)
        if fd is None:
            continue
        try:
            os.unlink(leaf, dir_fd=fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            parents.add(name)  # a directory where the index had a file: its files are listed too
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
            _rmdir_if_empty(fd, leaf)  # EPERM: unlink of a directory on Linux
        finally:
            if fd != root:
                os.close(fd)
        while head:
            parents.add(head)
            head = head.rpartition("/")[0]
    for name in sorted(parents, key=lambda p: -p.count("/")):
        try:
            if tree[name].filemode == 0o040000:
                continue
        except KeyError:
            pass
        head, _, leaf = name.rpartition("/")
        fd = _open_dir(root, head, create=False)
        if fd is None:
            continue
        try:
            _rmdir_if_empty(fd, leaf)
        finally:
            if fd != root:
                os.close(fd)


def _rmdir_if_empty(fd: int, leaf: str) -> None:
    try:
        os.rmdir(leaf, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
            raise


def _write(
    repo: pygit2.Repository,
    root: int,
    wanted: dict[str, tuple[pygit2.Oid, int]],
    entries: dict[bytes, bytes],
) -> list[int]:
    """Write each wanted blob or symlink as a new file; the index entries follow. The files' mtimes
    (ns) are returned."""
    mtimes: list[int] = []
    odb = repo.odb
    dirs: dict[str, int] = {"": root}  # each directory opened once
    try:
        for name in sorted(wanted):
            oid, mode = wanted[name]
            head, _, leaf = name.rpartition("/")
            fd = dirs.get(head)
            if fd is None:
                fd = dirs[head] = _open_dir(root, head, create=True)  # type: ignore[assignment]
            st = _write_one(odb, fd, leaf, name, oid, mode)
            path = os.fsencode(name)
            entries[path] = record(path, stat_bytes(st, mode), oid.raw)
            mtimes.append(st.st_mtime_ns)
    finally:
        for fd in dirs.values():
            if fd != root:
                os.close(fd)
    return mtimes


def _write_one(
    odb: pygit2.Odb, fd: int, leaf: str, name: str, oid: pygit2.Oid, mode: int
) -> os.stat_result:
    """One blob or symlink written as a new file `leaf` in directory `fd`; its stat data."""
    try:
        os.unlink(leaf, dir_fd=fd)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError) as exc:
        raise FallBack(f"{name}: a directory stands there ({exc})") from None
    data = _blob(odb, oid)
    if mode == 0o120000:
        os.symlink(data, leaf, dir_fd=fd)
        st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
    else:
        out = os.open(leaf, _NEW_FILE, 0o777 if mode == 0o100755 else 0o666, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            st = os.fstat(out)
        finally:
            os.close(out)
        if bool(st.st_mode & 0o100) != (mode == 0o100755):
            raise FallBack(f"{name}: the umask changes its mode")
    return st


def _blob(odb: pygit2.Odb, oid: pygit2.Oid) -> bytes:
    """A blob's content, from the cache shared by every tree of the process when it is there:
    with lanes, each keep's files are written into every lane's tree, and reading each from the
    object store (five system calls for a loose object) was a third of the work per file."""
    key = oid.raw
    with _BLOBS_LOCK:
        data = _BLOBS.get(key)
        if data is not None:
            _BLOBS.move_to_end(key)
            return data
    _kind, data = odb.read(oid)
    if len(data) <= BLOB_CACHE_BYTES // 64:
        global _blobs_size
        with _BLOBS_LOCK:
            if key not in _BLOBS:
                _BLOBS[key] = data
                _blobs_size += len(data)
                while _blobs_size > BLOB_CACHE_BYTES:
                    _blobs_size -= len(_BLOBS.popitem(last=False)[1])
    return data


def _open_dir(root: int, path: str, *, create: bool) -> int | None:
    """A descriptor of directory `path` below `root`, each step opened without following a
    symlink; with `create`, missing directories are made and a file or symlink in the way is
    removed. None when it is not there (without `create`)."""
    fd = root
    try:
        for part in path.split("/") if path else ():
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                in_the_way = isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP
                if not isinstance(exc, FileNotFoundError) and not in_the_way:
                    raise
                if not create:
                    if fd != root:
                        os.close(fd)
                    return None
                if in_the_way:
                    os.unlink(part, dir_fd=fd)  # a file or symlink where the target has a directory
                os.mkdir(part, 0o777, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            if fd != root:
                os.close(fd)
            fd = nxt
    except BaseException:
        if fd != root:
            os.close(fd)
        raise
    return fd


def _head(gitdir: Path) -> str:
    try:
        return (gitdir / "HEAD").read_text().strip()
    except OSError:
        return ""


def _write_head(gitdir: Path, commit: str) -> None:
    """A detached HEAD at `commit`, through a lock file renamed into place (no reflog)."""
    lock = gitdir / "HEAD.lock"
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{commit}\n".encode())
    finally:
        os.close(fd)
    os.replace(lock, gitdir / "HEAD")


def _wait_past(newest_ns: int) -> None:
    """Sleep until the clock file timestamps come from has passed `newest_ns` (at most a few
    ms), so an index written next is newer than every file it records."""
    clock = _COARSE_CLOCK
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        now = time.clock_gettime_ns(clock) if clock is not None else time.time_ns()
        if now > newest_ns:
            return
        time.sleep(0.001)
