"""The `opencode` adapter against replays of streams captured from the real CLI (fast tier).

The samples in tests/samples/opencode/ are the raw stdout of `opencode run --format json`
(opencode-ai 1.18.33) against tests/fakes/chat_server.py; tests/fakes/fake_opencode.py replays
them — cleanly, with junk lines, cut short, or hanging — and records how it was invoked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    AgentUnavailable,
    Final,
    Text,
    ToolResult,
    ToolUse,
    Usage,
    render,
)
from daemon.agents.opencode import OpenCodeAgent
from daemon.agents.registry import make_agent
from shared.schema import AgentConfig, Price, ProgramConfig
from tests.repos import group_members, wait_for

SAMPLES = Path(__file__).parent / "samples" / "opencode"
FAKE = Path(__file__).parent / "fakes" / "fake_opencode.py"
KEY = "sk-opencode-test-4f1Tsecret9"
PRICE = Price(input=1.0, output=2.0, cached_input=0.5)
SESSION = "ses_dfe513497ffe93Xi9Ltg83ZAVr"


class Run:
    """One experiment through the fake CLI: its inputs, emitted events and recorded invocation."""

    def __init__(self, root: Path, sample: str | None = "edit", **agent: Any) -> None:
        self.root = root
        self.worktree = root / "wt"
        self.worktree.mkdir(parents=True, exist_ok=True)
        self.run_dir = root / "run"
        self.run_dir.mkdir(exist_ok=True)
        exe = root / "opencode"
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        exe.chmod(0o755)
        settings: dict[str, Any] = {
            "kind": "opencode",
            "model": "fake-model",
            "command": str(exe),
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "FAKE_KEY",
            "prices": {"fake-model": PRICE},
        }
        settings.update(agent)
        self.config = ProgramConfig(
            metric="score", direction="lower", agent=AgentConfig(**settings)
        )
        self.agent = make_agent(self.config, kind="opencode", model=None, run_dir=self.run_dir)
        self.record = root / "record.json"
        self.env = {"FAKE_KEY": KEY, "FAKE_OPENCODE_RECORD": str(self.record)}
        if sample:
            self.env["FAKE_OPENCODE_SAMPLE"] = str(SAMPLES / f"{sample}.jsonl")
        self.events: list[AgentEvent] = []
        self.pgids: list[int] = []

    async def go(self, timeout: float = 10.0, **env: str) -> AgentOutcome:
        task = AgentTask(
            experiment=4,
            worktree=self.worktree,
            run_dir=self.run_dir,
            prompt="# Experiment 4\nMake score lower.",
            prompt_file=self.run_dir / "prompt.md",
            timeout=timeout,
            env={**self.env, **env},
            on_process_start=self.pgids.append,
        )
        return await self.agent.run(task, self.events.append)

    def of(self, kind: type[AgentEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def invocation(self) -> dict[str, Any]:
        return json.loads(self.record.read_text())

    def log(self) -> str:
        return "\n".join(render(e) + msgspec.json.encode(e).decode() for e in self.events)


async def test_a_captured_run_becomes_events_and_totals(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go()
    assert outcome.error is None and outcome.error_class is None
    assert outcome.description == "Raised x from 0 to 1 in f.py."
    assert outcome.session_id == SESSION
    assert [(e.name, e.is_error) for e in run.of(ToolResult)] == [
        ("read", False),
        ("bash", False),
        ("edit", False),
    ]
    assert run.of(ToolUse)[1].input == {
        "command": "cat f.py && echo ok",
        "description": "Show f.py",
    }
    assert run.of(ToolResult)[1].output == "x = 0\nok\n"
    assert run.of(Text)[0].text == "Let me look at f.py first."
    # Tokens are OpenCode's totals; input for the price adds back the cached part and output
    # the reasoning: 1200+40*2, 476+1024*.5+30*2, 776+1024*.5+50*2, 464+1536*.5+60*2.
    usage = run.of(Usage)
    assert [u.tokens for u in usage] == [1240, 1530, 1850, 2060]
    assert outcome.tokens == 6680
    assert outcome.cost_usd == pytest.approx(5068e-6)
    assert sum(u.cost_usd for u in usage) == pytest.approx(outcome.cost_usd)
    assert run.events[-1] == Final(description=outcome.description, session_id=SESSION)
    assert run.pgids
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the fake CLI to be gone")


async def test_it_is_invoked_headless_with_the_prompt_on_stdin(tmp_path: Path) -> None:
    run = Run(tmp_path, args=["--agent", "build"], env={"EXTRA_SETTING": "1"})
    await run.go()
    seen = run.invocation()
    assert seen["argv"] == [
        "run", "--format", "json", "--title", "expd experiment 4",
        "--model", "expd/fake-model", "--agent", "build",
    ]  # fmt: skip
    assert seen["stdin"] == "# Experiment 4\nMake score lower."
    assert seen["cwd"] == str(run.worktree) == seen["env"]["PWD"]
    assert seen["env"]["FAKE_KEY"] == KEY
    assert seen["env"]["OPENCODE_DISABLE_AUTOUPDATE"] == "1"


async def test_base_url_gets_a_private_config_that_names_the_key_variable(tmp_path: Path) -> None:
    run = Run(tmp_path, max_tokens=4096, max_turns=12)
    await run.go(OPENCODE_CONFIG_DIR="/home/someone/.opencode")
    env = run.invocation()["env"]
    home = run.run_dir / "opencode"
    assert env["OPENCODE_CONFIG"] == str(home / "opencode.json")
    assert {k: env[k] for k in env if k.startswith("XDG_")} == {
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    assert env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    assert env["npm_config_cache"] == str(home / "npm")
    lock = json.loads((home / "config" / "opencode" / "package-lock.json").read_text())
    assert "@opencode-ai/plugin" in lock["packages"][""]["dependencies"]
    assert "OPENCODE_CONFIG_DIR" not in env
    text = (home / "opencode.json").read_text()
    assert KEY not in text
    settings = json.loads(text)
    provider = settings["provider"]["expd"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "{env:FAKE_KEY}"}
    assert provider["models"] == {
        "fake-model": {"name": "fake-model", "limit": {"context": 0, "output": 4096}}
    }
    assert settings["model"] == "expd/fake-model"
    assert settings["enabled_providers"] == ["expd"]
    assert settings["agent"] == {"build": {"steps": 12}}
    assert settings["permission"]["edit"] == "allow"
    assert KEY not in run.log()


async def test_without_base_url_the_users_own_setup_is_used(tmp_path: Path) -> None:
    run = Run(tmp_path, base_url=None, api_key_env=None, model="openai/gpt-5", max_turns=5)
    outcome = await run.go()
    seen = run.invocation()
    assert seen["argv"][-2:] == ["--model", "openai/gpt-5"]
    assert "OPENCODE_CONFIG" not in seen["env"]
    assert not any(k.startswith("XDG_") for k in seen["env"])
    assert json.loads(seen["env"]["OPENCODE_CONFIG_CONTENT"]) == {"agent": {"build": {"steps": 5}}}
    assert not (run.run_dir / "opencode").exists()
    # Priced from the built-in table (gpt-5: 1.25 in, 0.125 cached, 10 out per million).
    expected = (1200 * 1.25 + 40 * 10 + 476 * 1.25 + 1024 * 0.125 + 30 * 10) + (
        776 * 1.25 + 1024 * 0.125 + 50 * 10 + 464 * 1.25 + 1536 * 0.125 + 60 * 10
    )
    assert outcome.cost_usd == pytest.approx(expected / 1e6)


async def test_the_cost_opencode_reports_is_used_as_is(tmp_path: Path) -> None:
    lines = (SAMPLES / "edit.jsonl").read_text().splitlines()
    priced = tmp_path / "priced.jsonl"
    priced.write_text("\n".join(line.replace('"cost":0}', '"cost":0.25}') for line in lines))
    run = Run(tmp_path)
    outcome = await run.go(FAKE_OPENCODE_SAMPLE=str(priced))
    assert outcome.cost_usd == pytest.approx(1.0)
    assert [u.cost_usd for u in run.of(Usage)] == [0.25] * 4


async def test_an_unknown_price_costs_nothing_and_says_so_once(tmp_path: Path) -> None:
    run = Run(tmp_path, model="mystery-model", prices={})
    outcome = await run.go()
    assert outcome.cost_usd == 0 and outcome.tokens == 6680
    notes = [e.text for e in run.of(Text) if e.stream == "stderr"]
    assert notes == [
        'no price known for mystery-model: cost counted as $0 (set [agent.prices."mystery-model"])'
    ]


@pytest.mark.parametrize(
    ("sample", "error_class", "retry_after", "words"),
    [
        ("auth_error", "auth", None, "Incorrect API key provided. (HTTP 401)"),
        ("rate_limit", "rate_limit", 0.0, "Rate limit reached"),
        ("quota", "quota", 0.0, "exceeded your current quota"),
        ("server_error", "transient", 0.0, "(HTTP 503)"),
        ("malformed_stream", "other", None, "JSON parsing failed"),
        ("unknown_model", "other", None, "Unexpected server error"),
    ],
)
async def test_provider_errors_are_classified(
    tmp_path: Path, sample: str, error_class: str, retry_after: float | None, words: str
) -> None:
    run = Run(tmp_path, sample)
    outcome = await run.go()
    assert outcome.error_class == error_class
    assert outcome.retry_after == retry_after
    assert outcome.error is not None and words in outcome.error
    assert not outcome.timed_out and not outcome.unavailable
    errors = run.of(AgentErrorEvent)
    assert [(e.message, e.error_class) for e in errors] == [(outcome.error, error_class)]
    assert not run.of(Final)


async def test_a_failed_tool_is_an_error_result_not_a_failure(tmp_path: Path) -> None:
    run = Run(tmp_path, "tool_error")
    outcome = await run.go()
    assert outcome.error is None
    result = run.of(ToolResult)[0]
    assert result.is_error and "Could not find oldString" in result.output
    assert outcome.description == "Could not find y; left the code unchanged."


async def test_junk_lines_are_shown_and_do_not_break_parsing(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(FAKE_OPENCODE_MODE="malformed")
    assert outcome.error is None and outcome.tokens == 6680
    assert outcome.cost_usd == pytest.approx(5068e-6)
    texts = [e.text for e in run.of(Text)]
    assert "{not json" in texts and "opencode: warming up…" in texts and "[1, 2, 3]" in texts
    assert len(run.of(ToolUse)) == 3


async def test_a_truncated_stream_is_a_crash_with_what_was_counted(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(FAKE_OPENCODE_MODE="truncated")
    assert outcome.error_class is None
    assert outcome.error == "opencode exited with code 1"
    assert outcome.tokens == 1240 + 1530 + 1850
    assert outcome.description == "Raised x from 0 to 1 in f.py."
    assert run.of(Text)[-1].text.startswith('{"type":"step_finish"')


async def test_a_startup_failure_is_a_crash_with_the_cli_message(tmp_path: Path) -> None:
    run = Run(tmp_path, sample=None)
    stderr = "\x1b[91m\x1b[1mError: \x1b[0mConfig file at /x/opencode.json is not valid JSON(C)"
    outcome = await run.go(FAKE_OPENCODE_STDERR=stderr, FAKE_OPENCODE_EXIT="1")
    assert outcome.error_class is None and not outcome.unavailable
    assert outcome.error == (
        "opencode exited with code 1: Error: Config file at /x/opencode.json is not valid JSON(C)"
    )


async def test_a_hung_cli_is_killed_with_its_children(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(timeout=1.0, FAKE_OPENCODE_MODE="hang")
    assert outcome.timed_out and outcome.error_class is None
    assert outcome.error == "agent timed out after 1s (process group killed)"
    assert outcome.session_id == SESSION
    assert run.pgids
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the fake CLI and its child to die")
    assert isinstance(run.events[-1], AgentErrorEvent)


async def test_a_missing_cli_makes_the_agent_unavailable(tmp_path: Path) -> None:
    run = Run(tmp_path, command=str(tmp_path / "nowhere" / "opencode"))
    outcome = await run.go()
    assert outcome.unavailable and outcome.error_class is None
    assert "not found" in (outcome.error or "") and not run.record.exists()


async def test_a_missing_key_is_an_auth_failure_before_anything_runs(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.env.pop("FAKE_KEY")
    outcome = await run.go()
    assert outcome.error_class == "auth" and "$FAKE_KEY is not set" in (outcome.error or "")
    assert not run.record.exists()


def test_base_url_without_a_model_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(AgentUnavailable, match="needs \\[agent\\] model"):
        Run(tmp_path, model=None)


async def test_the_fallback_model_is_used_after_a_switch(tmp_path: Path) -> None:
    run = Run(tmp_path)
    assert isinstance(run.agent, OpenCodeAgent)
    run.agent.switch_model("fake-small")
    await run.go()
    assert run.invocation()["argv"][-2:] == ["--model", "expd/fake-small"]
    settings = json.loads((run.run_dir / "opencode" / "opencode.json").read_text())
    assert list(settings["provider"]["expd"]["models"]) == ["fake-small"]
    assert settings["model"] == "expd/fake-small"
