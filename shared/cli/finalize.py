"""`expd finalize`: the CLI side; the work (git, measurements) lives in `daemon.commands.finalize`."""

from __future__ import annotations

import argparse

from shared import runs
from shared.cli.read import emit_json
from shared.errors import UserError


def exclusions(text: str | None) -> list[int]:
    """`--exclude 2,5` as experiment numbers; a bad list is a one-line usage error."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"--exclude: {part!r} is not an experiment number (e.g. --exclude 2,5)")
        out.append(int(part))
    return out


def cmd_finalize(args: argparse.Namespace) -> int:
    excluded = exclusions(args.exclude)
    ref = runs.resolve(args.run, kind="program")
    from daemon.commands.finalize import (
        finalize,  # git and the measurement stack: only this command
    )

    out = finalize(ref, branch=args.branch, exclude=excluded, force=args.force)
    c = out.confirmation
    if args.json:
        emit_json(
            {
                "run_id": out.run_id,
                "branch": out.branch,
                "commit": out.commit,
                "base_commit": out.base_commit,
                "applied": out.applied,
                "excluded": out.excluded,
                "confirmation": {
                    "status": c.status,
                    "reason": c.reason,
                    "metric": c.metric,
                    "base_metric": c.base_metric,
                    "evidence": c.evidence_json(),
                },
                "summary": str(out.summary),
            }
        )
        return 0
    print(
        f"branch {out.branch} at {out.commit[:12]}: experiments {', '.join(map(str, out.applied))}"
    )
    if out.excluded:
        print(f"excluded: {', '.join(map(str, out.excluded))}")
    print(f"total gain {c.status.replace('_', ' ')}: {c.reason}")
    print(f"summary: {out.summary}")
    print(
        f"hint: expd clean {out.run_id} gives back the disk the run still holds (its trees, "
        "discarded experiments); its results and this branch stay"
    )
    return 0
