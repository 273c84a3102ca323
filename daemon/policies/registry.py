"""The policy a program's `[decide]` table asks for."""

from __future__ import annotations

from typing import Any

from daemon.policies.base import Policy
from daemon.policies.fixed import FixedRepeatsPolicy
from daemon.policies.sequential import SequentialPolicy


def make_policy(config: Any) -> Policy:
    """The policy a program asks for (config is a `ProgramConfig`)."""
    gates = {name: (g.min, g.max) for name, g in config.gates.items()}
    decide = config.decide
    if getattr(decide, "policy", "fixed") == "sequential":
        max_runs = getattr(decide, "max_runs", None)
        return SequentialPolicy(
            config.metric,
            config.direction,
            min_effect=decide.min_effect,
            min_runs=getattr(decide, "min_runs", 2),
            max_runs=12 if max_runs is None else max_runs,
            alpha=getattr(decide, "alpha", 0.05),
            beta=getattr(decide, "beta", 0.3),
            gates=gates,
            secondary=dict(getattr(config, "secondary", {}) or {}),
            keep_simplifications=getattr(config.loop, "keep_simplifications", False),
        )
    return FixedRepeatsPolicy(
        metric=config.metric,
        direction=config.direction,
        min_effect=decide.min_effect,
        repeats=decide.repeats,
        gates=gates,
    )
