"""Checks a candidate passes before anything is measured: here, the protected paths.

The rule itself is shared/protect.py; this is the loop's one call, with the diff from git.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from daemon.ops.git import changed_paths
from shared.protect import Protected


async def protected_change(protected: Protected, repo: Path, base: str, head: str) -> str | None:
    """The discard reason when the change from `base` to `head` touches a protected path."""
    if not protected:
        return None
    changes = await anyio.to_thread.run_sync(changed_paths, repo, base, head)
    return protected.violation(changes)
