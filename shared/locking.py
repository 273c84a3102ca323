"""`flock` helpers: the kernel drops the lock when its holder dies, so it can never go stale."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def is_locked(path: Path) -> bool:
    """Whether another open file description holds an exclusive lock on `path` (file or directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """Take an exclusive lock without waiting; the fd to keep open, or None if another holds it."""
    return _lock_now(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))


def try_lock_dir(path: Path) -> int | None:
    """Lock a directory through its own descriptor: unlike a lock file, nobody can unlink it away
    while the holder lives (a new directory of the same name is a different one)."""
    return _lock_now(os.open(path, os.O_RDONLY | os.O_DIRECTORY))


def _lock_now(fd: int) -> int | None:
    """`fd` exclusively locked, or None (and `fd` closed) when another holds the lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_blocking(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
