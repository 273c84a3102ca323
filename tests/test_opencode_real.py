"""The REAL OpenCode CLI (opencode-ai, pinned in tests/agent_clis.py) against the fake chat server.

No network: the CLI talks to tests/fakes/chat_server.py on 127.0.0.1 through the OpenAI-compatible
provider config expd generates for `[agent] base_url`, with its state in the run directory.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.agents.base import AgentEvent, AgentTask, Final, ToolResult, ToolUse, Usage
from daemon.agents.opencode import OpenCodeAgent
from shared.paths import RepoPaths, RunPaths
from shared.schema import AgentConfig, Price, ProgramConfig
from tests.agent_clis import backend, require_cli, sandbox_around
from tests.fakes.chat_server import Call, ChatServer, Reply
from tests.repos import (
    expd,
    git,
    group_members,
    make_repo,
    processes_in,
    results,
    start,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.realcli

KEY = "sk-opencode-real-8yHsecretQ2"
PLAN = {1: 2, 2: 9}
"""x the fake model writes in each experiment: 2 beats 0 (keep), 9 is worse (discard)."""


def no_key_written(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert KEY.encode() not in path.read_bytes(), f"the API key is in {path}"


def user_text(body: dict[str, Any]) -> str:
    message = next(m for m in body["messages"] if m["role"] == "user")
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def model(body: dict[str, Any]) -> Reply:
    """Read f.py, write the planned x with OpenCode's own tools, then summarise."""
    match = re.search(r"# Experiment (\d+)", user_text(body))
    x = PLAN[int(match.group(1))] if match else 1
    calls = sum(1 for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    if calls == 0:
        return Reply.tool_calls([Call("read", {"filePath": "f.py"})])
    if calls == 1:
        return Reply.tool_calls([Call("write", {"filePath": "f.py", "content": f"x = {x}\n"})])
    return Reply.text(f"Set x to {x} in f.py.\nIt should move the score.")


def worktree(root: Path) -> Path:
    path = root / "wt"
    path.mkdir()
    (path / "f.py").write_text("x = 0\n")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def agent(server: ChatServer) -> OpenCodeAgent:
    config = AgentConfig(
        kind="opencode",
        model="fake-model",
        command=str(require_cli("opencode")),
        base_url=server.url,
        api_key_env="FAKE_KEY",
        prices={"fake-model": Price(input=1.0, output=2.0)},
    )
    return OpenCodeAgent(ProgramConfig(metric="score", direction="lower", agent=config))


def task(root: Path, wt: Path, timeout: float, mode: str = "auto", **env: str) -> AgentTask:
    """The task as the daemon gives it: confined by the sandbox this machine has."""
    return AgentTask(
        experiment=1,
        worktree=wt,
        run_dir=root / "run",
        prompt="# Experiment 1\nMake the score lower.",
        prompt_file=root / "prompt.md",
        timeout=timeout,
        env={"FAKE_KEY": KEY, **env},
        sandbox=sandbox_around(wt, root / "run", mode=mode),
    )


@pytest.mark.parametrize("mode", ["auto", "landlock"])
async def test_the_real_cli_edits_a_file_through_its_own_tools(tmp_path: Path, mode: str) -> None:
    wt = worktree(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    events: list[AgentEvent] = []
    with ChatServer(model) as server:
        job = task(tmp_path, wt, 90, mode, HOME=str(home))
        outcome = await agent(server).run(job, events.append)
    assert outcome.error is None, [str(e) for e in events]
    assert (wt / "f.py").read_text() == "x = 2\n"
    assert outcome.description == "Set x to 2 in f.py."
    assert outcome.session_id and outcome.session_id.startswith("ses_")
    assert [e.name for e in events if isinstance(e, ToolUse)] == ["read", "write"]
    assert not any(e.is_error for e in events if isinstance(e, ToolResult))
    assert outcome.tokens == 3 * 120
    assert outcome.cost_usd == pytest.approx(3 * (100 * 1.0 + 20 * 2.0) / 1e6)
    assert sum(e.cost_usd for e in events if isinstance(e, Usage)) == pytest.approx(
        outcome.cost_usd
    )
    assert isinstance(events[-1], Final)
    assert len(server.requests) == 3
    assert user_text(server.requests[0]) == job.prompt
    assert {h["authorization"] for h in server.request_headers} == {f"Bearer {KEY}"}
    tools = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert {"read", "write", "edit", "bash"} <= tools
    private = tmp_path / "run" / "opencode"
    assert (private / "data" / "opencode" / "opencode.db").is_file()
    assert not (private / "npm").exists(), "OpenCode tried to npm-install its plugin SDK"
    assert not any((private / "config" / "opencode" / "node_modules").iterdir())
    assert not any(home.iterdir()), "OpenCode wrote into $HOME despite its private XDG dirs"
    no_key_written(tmp_path)


async def test_cancelling_mid_request_kills_the_whole_cli(tmp_path: Path) -> None:
    """What a timeout or an abort does, once the real CLI is busy waiting on the model."""
    wt = worktree(tmp_path)
    pgids: list[int] = []
    with ChatServer([Reply.hang(60)]) as server:
        job = task(tmp_path, wt, 90)
        job.on_process_start = pgids.append
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(agent(server).run, job, lambda event: None)
                while not server.requests:
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
    assert pgids
    wait_for(lambda: not group_members(pgids[0]), 5, "the OpenCode process group to die")
    assert not processes_in(wt)


def program(root: Path, cli: Path, max_experiments: int) -> Path:
    repo = make_repo(root, max_experiments=max_experiments)
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    toml.write_text(
        text[: text.index("[agent]")]
        + f"""[agent]
kind = "opencode"
command = "{cli}"
model = "fake-model"
base_url = "{{url}}"
api_key_env = "FAKE_KEY"
timeout = "90s"
retry_wait = "0.1s"
[agent.prices."fake-model"]
input = 1.0
output = 2.0
"""
    )
    return repo


def run(root: Path, script: Any, max_experiments: int) -> tuple[RunPaths, ChatServer, dict]:
    repo = program(root, require_cli("opencode"), max_experiments)
    toml = RepoPaths(repo).program("p").toml
    with ChatServer(script) as server:
        toml.write_text(toml.read_text().replace("{url}", server.url))
        paths = start(repo, env={"FAKE_KEY": KEY})
        wait_finished(paths, timeout=150)
    status = json.loads(expd("status", "--json", cwd=repo).stdout)
    return paths, server, status


@pytest.mark.timeout(200)
def test_a_run_through_the_daemon_keeps_discards_and_adds_up(tmp_path: Path) -> None:
    paths, server, status = run(tmp_path, model, max_experiments=2)
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [
        (0, "baseline"),
        (1, "keep"),
        (2, "discard"),
    ], [r.reason for r in records]
    assert [r.description for r in records[1:]] == ["Set x to 2 in f.py.", "Set x to 9 in f.py."]
    assert all(r.session_id and r.session_id.startswith("ses_") for r in records[1:])
    per_experiment = 3 * (100 * 1.0 + 20 * 2.0) / 1e6
    assert [r.cost_usd for r in records[1:]] == pytest.approx([per_experiment] * 2)
    assert [r.tokens for r in records[1:]] == [360, 360]
    assert status["termination_reason"] == "max_experiments"
    assert status["sandbox"] == backend()
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    assert status["tokens"] == sum(r.tokens for r in records)
    assert len(server.requests) == 6
    log = paths.agent_log(1).read_text()
    assert "→ write" in log and "← read" in log and "[usage]" in log and "[done]" in log
    kept = subprocess.run(
        ["git", "show", f"{records[1].commit}:f.py"],
        cwd=paths.dir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert kept.stdout == "x = 2\n"
    no_key_written(tmp_path)


@pytest.mark.timeout(200)
def test_a_rejected_key_ends_the_run_agent_unavailable(tmp_path: Path) -> None:
    paths, server, status = run(tmp_path, lambda body: Reply.auth_error(), max_experiments=3)
    assert [r.status for r in results(paths)] == ["baseline"]
    assert status["termination_reason"] == "agent_unavailable"
    assert "authentication failed" in status["message"]
    assert "Incorrect API key provided" in status["message"]
    assert len(server.requests) == 1
    no_key_written(tmp_path)
