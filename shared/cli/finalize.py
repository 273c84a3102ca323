"""`expd finalize`: the CLI side; the work (git, measurements) lives in `daemon.commands.finalize`."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

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


class ConfirmationReply(msgspec.Struct):
    """The re-measurement of the final tree against the base."""

    status: str
    """confirmed, not_confirmed or measurement_failure."""
    reason: str
    metric: float | None
    base_metric: float | None
    evidence: dict[str, Any]


class FinalizeReply(msgspec.Struct):
    """What `expd finalize --json` prints."""

    run_id: str
    branch: str
    commit: str
    base_commit: str
    applied: list[int]
    excluded: list[int]
    confirmation: ConfirmationReply
    summary: str


def finalize_run(
    run: str | None, *, branch: str | None, exclude: list[int], force: bool
) -> FinalizeReply:
    """Replay the run's keeps onto its base as a review branch, re-measured (`expd finalize`)."""
    ref = runs.resolve(run, kind="program")
    from daemon.commands.finalize import (
        finalize,  # git and the measurement stack: only this command
    )

    out = finalize(ref, branch=branch, exclude=exclude, force=force)
    c = out.confirmation
    return FinalizeReply(
        run_id=out.run_id,
        branch=out.branch,
        commit=out.commit,
        base_commit=out.base_commit,
        applied=out.applied,
        excluded=out.excluded,
        confirmation=ConfirmationReply(
            status=c.status,
            reason=c.reason,
            metric=c.metric,
            base_metric=c.base_metric,
            evidence=c.evidence_json(),
        ),
        summary=str(out.summary),
    )


def cmd_finalize(args: argparse.Namespace) -> int:
    out = finalize_run(
        args.run, branch=args.branch, exclude=exclusions(args.exclude), force=args.force
    )
    c = out.confirmation
    if args.json:
        emit_json(out)
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
