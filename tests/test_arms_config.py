"""`[[arms]]` and `[arms_policy]` in program.toml: resolved over `[agent]`, checked strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.arms import arm_status, arms_of
from shared.errors import UserError
from shared.programs import parse_program
from shared.schema import ArmStats

BASE = """
metric = "score"
direction = "lower"
[agent]
kind = "command"
command = "./agent.sh"
timeout = "5m"
"""


def parse(extra: str) -> object:
    return parse_program(BASE + extra, source=Path("program.toml"))


def test_an_arms_keys_win_over_agent_and_the_rest_is_inherited() -> None:
    config = parse(
        """
[[arms]]
id = "fast"
command = "./fast.sh"
prompt_addendum = "Be quick."

[[arms]]
id = "smart"
kind = "openai"
model = "gpt-x"
temperature = 0.2
effort = "high"
"""
    )
    fast, smart = arms_of(config)  # type: ignore[arg-type]
    assert (fast.id, fast.agent.command, fast.agent.timeout) == ("fast", "./fast.sh", "5m")
    assert fast.prompt_addendum == "Be quick." and fast.overrides == {"command": "./fast.sh"}
    assert (smart.agent.kind, smart.agent.model, smart.agent.temperature) == (
        "openai",
        "gpt-x",
        0.2,
    )
    assert smart.agent.effort == "high" and smart.agent.command == "./agent.sh"
    assert config.arms_policy.allocation == "thompson"  # type: ignore[attr-defined]


def test_no_arms_changes_nothing() -> None:
    assert arms_of(parse("")) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            '[[arms]]\nid = "a"\nmodle = "x"\n[[arms]]\nid = "b"\n',
            "[[arms]] 'a': unknown key 'modle'",
        ),
        ('[[arms]]\nid = "a"\n[[arms]]\nid = "a"\n', "[[arms]] 'a': duplicate arm id"),
        ('[[arms]]\nid = "only"\n', "needs at least two arms"),
        ('[[arms]]\nid = "a b"\n[[arms]]\nid = "c"\n', "[[arms]] #1: 'id' must be"),
        ('[[arms]]\nid = "a"\nkind = "tune"\n[[arms]]\nid = "b"\n', "kind 'tune' cannot be an arm"),
        ('[[arms]]\nid = "a"\ntemperature = 5\n[[arms]]\nid = "b"\n', "temperature must be"),
        ('[[arms]]\nid = "a"\neffort = "max"\n[[arms]]\nid = "b"\n', "[[arms]] 'a'"),
        (
            '[[arms]]\nid = "a"\n[[arms]]\nid = "b"\n[arms_policy]\nmin_share = 0.6\n',
            "min_share 0.6 × 2 arms",
        ),
        ('[arms_policy]\nallocation = "greedy"\n', "allocation"),
        ("[arms_policy]\nfloor = 1\n", "unknown key 'floor'"),
    ],
)
def test_bad_arms_name_the_file_the_arm_and_the_key(extra: str, error: str) -> None:
    with pytest.raises(UserError) as info:
        parse(extra)
    assert str(info.value).startswith("program.toml: ") and error in str(info.value)


def test_arm_status_rates_and_shares() -> None:
    stats = [
        ArmStats(id="a", experiments=3, keeps=1, cost_usd=0.3, agent_s=6.0),
        ArmStats(id="b", experiments=1, errors=1, paused="quota"),
        ArmStats(id="c"),
    ]
    a, b, c = arm_status(stats)
    assert (a.keep_rate, a.share, a.mean_agent_s) == (pytest.approx(1 / 3), 0.75, 2.0)
    assert (b.keep_rate, b.errors, b.paused) == (0.0, 1, "quota")
    assert (c.keep_rate, c.share, c.mean_agent_s) == (None, 0.0, None)
