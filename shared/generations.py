"""The next generation as tables to write, and the archives of the past ones.

Promoting a winner writes its own `[agent]` keys into `[agent]`, so every arm that inherited one of
those keys would silently change with it. `promote` keeps each surviving challenger what it was by
writing the old value into its own table, and says so; a key whose old value was "unset" (a
default of None) cannot be written in TOML, so it says that the challenger now inherits it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from shared import codec
from shared.darwin import Generation
from shared.errors import ContractError, UserError
from shared.schema import AgentConfig

ARM_KEYS = ("id", "prompt_addendum")
"""The keys of an `[[arms]]` table that are the arm's own, not `[agent]` keys."""
VARIANT_KEYS = ("id", "prompt_prefix")
"""The same for a bakeoff's `[[variant]]` table."""
GENERATIONS = "generations"


class Promotion(msgspec.Struct, kw_only=True):
    agent: dict[str, Any]
    """`[agent]` as it will be: the winner's own keys over the old ones."""
    tables: list[dict[str, Any]]
    """The next generation's tables, winner first ([] when a program keeps only the winner)."""
    notes: list[str] = []


def next_ids(declared: list[str], winner: str, kept: list[str] | None) -> list[str]:
    """Winner first, then the kept challengers (default: all) in declared order."""
    keep = set(declared if kept is None else kept)
    return [winner, *(a for a in declared if a in keep and a != winner)]


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def promote(
    agent: dict[str, Any],
    tables: list[dict[str, Any]],
    ids: list[str],
    *,
    own_keys: tuple[str, ...] = ARM_KEYS,
    min_arms: int = 2,
    what: str = "arm",
) -> Promotion:
    """The winner (`ids[0]`) promoted to `[agent]`, the challengers in `ids[1:]` pinned to what
    they resolved to before; with fewer than `min_arms` left the list goes away (the program runs
    its `[agent]`, which is now the winner's)."""
    by_id = {str(t.get("id")): t for t in tables}
    winner = by_id[ids[0]]
    overrides = {k: v for k, v in winner.items() if k not in own_keys}
    new_agent = {**agent, **overrides}
    defaults = codec.to_builtins(AgentConfig())
    notes: list[str] = []
    if overrides:
        keys = ", ".join(sorted(overrides))
        notes.append(f"[agent] takes {ids[0]}'s own keys: {keys}")
    out = [dict(winner)]
    for arm_id in ids[1:]:
        table = dict(by_id[arm_id])
        for key, value in overrides.items():
            if key in table:
                continue
            old = agent.get(key, defaults.get(key))
            if old == value:
                continue
            if old is None:
                notes.append(
                    f"{what} {arm_id} had no {key}: it now inherits {key} = {_shown(value)} "
                    "from [agent]"
                )
                continue
            table[key] = old
            notes.append(
                f"{what} {arm_id} keeps its {key} = {_shown(old)} (written into its table)"
            )
        out.append(table)
    if len(ids) < min_arms:
        addendum = winner.get("prompt_addendum")
        if addendum:
            raise UserError(
                f"{ids[0]} would be the only {what} left, and a program without arms has no "
                f"prompt_addendum: keep a challenger (--arm ARM) or move the addendum into "
                "program.md first"
            )
        notes.append(f"{ids[0]} is the only {what} left: the [[arms]] list goes, [agent] is it")
        out = []
    return Promotion(agent=new_agent, tables=out, notes=notes)


# --------------------------------------------------------------------------- archives


def generations_dir(owner_dir: Path) -> Path:
    """`<program or bakeoff dir>/generations/`."""
    return owner_dir / GENERATIONS


def archive_name(now: float, token: str) -> str:
    """`<UTC %Y%m%dT%H%M%S.%fZ>-<token>.json`: sortable, sub-second, and unique by the token."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{token}.json"


def archive_paths(directory: Path) -> list[Path]:
    """The archives in name (so creation) order; temp files and reservations are not listed."""
    if not directory.is_dir():
        return []
    out = []
    for path in directory.glob("*.json"):
        try:
            if not path.name.startswith(".") and path.stat().st_size:
                out.append(path)
        except OSError:  # removed while listed (a rolled-back apply)
            continue
    return sorted(out)


def read_generations(directory: Path) -> tuple[list[Generation], list[str]]:
    """Every readable archive, oldest first, and a line for each that is not."""
    out: list[Generation] = []
    problems: list[str] = []
    for path in archive_paths(directory):
        try:
            out.append(codec.read(path, Generation))
        except ContractError as exc:
            problems.append(str(exc))
    return out, problems
