"""The `claude` adapter against tests/fakes/fake_claude.py, which replays streams captured from the
real CLI (tests/samples/claude/, see tests/test_claude_real.py): events, cost, tokens, session
ids, junk and cut streams, provider error classes, and a hung CLI killed with its whole group.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
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
)
from daemon.agents.claude import ClaudeAgent
from daemon.agents.claude_stream import ClaudeStream
from daemon.agents.registry import make_agent
from daemon.agents.stream_json import first_line, short_input
from shared.schema import AgentConfig, ProgramConfig
from tests.repos import group_members

FAKE = Path(__file__).parent / "fakes" / "fake_claude.py"
SAMPLES = Path(__file__).parent / "samples" / "claude"
KEY = "sk-ant-fast-0123456789secret"


def program(env: dict[str, str] | None = None, **agent: Any) -> ProgramConfig:
    agent = {"model": "claude-sonnet-4-5", "command": str(FAKE), **agent}
    return ProgramConfig(
        metric="score",
        direction="lower",
        agent=AgentConfig(kind="claude", env={"ANTHROPIC_API_KEY": KEY, **(env or {})}, **agent),
    )


def run(
    tmp_path: Path,
    sample: str,
    *,
    mode: str = "",
    timeout: float = 20,
    env: dict[str, str] | None = None,
    **agent: Any,
) -> tuple[AgentOutcome, list[AgentEvent]]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    fake_env = {
        "FAKE_CLAUDE_SAMPLE": str(SAMPLES / f"{sample}.jsonl"),
        "FAKE_CLAUDE_MODE": mode,
        "FAKE_CLAUDE_RECORD": str(tmp_path / "record.json"),
        "FAKE_CLAUDE_PIDS": str(tmp_path / "pids"),
        **(env or {}),
    }
    prompt_file = tmp_path / "0001.md"
    prompt_file.write_text("# Experiment 1\nMake it faster.")
    task = AgentTask(1, work, tmp_path, "# Experiment 1\nMake it faster.", prompt_file, timeout, {})
    task.env = {"EXPD_EXPERIMENT": "1"}
    task.on_process_start = lambda pgid: (tmp_path / "pgid").write_text(str(pgid))
    events: list[AgentEvent] = []
    agent_ = ClaudeAgent(program(fake_env, **agent))
    outcome = anyio.run(agent_.run, task, events.append)
    return outcome, events


def sample_result(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.jsonl").read_text().splitlines()[-1])


def recorded(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "record.json").read_text())


def test_a_successful_stream_gives_events_cost_tokens_and_session(tmp_path: Path) -> None:
    outcome, events = run(tmp_path, "edit")
    assert outcome.error is None and outcome.error_class is None
    assert outcome.description == "Set x to 1 to move the score toward the target."
    assert outcome.cost_usd == pytest.approx(0.00267)
    assert outcome.tokens == 250 + 900 + 120 + 80  # fresh + cache reads + cache writes + output
    assert outcome.session_id == sample_result("edit")["session_id"]
    kinds = [type(e).__name__ for e in events]
    tools = ["ToolUse", "ToolResult"] * 2
    assert kinds == ["Text", "Text", *tools, "Text", "Usage", "Final"]
    assert "claude-sonnet-4-5" in events[0].text  # type: ignore[attr-defined]
    uses = [e for e in events if isinstance(e, ToolUse)]
    assert [(u.name, u.input["file_path"]) for u in uses] == [("Read", "f.py"), ("Edit", "f.py")]
    assert uses[1].input["new_string"] == "x = 1"
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [r.name for r in results] == ["Read", "Edit"] and "x = 0" in results[0].output
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage == [Usage(cost_usd=outcome.cost_usd, tokens=outcome.tokens)]  # once, no doubles
    assert events[-1] == Final(description=outcome.description, session_id=outcome.session_id)


def test_the_command_line_prompt_and_environment(tmp_path: Path) -> None:
    run(
        tmp_path,
        "edit",
        max_turns=7,
        args=["--effort", "low"],
        base_url="http://127.0.0.1:9/gw",
        api_key_env="MY_KEY_VAR",
        max_tokens=4096,
        env={"MY_KEY_VAR": "from-my-var-123456"},
    )
    rec = recorded(tmp_path)
    argv = rec["argv"]
    assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--allowedTools") + 1] == "Bash"
    assert "--dangerously-skip-permissions" not in argv
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert argv[argv.index("--max-turns") + 1] == "7"
    briefing = argv[argv.index("--append-system-prompt") + 1]
    assert briefing.endswith("# Experiment 1\nMake it faster.") and "unattended" in briefing
    assert argv[-2:] == ["--effort", "low"]
    assert rec["stdin"].startswith("Carry out experiment 1")
    assert rec["cwd"] == str(tmp_path / "work")
    assert {"ANTHROPIC_BASE_URL", "CLAUDE_CODE_MAX_OUTPUT_TOKENS", "EXPD_EXPERIMENT"} <= set(
        rec["env"]
    )


def test_environment_mapping_and_precedence(tmp_path: Path) -> None:
    agent = ClaudeAgent(
        program(
            {"ANTHROPIC_BASE_URL": "http://explicit"},
            base_url="http://from-config",
            api_key_env="MY_KEY_VAR",
            max_tokens=1000,
        )
    )
    task = AgentTask(1, tmp_path, tmp_path, "p", tmp_path / "p.md", 1, {"MY_KEY_VAR": "k" * 12})
    env = agent.environment(task)
    assert env["ANTHROPIC_BASE_URL"] == "http://explicit"  # [agent] env wins
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "1000"
    assert env["ANTHROPIC_API_KEY"] == KEY  # [agent] env again
    gateway = ClaudeAgent(program(base_url="http://gw.example/anthropic/v1/"))
    assert gateway.environment(task)["ANTHROPIC_BASE_URL"] == "http://gw.example/anthropic"
    bare = ProgramConfig(
        metric="score",
        direction="lower",
        agent=AgentConfig(kind="claude", api_key_env="MY_KEY_VAR"),
    )
    assert ClaudeAgent(bare).environment(task)["ANTHROPIC_API_KEY"] == "k" * 12


def test_a_huge_briefing_goes_on_stdin(tmp_path: Path) -> None:
    agent = ClaudeAgent(program())
    prompt = "y" * 200_000
    argv, stdin = agent.command(AgentTask(3, tmp_path, tmp_path, prompt, tmp_path / "p", 1, {}))
    assert "--append-system-prompt" not in argv
    assert prompt.encode() in stdin and b"Carry out experiment 3" in stdin


def test_switch_model_changes_the_next_command(tmp_path: Path) -> None:
    agent = ClaudeAgent(program())
    agent.switch_model("claude-haiku-4-5")
    argv, _ = agent.command(AgentTask(1, tmp_path, tmp_path, "p", tmp_path / "p", 1, {}))
    assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"
    assert isinstance(
        make_agent(program(), kind="claude", model="m", run_dir=tmp_path), ClaudeAgent
    )


def test_tool_errors_and_refused_permissions_are_logged(tmp_path: Path) -> None:
    outcome, events = run(tmp_path, "tools")
    assert outcome.error is None and outcome.description == "Added g.py with y = 2"
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [(r.name, r.is_error) for r in results] == [
        ("Write", False),
        ("Bash", True),
        ("Write", True),
    ]
    denied = [e.text for e in events if isinstance(e, Text) and e.stream == "stderr"]
    assert any(t.startswith("permission denied: Write") for t in denied)


def test_malformed_lines_are_logged_and_skipped(tmp_path: Path) -> None:
    outcome, events = run(tmp_path, "edit", mode="malformed")
    assert outcome.error is None and outcome.cost_usd == pytest.approx(0.00267)
    junk = [e for e in events if isinstance(e, Text) and e.text.startswith("unparseable output")]
    assert len(junk) >= 5 and all(e.stream == "stderr" for e in junk)


def test_events_of_unexpected_shapes_are_logged_not_fatal(tmp_path: Path) -> None:
    events: list[AgentEvent] = []
    stream = ClaudeStream(events.append, tmp_path, "claude-sonnet-4-5", {})
    for line in [
        '{"type": "assistant", "message": [1, 2]}',
        '{"type": "user", "message": {"content": "plain text"}}',
        '{"type": "system", "subtype": "api_retry", "retry_delay_ms": "soon", "error": 5}',
        '{"type": "stream_event", "event": {}}',
        '{"type": "result", "is_error": true, "errors": "boom", "usage": [], "total_cost_usd": "1"}',
    ]:
        stream.line("stdout", line)
    outcome = stream.outcome(1)
    assert outcome.error and outcome.error_class is None  # an error result, no provider named
    assert outcome.cost_usd == 0.0 and outcome.tokens == 0
    assert any("unexpected assistant event" in getattr(e, "text", "") for e in events)


def test_a_stream_without_result_is_an_other_failure_with_estimated_cost(tmp_path: Path) -> None:
    outcome, events = run(tmp_path, "edit", mode="truncate", env={"FAKE_CLAUDE_EXIT": "1"})
    assert outcome.error == "stream ended without a result (exit code 1)"
    assert outcome.error_class == "other" and not outcome.timed_out
    assert outcome.session_id == sample_result("edit")["session_id"]
    assert outcome.tokens > 0 and outcome.cost_usd > 0  # priced from the messages' usage
    assert isinstance(events[-1], AgentErrorEvent) and events[-1].error_class == "other"


@pytest.mark.parametrize(
    ("stderr", "error_class"),
    [
        ("Invalid API key · Please run /login", "auth"),
        ("API Error: 429 rate_limit_error", "rate_limit"),
        ("Credit balance is too low", "quota"),
    ],
)
def test_a_cut_stream_is_classified_by_what_stderr_said(
    tmp_path: Path, stderr: str, error_class: str
) -> None:
    env = {"FAKE_CLAUDE_EXIT": "1", "FAKE_CLAUDE_STDERR": stderr}
    outcome, events = run(tmp_path, "edit", mode="truncate", env=env)
    assert outcome.error_class == error_class
    assert stderr in (outcome.error or "")
    assert Text(text=stderr, stream="stderr") in events


@pytest.mark.parametrize(
    ("sample", "error_class", "text"),
    [
        ("auth_error", "auth", "API error 401: Invalid API key"),
        ("credit", "quota", "API error 400: Credit balance is too low"),
        ("rate_limit", "rate_limit", "API error 429: API Error: Request rejected (429)"),
        ("overloaded", "rate_limit", "API error 529: API Error: 529 Overloaded"),
    ],
)
def test_api_errors_in_the_result_are_classified(
    tmp_path: Path, sample: str, error_class: str, text: str
) -> None:
    outcome, events = run(tmp_path, sample, env={"FAKE_CLAUDE_EXIT": "1"})
    assert outcome.error_class == error_class
    assert (outcome.error or "").startswith(text)
    assert outcome.description == "" and not outcome.timed_out
    assert events[-1] == AgentErrorEvent(message=outcome.error or "", error_class=error_class)


def test_a_rate_limit_carries_the_clis_last_backoff_as_retry_after(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, "rate_limit", env={"FAKE_CLAUDE_EXIT": "1"})
    assert outcome.retry_after is not None and 0.5 < outcome.retry_after < 2


def test_a_refused_key_stops_the_cli_retrying(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome, events = run(tmp_path, "auth_retrying", mode="hang")
    assert time.monotonic() - started < 5
    assert outcome.error_class == "auth" and "refused the credential twice" in (outcome.error or "")
    retries = [e for e in events if isinstance(e, Text) and "retries in" in e.text]
    assert len(retries) >= 2  # lines already in the pipe are still read
    assert _dead(tmp_path)


def test_max_turns_is_a_crash_with_the_last_words_as_description(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, "max_turns", env={"FAKE_CLAUDE_EXIT": "1"})
    assert outcome.error == "error_max_turns: Reached maximum number of turns (1)"
    assert outcome.error_class is None
    assert outcome.description == "Let me look at f.py first."
    assert outcome.cost_usd == pytest.approx(0.0006)


def test_a_hung_cli_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome, events = run(tmp_path, "edit", mode="hang", timeout=1.5)
    assert time.monotonic() - started < 6
    assert outcome.timed_out and outcome.error_class is None
    assert "timed out after 1.5s" in (outcome.error or "")
    assert _dead(tmp_path)
    assert any(isinstance(e, ToolUse) for e in events)  # what it did before hanging is logged


def test_a_missing_cli_makes_the_agent_unavailable(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, "edit", command=str(tmp_path / "no-such-claude"))
    assert outcome.unavailable and outcome.error_class is None
    assert "not found" in (outcome.error or "")


def test_the_key_never_reaches_the_log(tmp_path: Path) -> None:
    _, events = run(tmp_path, "edit", env={"FAKE_CLAUDE_STDERR": f"key is {KEY}"})
    text = b"".join(msgspec.json.encode(e) for e in events).decode()
    assert KEY not in text and "key is [redacted]" in text


def test_short_inputs_and_first_lines() -> None:
    work = Path("/w/t")
    data = {"file_path": "/w/t/src/x.py", "content": "z" * 500, "edits": [{"a": 1}]}
    short = short_input(data, work)
    assert short["file_path"] == "src/x.py" and len(short["content"]) == 160
    assert short["edits"] == '[{"a": 1}]'
    assert short_input({"file_path": "/elsewhere/x"}, work) == {"file_path": "/elsewhere/x"}
    assert first_line("\n\n## Tuned the cache\nmore") == "Tuned the cache"
    assert first_line("- -1 is the new offset") == "-1 is the new offset"
    assert len(first_line("w" * 500)) == 200


def _dead(tmp_path: Path) -> bool:
    """The fake CLI, the child it started and the whole process group reported are gone."""
    *pids, group = [int(p) for p in (tmp_path / "pids").read_text().split()]
    pgid = int((tmp_path / "pgid").read_text())
    assert group == pgid  # what the daemon was told to kill on a crash is the CLI's group
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids) and not group_members(pgid):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")


def test_a_bakeoff_attempt_is_briefed_as_a_task_not_an_experiment(tmp_path: Path) -> None:
    agent = ClaudeAgent(program())
    task = AgentTask(2, tmp_path, tmp_path, "Fix the parser.", tmp_path / "p", 1, {})
    task.purpose, task.title = "task", "bakeoff fix-parser fast #2"
    argv, stdin = agent.command(task)
    briefing = argv[argv.index("--append-system-prompt") + 1]
    assert "compares agent setups on tasks" in briefing and "Fix the parser." in briefing
    assert "final answer" in stdin.decode() and "experiment" not in stdin.decode()
    assert task.name == "bakeoff fix-parser fast #2"


def test_a_draft_is_briefed_as_a_draft_in_a_scratch_folder(tmp_path: Path) -> None:
    agent = ClaudeAgent(program())
    task = AgentTask(0, tmp_path, tmp_path, "You are drafting a program.", tmp_path / "p", 1, {})
    task.purpose = "draft"
    argv, stdin = agent.command(task)
    briefing = argv[argv.index("--append-system-prompt") + 1]
    assert "scratch folder, not a git worktree" in briefing and "criteria" not in briefing
    assert briefing.endswith("You are drafting a program.")
    assert stdin.decode().startswith("Draft the program") and "experiment" not in stdin.decode()
