"""The built-in `openai` agent against a real local chat-completions server (no network)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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
from daemon.agents.openai import OpenAIAgent
from daemon.agents.registry import make_agent
from daemon.agents.tools import MAX_OUTPUT, ToolError, Workspace
from shared.schema import AgentConfig, Price, ProgramConfig
from tests.fakes.chat_server import Call, ChatServer, Reply
from tests.repos import group_members, wait_for

KEY = "sk-test-Zq81secretKEYvalue0042"
PRICE = Price(input=2.0, output=8.0, cached_input=0.5)


def config(server: ChatServer | None, **agent: Any) -> ProgramConfig:
    settings: dict[str, Any] = {
        "kind": "openai",
        "model": "fake-model",
        "api_key_env": "FAKE_KEY",
        "prices": {"fake-model": PRICE},
    }
    if server is not None:
        settings["base_url"] = server.url
    settings.update(agent)
    return ProgramConfig(metric="score", direction="lower", agent=AgentConfig(**settings))


class Run:
    """One experiment's inputs and everything the agent emitted."""

    def __init__(self, root: Path, timeout: float = 10.0, env: dict[str, str] | None = None):
        self.worktree = root / "wt"
        self.worktree.mkdir()
        (self.worktree / "f.py").write_text("x = 0\n")
        self.events: list[AgentEvent] = []
        self.pgids: list[int] = []
        self.task = AgentTask(
            experiment=4,
            worktree=self.worktree,
            run_dir=root,
            prompt="# Experiment 4\nMake score lower.",
            prompt_file=root / "prompt.md",
            timeout=timeout,
            env={"FAKE_KEY": KEY} if env is None else env,
            on_process_start=self.pgids.append,
        )

    async def go(self, agent: OpenAIAgent) -> AgentOutcome:
        return await agent.run(self.task, self.events.append)

    def of(self, kind: type[AgentEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def transcript(self) -> str:
        return "\n".join(render(e) + msgspec.json.encode(e).decode() for e in self.events)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as s:
        yield s


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


async def test_tool_loop_changes_files_and_reports_cost(run: Run, server: ChatServer) -> None:
    server.add(
        Reply.tool_calls([Call("list_dir", {}), Call("read_file", {"path": "f.py"})]),
        Reply.tool_calls(
            [
                Call("edit_file", {"path": "f.py", "old_string": "x = 0", "new_string": "x = 1"}),
                Call("write_file", {"path": "sub/new.txt", "content": "hello\n"}),
            ],
            content="Editing now.",
            usage=(200, 30, 100),
        ),
        Reply.tool_calls([Call("run_shell", {"command": "cat f.py sub/new.txt; echo oops >&2"})]),
        Reply.text("Set x to 1 and added a note\nDetails follow.", usage=(300, 10, 0)),
    )
    outcome = await run.go(OpenAIAgent(config(server)))

    assert outcome.error is None and outcome.error_class is None
    assert (run.worktree / "f.py").read_text() == "x = 1\n"
    assert (run.worktree / "sub/new.txt").read_text() == "hello\n"
    assert outcome.description == "Set x to 1 and added a note"
    assert outcome.tokens == (100 + 20) * 2 + 230 + 310
    expected = ((100 + 100 + 100 + 300) * 2.0 + 100 * 0.5 + (20 + 30 + 20 + 10) * 8.0) / 1e6
    assert outcome.cost_usd == pytest.approx(expected)
    [usage] = run.of(Usage)
    assert (usage.cost_usd, usage.tokens) == (outcome.cost_usd, outcome.tokens)
    assert [u.name for u in run.of(ToolUse)] == [
        "list_dir",
        "read_file",
        "edit_file",
        "write_file",
        "run_shell",
    ]
    results = run.of(ToolResult)
    assert not any(r.is_error for r in results)
    assert results[0].output == "f.py"
    assert results[1].output == "x = 0\n"
    assert "x = 1" in results[4].output and "hello" in results[4].output
    assert "oops" in results[4].output and results[4].output.startswith("exit code 0")
    assert [t.text for t in run.of(Text)][:1] == ["Editing now."]
    assert run.of(Final)[0].description == outcome.description
    assert run.pgids, "the shell's process group is reported"

    first, second = server.requests[0], server.requests[1]
    assert first["model"] == "fake-model"
    assert first["messages"][0]["role"] == "system"
    assert "Make score lower." in first["messages"][0]["content"]
    assert first["messages"][1]["role"] == "user"
    assert {t["function"]["name"] for t in first["tools"]} == {
        "read_file",
        "write_file",
        "edit_file",
        "list_dir",
        "run_shell",
    }
    assistant = second["messages"][2]
    assert assistant["role"] == "assistant" and len(assistant["tool_calls"]) == 2
    ids = [m["tool_call_id"] for m in second["messages"] if m["role"] == "tool"]
    assert ids == [c["id"] for c in assistant["tool_calls"]]
    assert server.request_headers[0]["authorization"] == f"Bearer {KEY}"


async def test_bad_tool_calls_are_errors_the_model_sees(
    run: Run, server: ChatServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    (run.worktree / "link").symlink_to(outside)
    (run.worktree / "twice.txt").write_text("a\na\n")
    (run.worktree / ".git").mkdir()
    bad = [
        Call("edit_file", {"path": "f.py", "old_string": "y = 9", "new_string": "z"}),
        Call("edit_file", {"path": "twice.txt", "old_string": "a", "new_string": "b"}),
        Call("read_file", {"path": "../outside/secret.txt"}),
        Call("read_file", {"path": "link/secret.txt"}),
        Call("write_file", {"path": "link/planted.txt", "content": "x"}),
        Call("read_file", {"path": str(outside / "secret.txt")}),
        Call("list_dir", {"path": ".."}),
        Call("run_shell", {"command": "true", "timeout": "soon"}),
        Call("write_file", {"path": ".git/config", "content": "x"}),
        Call("read_file", {"path": "missing.py"}),
        Call("delete_everything", {}),
        Call("read_file", '{"path": "f.py"'),
    ]
    server.add(Reply.tool_calls(bad), Reply.text("gave up"))
    outcome = await run.go(OpenAIAgent(config(server)))

    assert outcome.error is None and outcome.description == "gave up"
    answers = tool_messages(server.requests[1])
    assert len(answers) == len(bad)
    assert all(a.startswith("error: ") for a in answers), answers
    assert "not found" in answers[0] and "2 times" in answers[1]
    assert all("outside the worktree" in a for a in answers[2:7])
    assert "top secret" not in "".join(answers) + run.transcript()
    assert not (outside / "planted.txt").exists()
    assert "unknown tool" in answers[10] and "not valid JSON" in answers[11]
    assert all(r.is_error for r in run.of(ToolResult))
    assert (run.worktree / "f.py").read_text() == "x = 0\n"
    assert (run.worktree / "twice.txt").read_text() == "a\na\n"


async def test_run_shell_timeout_kills_its_group_and_output_is_truncated(
    run: Run, server: ChatServer
) -> None:
    server.add(
        Reply.tool_calls(
            [Call("run_shell", {"command": "sleep 30 & sleep 30; echo never", "timeout": 0.5})]
        ),
        Reply.tool_calls([Call("run_shell", {"command": "seq 1 200000"})]),
        Reply.text("done"),
    )
    started = time.monotonic()
    outcome = await run.go(OpenAIAgent(config(server)))

    assert outcome.error is None
    assert time.monotonic() - started < 8
    timed, long = (r.output for r in run.of(ToolResult))
    assert timed.startswith("timed out after 0.5s") and "never" not in timed
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the background sleep to be killed")
    answer = tool_messages(server.requests[2])[-1]
    assert len(answer) < MAX_OUTPUT + 200
    assert answer.startswith("exit code 0\n1\n2\n") and answer.endswith("199999\n200000")
    assert "lines cut" in answer and long.startswith("exit code 0")


async def test_max_turns_stops_the_loop(run: Run) -> None:
    with ChatServer(lambda body: Reply.tool_calls([Call("list_dir", {})])) as endless:
        outcome = await run.go(OpenAIAgent(config(endless, max_turns=3)))
        assert len(endless.requests) == 3
    assert outcome.error is None and outcome.error_class is None
    assert "max_turns" in outcome.description
    assert outcome.tokens == 3 * 120


async def test_max_tokens_budget_stops_the_loop(run: Run) -> None:
    reply = Reply.tool_calls([Call("list_dir", {})], usage=(1000, 100, 0))
    with ChatServer(lambda body: reply) as endless:
        outcome = await run.go(OpenAIAgent(config(endless, max_tokens=2500)))
        assert len(endless.requests) == 3
    assert outcome.tokens == 3300 and outcome.error is None
    assert "max_tokens" in outcome.description


@pytest.mark.parametrize(
    ("reply", "error_class", "retry_after", "says"),
    [
        (Reply.auth_error(), "auth", None, "check the API key in $FAKE_KEY"),
        (Reply.quota_error(), "quota", None, "insufficient_quota"),
        (Reply.rate_limited(retry_after=7), "rate_limit", 7.0, "HTTP 429"),
        (Reply.error(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "250"}),
         "rate_limit", 0.25, "slow down"),
        (Reply.server_error(500), "transient", None, "HTTP 500"),
        (Reply.server_error(503), "transient", None, "HTTP 503"),
        (Reply.malformed(), "transient", None, "malformed response"),
        (Reply.cut(), "transient", None, "failed"),
        (Reply.error(200, {"error": {"message": "Rate limit exceeded"}}), "rate_limit", None,
         "Rate limit"),
    ],
)  # fmt: skip
async def test_provider_failures_are_classified(
    run: Run, reply: Reply, error_class: str, retry_after: float | None, says: str
) -> None:
    (run.worktree / "f.py").write_text("x = 0\n")
    with ChatServer([Reply.tool_calls([Call("list_dir", {})]), reply]) as server:
        outcome = await run.go(OpenAIAgent(config(server)))
    assert outcome.error_class == error_class
    assert outcome.retry_after == retry_after
    assert outcome.error and says in outcome.error
    assert not outcome.timed_out
    [error] = run.of(AgentErrorEvent)
    assert error.error_class == error_class
    assert outcome.tokens == 120, "the turn that succeeded still counts"
    assert [u.tokens for u in run.of(Usage)] == [120]


async def test_a_hung_provider_times_out_as_a_crash(tmp_path: Path) -> None:
    run = Run(tmp_path, timeout=0.8)
    with ChatServer([Reply.hang(30)]) as server:
        started = time.monotonic()
        outcome = await run.go(OpenAIAgent(config(server)))
    assert time.monotonic() - started < 5
    assert outcome.timed_out and outcome.error and "timed out" in outcome.error
    assert outcome.error_class is None


async def test_timeout_during_a_shell_command_kills_it(tmp_path: Path) -> None:
    run = Run(tmp_path, timeout=1.0)
    with ChatServer([Reply.tool_calls([Call("run_shell", {"command": "sleep 60"})])]) as server:
        outcome = await run.go(OpenAIAgent(config(server)))
    assert outcome.timed_out and outcome.error_class is None
    wait_for(lambda: not group_members(run.pgids[0]), 5, "the shell to be killed")
    assert outcome.tokens == 120 and [u.tokens for u in run.of(Usage)] == [120]


async def test_missing_key_is_an_auth_failure_without_a_request(
    run: Run, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run.task.env = {}
    outcome = await run.go(OpenAIAgent(config(server)))
    assert outcome.error_class == "auth" and "$FAKE_KEY is not set" in (outcome.error or "")
    default = OpenAIAgent(config(None, api_key_env=None))
    assert default.base_url == "https://api.openai.com/v1"
    outcome = await run.go(default)
    assert outcome.error_class == "auth" and "$OPENAI_API_KEY" in (outcome.error or "")
    assert server.requests == []


async def test_custom_base_url_needs_no_key(run: Run, server: ChatServer) -> None:
    server.add(Reply.text("local model change"))
    outcome = await run.go(OpenAIAgent(config(server, api_key_env=None)))
    assert outcome.description == "local model change" and outcome.error is None
    assert "authorization" not in server.request_headers[0]


async def test_the_key_is_never_emitted_nor_given_to_the_shell(
    run: Run, server: ChatServer
) -> None:
    echo = f"echo FAKE_KEY=$FAKE_KEY; env | grep -c {KEY[:12]} || true; echo {KEY}"
    server.add(
        Reply.tool_calls([Call("run_shell", {"command": echo})]),
        Reply.tool_calls([Call("write_file", {"path": "k.txt", "content": KEY})]),
        Reply.error(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}),
    )
    outcome = await run.go(OpenAIAgent(config(server)))
    shell = run.of(ToolResult)[0].output
    assert "FAKE_KEY=\n0\n" in shell, shell
    assert outcome.error_class == "auth"
    everything = run.transcript() + repr(outcome)
    assert KEY not in everything
    assert "[redacted]" in everything


async def test_switch_model_and_unknown_prices(run: Run, server: ChatServer) -> None:
    agent = make_agent(config(server), kind="openai", model=None, run_dir=run.task.run_dir)
    assert isinstance(agent, OpenAIAgent)
    agent.switch_model("fallback-model")
    outcome = await run.go(agent)
    assert server.requests[0]["model"] == "fallback-model"
    assert outcome.cost_usd == 0 and outcome.tokens == 120
    notes = [t.text for t in run.of(Text) if t.stream == "stderr"]
    assert any('[agent.prices."fallback-model"]' in n for n in notes)


def test_fake_server_streams_what_it_would_send_whole() -> None:
    """The SSE form (used by CLIs pointed at the fake server) reassembles to the JSON form."""
    reply = Reply.tool_calls(
        [Call("edit_file", {"path": "f.py", "old_string": "x = 0", "new_string": "x = 1"}, "c7")],
        content="Let me edit.",
        usage=(50, 7, 10),
    )
    with ChatServer([reply, reply, Reply.cut(), Reply.malformed()]) as server:
        whole = httpx.post(f"{server.url}/chat/completions", json={"model": "m"}).json()
        body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{server.url}/chat/completions", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
        cut: list[str] = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", f"{server.url}/chat/completions", json=body) as response,
        ):
            cut += (line for line in response.iter_lines() if line)
        with httpx.stream("POST", f"{server.url}/chat/completions", json=body) as response:
            malformed = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and cut[-1] != "data: [DONE]"
    assert any(not _is_json(line[6:]) for line in malformed[:-1])
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    content, args, calls, finish = "", "", [], None
    for chunk in chunks[:-1]:
        delta = chunk["choices"][0]["delta"]
        content += delta.get("content") or ""
        for part in delta.get("tool_calls") or []:
            if "id" in part:
                calls.append(
                    {"id": part["id"], "type": part["type"], "name": part["function"]["name"]}
                )
            args += part["function"]["arguments"]
        finish = chunk["choices"][0]["finish_reason"] or finish
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    message = whole["choices"][0]["message"]
    assert content == message["content"] and finish == whole["choices"][0]["finish_reason"]
    [call] = message["tool_calls"]
    assert calls == [{"id": "c7", "type": "function", "name": "edit_file"}] and call["id"] == "c7"
    assert args == call["function"]["arguments"]
    assert whole["usage"]["prompt_tokens_details"]["cached_tokens"] == 10


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def test_long_files_are_read_in_parts(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    workspace = Workspace(tmp_path, {})
    whole = await workspace.call("read_file", {"path": "long.txt"})
    assert len(whole) <= MAX_OUTPUT and whole.startswith("line 1\n")
    assert whole.endswith("[long.txt has 5000 lines: read the middle with start_line/end_line]")
    part = await workspace.call(
        "read_file", {"path": "long.txt", "start_line": 2500, "end_line": 2501}
    )
    assert part == "line 2500\nline 2501\n"
    with pytest.raises(ToolError, match="integers"):
        await workspace.call("read_file", {"path": "long.txt", "start_line": "2"})
    with pytest.raises(ToolError, match="must not be empty"):
        await workspace.call("edit_file", {"path": "long.txt", "old_string": "", "new_string": "x"})


@pytest.mark.parametrize(
    ("purpose", "system", "ask"),
    [
        ("experiment", "Make the ONE change", "experiment 4 now"),
        ("task", "checks it against the task's criteria", "Carry out the task now"),
        ("draft", "drafting a program for expd, in a scratch folder", "Write the draft now"),
    ],
)
async def test_the_brief_is_framed_by_its_purpose(
    run: Run, server: ChatServer, purpose: str, system: str, ask: str
) -> None:
    server.add(Reply.text("Done"))
    run.task.purpose = purpose
    outcome = await run.go(OpenAIAgent(config(server)))
    assert outcome.error is None
    first, second = server.requests[0]["messages"][:2]
    assert system in first["content"] and first["content"].endswith("Make score lower.")
    assert ask in second["content"]
