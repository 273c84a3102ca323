"""The files `expd clean` and `expd delete` write, and the small rules every client shares.

`cleaned.json` (in a run directory, written by `expd clean` only: `state.json` stays the daemon's)
says a run was cleaned; `cleaning.json` and `deleting.json` are intent records written before
anything is removed, so an interrupted clean or delete is finished by the next one. A run being
deleted is first moved into `.expd/trash/`, where no listing looks: it never shows half-deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from shared import codec
from shared.errors import ContractError, UserError

CLEANED = "cleaned.json"
CLEANING = "cleaning.json"
DELETING = "deleting.json"
TRASH = "trash"
"""`.expd/trash/`: run directories and programs being deleted (never listed)."""


class CleanRecord(msgspec.Struct, kw_only=True):
    """`cleaned.json`: when a run was cleaned and what that gave back (summed over cleans)."""

    cleaned_at: float = 0.0
    reclaimed_bytes: int = 0
    trees_removed: list[str] = []
    refs_dropped: int = 0
    objects_pruned: int = 0


class Intent(msgspec.Struct, kw_only=True):
    """`cleaning.json` / `deleting.json`: everything a clean or delete will remove, written (and
    fsynced) before the first removal. Each step is idempotent, so replaying it finishes the job."""

    action: str = "clean"
    """`clean` or `delete`."""
    run_id: str = ""
    kind: str = "program"
    repo: str = ""
    run_dir: str = ""
    """Where the run directory was (a deleted run's has moved into the trash)."""
    started_at: float = 0.0
    trees: list[str] = []
    """The run's trees (expd's git dirs in the run directory go with them)."""
    refs: list[str] = []
    """expd's refs to delete (all of them for a delete; the experiments not kept for a clean)."""
    objects: list[str] = []
    """Objects expd wrote for those refs: removed when nothing else reaches them."""
    untouched_since: float = 0.0
    """When the run's daemon last lived (+ slack): an object touched later is left alone."""


def trash_dir(repo: Path) -> Path:
    return repo / ".expd" / TRASH


def read_cleaned(run_dir: Path) -> CleanRecord | None:
    """The run's `cleaned.json`, or None (never cleaned, or unreadable)."""
    try:
        return codec.read_optional(run_dir / CLEANED, CleanRecord)
    except ContractError:
        return None


def cleaned_since(run_dir: Path, updated_at: float | None) -> float | None:
    """When `expd clean` last cleaned the run, unless its daemon has written since (`updated_at`:
    a dead run cleaned, then resumed, has its trees again)."""
    cleaned = read_cleaned(run_dir)
    if cleaned is None or not cleaned.cleaned_at or cleaned.cleaned_at < (updated_at or 0):
        return None
    return cleaned.cleaned_at


def read_intent(path: Path) -> Intent | None:
    try:
        return codec.read_optional(path, Intent)
    except ContractError:
        return None


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_age(text: str) -> float:
    """Seconds from `--older-than` values like `90m`, `12h`, `7d`, `2w`."""
    match = _AGE.match(text)
    if not match:
        raise UserError(
            f"--older-than: invalid duration {text!r} (use a number and a unit: s, m, h, d or w, "
            "e.g. 7d)"
        )
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def fmt_bytes(n: int | None) -> str:
    """`1.4 GB`, `312 KB`, `0 B` (powers of 1024, as `du -h` shows them)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
