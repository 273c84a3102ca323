"""Seals: the daemon's mark on what it wrote, so a line someone else wrote is never trusted.

Each run has a random key in `run.key` (mode 0600, never copied into run.json or any other file).
The daemon appends `"seal":"<HMAC-SHA256 of the line without it>"` as the last key of every
results line and of state.json, and expd's own control writer seals each request the same way. A
reader holding the key drops whatever does not verify. Runs from before seals have no key and
load as before.

What this holds against: an agent that can write the run directory but not read `run.key` (the
sandbox hides the run directory altogether). An unconfined agent runs as the user and can read the
key like any other file of the user; the live daemon still restores results.jsonl to what it wrote
(see daemon/service/store.py), so a forged line survives only if the agent also kills the daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from shared.atomic import open_own
from shared.paths import RunPaths

KEY_BYTES = 32
_SEAL = re.compile(rb',"seal":"([0-9a-f]{64})"}\s*$')


def key_path(paths: RunPaths) -> Path:
    return paths.dir / "run.key"


def create_key(paths: RunPaths) -> bytes:
    """A fresh key, created readable by the user only; refuses to replace an existing one."""
    key = os.urandom(KEY_BYTES)
    fd = os.open(key_path(paths), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def restore_key(paths: RunPaths, key: bytes) -> bool:
    """Put the live daemon's key back if it was deleted or replaced (expd's writers sign with the
    file); True if it had to."""
    if load_key(paths) == key:
        return False
    tmp = key_path(paths).with_name(f".run.key.{os.getpid()}.tmp")
    fd = open_own(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, key_path(paths))
    return True


def load_key(paths: RunPaths) -> bytes | None:
    """The run's key, or None when it has none (a run from before seals, or the key is gone)."""
    try:
        text = key_path(paths).read_text().strip()
    except (OSError, UnicodeError):
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


def mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def seal(key: bytes | None, line: bytes) -> bytes:
    """`line` (one JSON object, no newline) with the seal as its last key; unchanged without key."""
    if key is None:
        return line
    body = line.rstrip()
    if not body.endswith(b"}") or body == b"{}":
        raise ValueError("only a non-empty JSON object can be sealed")
    return body[:-1] + b',"seal":"' + mac(key, body).encode() + b'"}'


def unseal(key: bytes, line: bytes) -> bytes | None:
    """The line as it was before sealing if its seal verifies, else None."""
    match = _SEAL.search(line)
    if match is None:
        return None
    body = line[: match.start()] + b"}"
    if not hmac.compare_digest(match.group(1).decode(), mac(key, body)):
        return None
    return body


def is_sealed(line: bytes) -> bool:
    """Whether `line` carries a seal (verified or not): a run whose key is gone is not legacy."""
    return _SEAL.search(line) is not None
