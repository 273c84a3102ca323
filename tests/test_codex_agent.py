"""The `codex` adapter, fast: tests/fakes/fake_codex.py replays output captured from the real CLI.

The samples in tests/samples/codex come from `codex exec --json` (the version pinned in
tests/agent_clis.py) driven by tests/fakes/responses_server.py; test_codex_real.py re-checks them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.agents.base import (
    AgentErrorEvent,
    AgentEvent,
    AgentOutcome,
    AgentTask,
    Final,
    Text,
    ToolResult,
    ToolUse,
    Usage,
    render,
)
from daemon.agents.codex import SANDBOX_NOTE, CodexAgent
from daemon.agents.codex_stream import CodexStream, classify, retry_after
from daemon.agents.registry import make_agent
from daemon.agents.stream_json import first_line
from shared.paths import RepoPaths
from shared.schema import AgentConfig, Price, ProgramConfig
from tests.repos import expd, group_members, make_repo, results, start, wait_finished, wait_for

FAKE = Path(__file__).parent / "fakes" / "fake_codex.py"
SAMPLES = Path(__file__).parent / "samples" / "codex"
KEY = "sk-fast-Xy7secretKEYvalue3131"
GPT5_TWO_REQUESTS = (1600 * 1.25 + 400 * 0.125 + 100 * 10.0) / 1e6
"""What edit_shell.jsonl's usage (2000 in, 400 of them cached, 100 out) costs on gpt-5."""


@pytest.fixture(autouse=True)
def executable_fake() -> None:
    FAKE.chmod(0o755)


def config(env: dict[str, str] | None = None, **agent: Any) -> ProgramConfig:
    settings: dict[str, Any] = {
        "kind": "codex",
        "command": str(FAKE),
        "model": "gpt-5",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "FAKE_KEY",
        "env": env or {},
    }
    settings.update(agent)
    return ProgramConfig(metric="score", direction="lower", agent=AgentConfig(**settings))


