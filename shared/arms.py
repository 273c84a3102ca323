"""Arms: several agent setups inside one program's run (`[[arms]]` in program.toml).

An arm is an `id`, any `[agent]` key (its value wins over `[agent]`'s) and a `prompt_addendum`
appended to the briefing of its experiments. `arms_of` checks and resolves them; the daemon shares
experiments between them by `[arms_policy]`, and `expd darwin` ranks them by their outcomes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec

from shared import codec
from shared.errors import UserError
from shared.schema import AGENT_KINDS, AgentConfig, ArmStats, ProgramConfig

ARM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OWN_KEYS = ("id", "prompt_addendum")


class Arm(msgspec.Struct, kw_only=True):
    id: str
    prompt_addendum: str = ""
    agent: AgentConfig
    """`[agent]` with the arm's own keys over it: what its experiments run with."""
    overrides: dict[str, Any] = {}
    """The arm's own `[agent]` keys, as written."""


class ArmStatus(msgspec.Struct, kw_only=True):
    """One arm in `expd status --json` (`arms`)."""

    id: str
    experiments: int
    keeps: int
    keep_rate: float | None
    improvement_pct: float
    cost_usd: float
    tokens: int
    mean_agent_s: float | None
    errors: int
    share: float | None
    """Its share of the run's experiments so far."""
    paused: str = ""


def arms_of(config: ProgramConfig, *, source: Path | str = "program.toml") -> list[Arm]:
    """The program's arms, resolved; a UserError naming the file, the arm and the key when one is
    not valid (unknown key, bad value, duplicate id, a kind that cannot be an arm)."""
    out: list[Arm] = []
    base = codec.to_builtins(config.agent)
    seen: set[str] = set()
    for n, table in enumerate(config.arms, 1):
        where = f"{source}: [[arms]] #{n}"
        arm_id = table.get("id")
        if not isinstance(arm_id, str) or not ARM_ID.match(arm_id):
            raise UserError(
                f"{where}: 'id' must be letters, digits, '-', '_' or '.' (at most 64), "
                f"not {arm_id!r}"
            )
        where = f"{source}: [[arms]] {arm_id!r}"
        if arm_id in seen:
            raise UserError(f"{where}: duplicate arm id")
        seen.add(arm_id)
        addendum = table.get("prompt_addendum", "")
        if not isinstance(addendum, str):
            raise UserError(f"{where}: prompt_addendum must be a string")
        overrides = {k: v for k, v in table.items() if k not in OWN_KEYS}
        try:
            agent = msgspec.convert({**base, **overrides}, AgentConfig)
        except msgspec.ValidationError as exc:
            raise UserError(f"{where}: {_message(exc)}") from None
        if agent.kind not in AGENT_KINDS or agent.kind == "tune":
            raise UserError(f"{where}: kind {agent.kind!r} cannot be an arm")
        if agent.kind == "command" and not (agent.command or "").strip():
            raise UserError(f"{where}: kind 'command' needs 'command'")
        if agent.temperature is not None and not (
            math.isfinite(agent.temperature) and 0 <= agent.temperature <= 2
        ):
            raise UserError(f"{where}: temperature must be between 0 and 2")
        out.append(Arm(id=arm_id, prompt_addendum=addendum, agent=agent, overrides=overrides))
    return out


def check_arms(config: ProgramConfig, *, source: Path | str) -> None:
    """`[[arms]]` and `[arms_policy]` as `validate` checks them."""
    arms = arms_of(config, source=source)
    if len(arms) == 1:
        raise UserError(f"{source}: [[arms]] needs at least two arms to compare (or none)")
    share = config.arms_policy.min_share
    if not (math.isfinite(share) and share >= 0):
        raise UserError(f"{source}: [arms_policy] min_share must be a number ≥ 0")
    if arms and share * len(arms) > 1:
        raise UserError(
            f"{source}: [arms_policy] min_share {share:g} × {len(arms)} arms is more than all "
            "the experiments"
        )


def _message(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
    if unknown:
        return f"unknown key {unknown.group(1)!r}"
    return re.sub(r" - at `\$\.?([^`]*)`$", lambda m: f" for {m.group(1)}", text)


def arm_status(stats: list[ArmStats]) -> list[ArmStatus]:
    total = sum(a.experiments for a in stats)
    return [
        ArmStatus(
            id=a.id,
            experiments=a.experiments,
            keeps=a.keeps,
            keep_rate=a.keeps / a.experiments if a.experiments else None,
            improvement_pct=a.improvement_pct,
            cost_usd=a.cost_usd,
            tokens=a.tokens,
            mean_agent_s=a.agent_s / a.experiments if a.experiments else None,
            errors=a.errors,
            share=a.experiments / total if total else None,
            paused=a.paused,
        )
        for a in stats
    ]
