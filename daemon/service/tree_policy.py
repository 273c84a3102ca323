"""`[loop] keep_tree`: what happens to a run's trees when it ends.

By default they are removed when the run ends complete (finished, stopped or aborted: the agent's
tree is then the run branch's tip, and a measurement tree only a cache) and kept when it crashed, so
whatever the crash left can be looked at and `expd resume` has it. The run directory, branch and
pinned refs are untouched: `expd clean` reclaims those.
"""

from __future__ import annotations

from pathlib import Path

from daemon.ops.tree_removal import remove_leftovers, run_leftovers
from daemon.service.log import log
from daemon.service.store import RunStore
from shared.paths import RunPaths
from shared.schema import RunManifest


def keeps(setting: bool | str, phase: str) -> bool:
    """Whether a run ending in `phase` keeps its trees under `keep_tree = setting`."""
    if setting in (True, "always"):
        return True
    if setting in (False, "never"):
        return False
    return phase != "complete"


def release_trees(
    setting: bool | str, paths: RunPaths, manifest: RunManifest, store: RunStore
) -> None:
    """At the end of a run: remove its trees and expd's git dirs for them unless `keep_tree` keeps
    them; a `trees_removed` event says what went and the space it gave back."""
    if keeps(setting, store.state.phase):
        return
    repo = Path(manifest.repo)
    leftovers = run_leftovers(repo, manifest.program, paths.dir.name, "program", paths.dir)
    if not leftovers:
        return
    try:
        freed = remove_leftovers(repo, paths.dir, leftovers)
    except OSError as exc:
        log(f"could not remove the run's trees: {exc}")
        store.event("trees_kept", None, message=str(exc))
        return
    store.event("trees_removed", None, trees=[str(p) for p in leftovers], bytes=freed)
    log(f'removed the run\'s trees ({freed} bytes); keep them with [loop] keep_tree = "always"')