class Run:
    """One experiment's inputs and everything the adapter emitted."""

    def __init__(self, root: Path, timeout: float = 10.0, env: dict[str, str] | None = None):
        self.worktree = root / "wt"
        self.worktree.mkdir()
        (self.worktree / "f.py").write_text("x = 0\n")
        self.record = root / "record.json"
        self.events: list[AgentEvent] = []
        self.pgids: list[int] = []
        self.task = AgentTask(
            experiment=2,
            worktree=self.worktree,
            run_dir=root / "run",
            prompt="# Experiment 2\nMake score lower.",
            prompt_file=root / "prompt.md",
            timeout=timeout,
            env={"FAKE_KEY": KEY, "FAKE_CODEX_RECORD": str(self.record)} if env is None else env,
            on_process_start=self.pgids.append,
        )

    async def go(self, **kw: Any) -> AgentOutcome:
        return await CodexAgent(config(**kw)).run(self.task, self.events.append)

    def of(self, kind: type[AgentEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def given(self) -> dict[str, Any]:
        return json.loads(self.record.read_text())


def test_command_line_and_environment(tmp_path: Path) -> None:
    run = Run(tmp_path)
    agent = CodexAgent(config(args=["-c", "model_reasoning_effort=high"]), model="gpt-5-mini")
    argv = agent.command(run.task)
    assert argv[:7] == [
        str(FAKE),
        "exec",
        "--json",
        "--color",
        "never",
        "--skip-git-repo-check",
        "--cd",
    ]
    assert argv[7] == str(run.worktree)
    assert argv[8:12] == ["--sandbox", "workspace-write", "--model", "gpt-5-mini"]
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert overrides == [
        'model_provider="expd"',
        'model_providers.expd.name="expd"',
        'model_providers.expd.base_url="http://127.0.0.1:9/v1"',
        'model_providers.expd.wire_api="responses"',
        'model_providers.expd.env_key="FAKE_KEY"',
        "features.shell_snapshot=false",
        "model_reasoning_effort=high",
    ]
    assert argv[-1] == "-"
    env = agent.environment(run.task)
    assert env["CODEX_HOME"] == str(run.task.run_dir / "codex-home")
    assert Path(env["CODEX_HOME"]).is_dir()
    agent.switch_model("gpt-5-nano")
    assert agent.command(run.task)[11] == "gpt-5-nano"


def test_without_base_url_the_users_codex_login_and_home_are_used(tmp_path: Path) -> None:
    run = Run(tmp_path)
    agent = CodexAgent(
        config(base_url=None, model=None, args=["--dangerously-bypass-approvals-and-sandbox"])
    )
    argv = agent.command(run.task)
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert overrides == ["features.shell_snapshot=false"]  # no provider: the user's own login
    assert "--model" not in argv and "--sandbox" not in argv
    env = agent.environment(run.task)
    assert "CODEX_HOME" not in env or env["CODEX_HOME"] == os.environ.get("CODEX_HOME")
    assert env["CODEX_API_KEY"] == KEY  # [agent] api_key_env feeds Codex's own key variable
    assert isinstance(make_agent(config(), kind="codex", model="m", run_dir=tmp_path), CodexAgent)


async def test_replayed_edit_is_streamed_and_priced(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(env={"FAKE_CODEX_EDIT": "echo 'x = 1' > f.py"})
    assert outcome.error is None and outcome.error_class is None
    assert (run.worktree / "f.py").read_text() == "x = 1\n"
    assert outcome.description == "Set x to 1 in f.py."
    assert outcome.session_id == "01a201ae-e729-7491-95f1-339bb94652b3"
    assert outcome.tokens == 2100
    assert outcome.cost_usd == pytest.approx(GPT5_TWO_REQUESTS)
    assert run.of(ToolUse) == [ToolUse(name="shell", input={"command": "sed -i s/0/1/ f.py"})]
    assert [e.is_error for e in run.of(ToolResult)] == [False]
    assert [e.text for e in run.of(Text) if e.stream == "stdout"] == [
        "I'll bump x.",
        "Set x to 1 in f.py.\n\nThe score should drop.",
    ]
    assert any("Model metadata" in e.text for e in run.of(Text) if e.stream == "stderr")
    assert run.of(Usage) == [Usage(cost_usd=outcome.cost_usd, tokens=2100)]
    assert run.events[-1] == Final(description=outcome.description, session_id=outcome.session_id)
    assert len(run.pgids) == 1
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the CLI's process group to die")
    given = run.given()
    assert given["stdin"] == run.task.prompt + SANDBOX_NOTE
    assert given["cwd"] == str(run.worktree)
    assert given["codex_home"] == str(run.task.run_dir / "codex-home")
    assert given["keys_set"] == []


async def test_every_item_kind_of_a_rich_turn(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(model="gpt-5.5", env={"FAKE_CODEX_SAMPLE": "rich"})
    assert outcome.error is None and outcome.description == "Set x to 2 in f.py."
    assert [(e.name, e.input) for e in run.of(ToolUse)] == [
        ("web_search", {"query": "python constants"}),
        ("shell", {"command": "sed -i s/0/1/ f.py && cat f.py"}),
        ("shell", {"command": "cat missing.py"}),
        ("edit", {"path": "f.py", "kind": "update"}),
        ("mcp:echo/echo", {"text": "done"}),
    ]
    tool_results = run.of(ToolResult)
    assert [(e.name, e.is_error) for e in tool_results] == [
        ("shell", False),
        ("shell", True),
        ("edit", False),
        ("mcp:echo/echo", False),
    ]
    assert (
        tool_results[1].output.startswith("[exit 1] ") and "No such file" in tool_results[1].output
    )
    assert tool_results[3].output == "echo: done"
    assert [e.text for e in run.of(Text) if e.stream == "reasoning"] == [
        "[reasoning] **Reading f.py**\n\nI should look before editing."
    ]
    # gpt-5.5 is not in the price table: tokens count, dollars do not, and the log says so.
    assert outcome.tokens == 6200 and outcome.cost_usd == 0.0
    assert any("no price known for model 'gpt-5.5'" in e.text for e in run.of(Text))
    (tmp_path / "again").mkdir()
    priced = await Run(tmp_path / "again").go(
        model="gpt-5.5",
        env={"FAKE_CODEX_SAMPLE": "rich"},
        prices={"gpt-5.5": Price(input=1.0, output=10.0)},
    )
    assert priced.cost_usd == pytest.approx((6000 + 2000) / 1e6)


@pytest.mark.parametrize(
    ("sample", "error_class", "wait", "words"),
    [
        ("auth", "auth", None, "401 Unauthorized"),
        ("quota", "quota", None, "Quota exceeded"),
        ("rate_limit_429", "rate_limit", None, "429 Too Many Requests"),
        ("rate_limit_failed", "rate_limit", 0.2, "Please try again in 0.2s"),
        ("server_error", "transient", None, "high demand"),
        ("disconnected", "transient", None, "stream disconnected"),
    ],
)
async def test_provider_failures_are_classified(
    tmp_path: Path, sample: str, error_class: str, wait: float | None, words: str
) -> None:
    run = Run(tmp_path)
    outcome = await run.go(env={"FAKE_CODEX_SAMPLE": sample})
    assert outcome.error_class == error_class and words in (outcome.error or "")
    assert outcome.retry_after == wait and not outcome.timed_out and not outcome.unavailable
    assert outcome.tokens == 0 and outcome.session_id
    assert run.events[-1] == AgentErrorEvent(message=outcome.error or "", error_class=error_class)
    assert not run.of(Final) and not run.of(Usage)
    reconnects = [e.text for e in run.of(Text) if e.text.startswith("Reconnecting")]
    assert len(reconnects) == (0 if sample == "quota" else 1)


async def test_malformed_lines_are_shown_and_skipped(tmp_path: Path) -> None:
    run = Run(tmp_path)
    outcome = await run.go(env={"FAKE_CODEX_GARBAGE": "1"})
    assert outcome.error is None and outcome.description == "Set x to 1 in f.py."
    assert outcome.tokens == 2100 and outcome.cost_usd == pytest.approx(GPT5_TWO_REQUESTS)
    shown = [e.text for e in run.of(Text)]
    assert "not json at all" in shown and "[1, 2, 3]" in shown
    assert [e.name for e in run.of(ToolUse)] == ["shell"]


@pytest.mark.parametrize(
    ("env", "error_class", "words"),
    [
        (
            {"FAKE_CODEX_EXIT": "0"},
            "other",
            "codex stopped before its turn completed (exit code 0)",
        ),
        (
            {"FAKE_CODEX_STDERR": "thread 'main' panicked", "FAKE_CODEX_EXIT": "101"},
            "other",
            "panicked",
        ),
        ({"FAKE_CODEX_STDERR": "unexpected status 401 Unauthorized"}, "auth", "401"),
        ({"FAKE_CODEX_EXIT": "kill"}, None, "(exit code -9)"),
    ],
)
async def test_truncated_stream(
    tmp_path: Path, env: dict[str, str], error_class: str | None, words: str
) -> None:
    """Cut after the command started: an error; a provider class only if stderr names one, and
    none at all when the CLI was killed (a plain crash, recorded as such)."""
    run = Run(tmp_path)
    outcome = await run.go(env={"FAKE_CODEX_LINES": "5", **env})
    assert outcome.error and words in outcome.error
    assert outcome.error_class == error_class
    assert [e.name for e in run.of(ToolUse)] == ["shell"] and not run.of(ToolResult)
    assert outcome.description == "I'll bump x." and not run.of(Usage)


async def test_a_hung_cli_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    run = Run(tmp_path, timeout=1.5)
    outcome = await run.go(env={"FAKE_CODEX_HANG": "1", "FAKE_CODEX_LINES": "5"})
    assert outcome.timed_out and outcome.error_class is None
    assert "timed out after 1.5s" in (outcome.error or "")
    assert [e.name for e in run.of(ToolUse)] == ["shell"]
    assert len(run.pgids) == 1
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the CLI's process group to die")


async def test_missing_cli_or_key_never_starts_it(tmp_path: Path) -> None:
    run = Run(tmp_path)
    missing = await run.go(command=str(tmp_path / "no-such-codex"))
    assert (
        missing.unavailable and missing.error_class is None and "not found" in (missing.error or "")
    )
    run.task.env = {"FAKE_CODEX_RECORD": str(run.record)}
    no_key = await run.go()
    assert no_key.error_class == "auth" and "$FAKE_KEY" in (no_key.error or "")
    assert not run.pgids and not run.record.exists()


async def test_the_key_is_redacted_from_everything_emitted(tmp_path: Path) -> None:
    sample = tmp_path / "leak.jsonl"
    lines = (SAMPLES / "edit_shell.jsonl").read_text().replace("pyenv:", f"{KEY} pyenv:")
    sample.write_text(lines)
    run = Run(tmp_path)
    outcome = await run.go(env={"FAKE_CODEX_SAMPLE": str(sample), "FAKE_CODEX_STDERR": KEY})
    assert outcome.error is None
    transcript = "\n".join(render(e) + msgspec.json.encode(e).decode() for e in run.events)
    assert KEY not in transcript and transcript.count("[redacted]") >= 2


def test_stream_parser_edge_cases(tmp_path: Path) -> None:
    events: list[AgentEvent] = []
    stream = CodexStream(tmp_path, events.append)
    todo = {"id": "t", "type": "todo_list", "items": [{"text": "read", "completed": False}]}
    for event in [
        {"type": "turn.started"},
        {"type": "item.started", "item": todo},
        {"type": "item.updated", "item": todo},
        {"type": "item.updated", "item": {**todo, "items": [{"text": "read", "completed": True}]}},
        {
            "type": "item.completed",
            "item": {"id": "c", "type": "collab_tool_call", "tool": "spawn"},
        },
        {"type": "item.completed", "item": {"id": "e", "type": "error", "message": "careful"}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 2}},
        {"type": "turn.completed", "usage": {"input_tokens": 5, "cached_input_tokens": 5}},
        {"type": "turn.failed", "error": None},
    ]:
        stream.feed(json.dumps(event))
    plans = [e.text for e in events if isinstance(e, Text) and e.text.startswith("[plan]")]
    assert plans == ["[plan] [ ] read", "[plan] [x] read"]
    assert ToolUse(name="collab_tool_call", input={"tool": "spawn"}) in events
    assert Text(text="careful", stream="stderr") in events
    assert stream.usages == [(10, 0, 2), (5, 5, 0)]
    assert stream.failure == "codex reported that the turn failed"


def test_classification_and_helpers() -> None:
    assert classify("Missing environment variable: `OPENAI_API_KEY`.") == "auth"
    assert classify("unexpected status 502 Bad Gateway") == "transient"
    assert classify("We’re currently experiencing high demand") == "transient"
    assert classify("Quota exceeded. Check your plan and billing details.") == "quota"
    assert classify("the model produced an invalid tool call") == "other"
    assert retry_after("Please try again in 250ms.") == 0.25
    assert retry_after("try again in 2 minutes") == 120.0
    assert retry_after("no hint") is None
    assert first_line("\n## Bumped x\nmore") == "Bumped x"
    assert len(first_line("y" * 500)) == 200


def test_daemon_run_with_the_replayed_cli(tmp_path: Path) -> None:
    """Through the real daemon: the replay's edit depends on $EXPD_EXPERIMENT (x = 2n, target 3),
    so experiment 1 is kept and the others are discarded; costs add up in `expd status`."""
    repo = make_repo(tmp_path, max_experiments=3)
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    edit = 'printf "x = %d\\n" $((EXPD_EXPERIMENT * 2)) > f.py'
    toml.write_text(
        text[: text.index("[agent]")]
        + f"""[agent]
kind = "codex"
command = "{FAKE}"
model = "gpt-5"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "FAKE_KEY"
timeout = "20s"
env = {{ FAKE_CODEX_EDIT = {json.dumps(edit)} }}
"""
    )
    paths = start(repo, env={"FAKE_KEY": KEY})
    wait_finished(paths, timeout=60)
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [
        (0, "baseline"),
        (1, "keep"),
        (2, "discard"),
        (3, "discard"),
    ], [r.reason for r in records]
    assert all(r.description == "Set x to 1 in f.py." for r in records[1:])
    assert all(r.cost_usd == pytest.approx(GPT5_TWO_REQUESTS) for r in records[1:])
    status = json.loads(expd("status", "--json", cwd=repo).stdout)
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    assert status["cost_usd"] == pytest.approx(3 * GPT5_TWO_REQUESTS)
    assert status["tokens"] == 3 * 2100
    assert "→ shell" in paths.agent_log(1).read_text()
