"""Checks a candidate passes: no secret it adds (before it is written into the user's repository),
no protected path it touches (before anything is measured).

The rules themselves are shared/redact.py and shared/protect.py; these are the loop's calls, with
the candidate's contents and the diff from git.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from daemon.ops.git.candidate import Candidate
from daemon.ops.git.lookup import changed_paths
from shared.protect import Protected
from shared.redact import Redactor


def added_secret(redactor: Redactor, candidate: Candidate) -> str:
    """Why a change that adds a secret value is refused, else "": more of a value in the changed
    files (their contents and names) than the incumbent's same files held, or one in the commit
    message (the agent's own commit subject). A value already in the repository, kept or moved
    by the change, is not added."""
    if not redactor:
        return ""
    before: list[bytes] = []
    after: list[bytes] = []
    for path in candidate.paths:
        for side, old in ((after, False), (before, True)):
            data = candidate.read(path, before=old)
            if data is not None:
                side += [path.encode(errors="surrogateescape"), data]
    names = set(redactor.added(b"\0".join(before), b"\0".join(after)))
    names.update(redactor.found(candidate.message))
    if not names:
        return ""
    shown = ", ".join(f"${name}" for name in sorted(names))
    return f"the change contains the value of {shown}: refused, not committed"


async def protected_change(protected: Protected, repo: Path, base: str, head: str) -> str | None:
    """The discard reason when the change from `base` to `head` touches a protected path."""
    if not protected:
        return None
    changes = await anyio.to_thread.run_sync(changed_paths, repo, base, head)
    return protected.violation(changes)
