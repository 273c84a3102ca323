"""The real Codex CLI (pinned in tests/agent_clis.py) against the fake Responses API server.

Each scenario runs `codex exec --json` exactly as CodexAgent builds it, checks what happened, and
compares the kinds of events printed with `tests/samples/codex/<name>.jsonl`, which the fast tests
replay; `EXPD_RECORD_SAMPLES=1` rewrites the samples (do that after bumping the pinned version).
Then whole runs go through the real daemon with `[agent] kind = "codex"`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from daemon.agents.base import AgentEvent, AgentTask, Final, ToolResult, ToolUse, Usage
from daemon.agents.codex import CodexAgent
from daemon.agents.codex_stream import CodexStream, classify
from shared.paths import RepoPaths, RunPaths
from shared.schema import AgentConfig, Price, ProgramConfig
from tests.agent_clis import backend, confined, require_cli, sandbox_around
from tests.fakes import responses_server as fake
from tests.fakes.responses_server import Reply, Responder, ResponsesServer, Step, last_tool_output
from tests.repos import expd, git, make_repo, results, start, wait_finished

pytestmark = pytest.mark.realcli

SAMPLES = Path(__file__).parent / "samples" / "codex"
FAKES = Path(__file__).parent / "fakes"
KEY = "sk-codex-e2e-5mKq1secretvalue0707"
SAMPLE_URL = "http://127.0.0.1:9/v1"
RETRY_ONCE = [
    "-c",
    "model_providers.expd.request_max_retries=1",
    "-c",
    "model_providers.expd.stream_max_retries=1",
]
NO_RETRY = [a.replace("=1", "=0") for a in RETRY_ONCE]
MCP = [
    "-c",
    f"mcp_servers.echo.command={json.dumps(sys.executable)}",
    "-c",
    f"mcp_servers.echo.args={json.dumps([str(FAKES / 'mcp_echo.py')])}",
]
PATCH = "*** Begin Patch\n*** Update File: f.py\n@@\n-x = 1\n+x = 2\n*** End Patch\n"


@dataclass
class Scenario:
    name: str
    script: list[Step] = field(default_factory=list)
    then: Step | None = None
    model: str = "gpt-5"
    args: list[str] = field(default_factory=list)
    f_py: str = "x = 0\n"
    error_class: str | None = None


SCENARIOS = [
    Scenario(
        "edit_shell",
        [
            Reply(text="I'll bump x.", calls=[("exec_command", {"cmd": "sed -i s/0/1/ f.py"})]),
            Reply(text="Set x to 1 in f.py.\n\nThe score should drop."),
        ],
        f_py="x = 1\n",
    ),
    Scenario(
        "rich",
        [
            Reply(
                reasoning="**Reading f.py**\n\nI should look before editing.",
                items=[
                    {
                        "id": "ws_1",
                        "type": "web_search_call",
                        "status": "completed",
                        "action": {"type": "search", "query": "python constants"},
                    }
                ],
                text="Looking at the file.",
                calls=[
                    ("exec_command", {"cmd": "sed -i s/0/1/ f.py && cat f.py"}),
                    ("exec_command", {"cmd": "cat missing.py"}),
                ],
            ),
            Reply(calls=[("apply_patch", PATCH)]),
            Reply(calls=[("mcp__echo.echo", {"text": "done"})]),
            Reply(text="Set x to 2 in f.py.", input_tokens=3000, cached_tokens=2500),
        ],
        model="gpt-5.5",
        args=MCP,
        f_py="x = 2\n",
    ),
    Scenario("auth", then=fake.UNAUTHORIZED, args=RETRY_ONCE, error_class="auth"),
    Scenario("quota", then=fake.QUOTA, args=RETRY_ONCE, error_class="quota"),
    Scenario(
        "rate_limit_429",
        then=replace(fake.RATE_LIMITED, headers={"retry-after": "0"}),
        args=RETRY_ONCE,
        error_class="rate_limit",
    ),
    Scenario(
        "rate_limit_failed",
        then=Reply(
            failed={
                "code": "rate_limit_exceeded",
                "message": "Rate limit reached for gpt-5 on tokens per min. "
                "Please try again in 0.2s.",
            }
        ),
        args=RETRY_ONCE,
        error_class="rate_limit",
    ),
    Scenario("server_error", then=fake.SERVER_ERROR, args=RETRY_ONCE, error_class="transient"),
    Scenario(
        "disconnected", then=Reply(text="Half", cut=True), args=RETRY_ONCE, error_class="transient"
    ),
]


def config(codex: Path, url: str, **agent: Any) -> ProgramConfig:
    settings: dict[str, Any] = {
        "kind": "codex",
        "command": str(codex),
        "model": "gpt-5",
        "base_url": url,
        "api_key_env": "FAKE_KEY",
    }
    settings.update(agent)
    return ProgramConfig(metric="score", direction="lower", agent=AgentConfig(**settings))


def worktree(root: Path) -> Path:
    wt = root / "wt"
    wt.mkdir()
    git(wt, "init", "-q", "-b", "main")
    (wt / "f.py").write_text("x = 0\n")
    git(wt, "add", "-A")
    git(wt, "commit", "-qm", "initial")
    return wt


def task_for(root: Path, wt: Path, timeout: float = 60.0, mode: str = "auto") -> AgentTask:
    """The task as the daemon gives it: confined by the sandbox this machine has."""
    return AgentTask(
        experiment=1,
        worktree=wt,
        run_dir=root / "run",
        prompt="# Experiment 1\nMake the score lower.",
        prompt_file=root / "prompt.md",
        timeout=timeout,
        env={"FAKE_KEY": KEY},
        sandbox=sandbox_around(wt, root / "run", mode=mode),
    )


def shape(lines: list[str]) -> Counter[tuple[str, str]]:
    """The kinds of events, ignoring ids, text and the order of parallel tool calls."""
    kinds: Counter[tuple[str, str]] = Counter()
    for line in lines:
        event = json.loads(line)
        kinds[(event["type"], (event.get("item") or {}).get("type", ""))] += 1
    return kinds


@pytest.fixture(scope="module")
def codex() -> Path:
    return require_cli("codex")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_matches_its_sample(codex: Path, tmp_path: Path, scenario: Scenario) -> None:
    wt = worktree(tmp_path)
    with ResponsesServer(list(scenario.script), then=scenario.then) as server:
        agent = CodexAgent(config(codex, server.base_url, model=scenario.model, args=scenario.args))
        task = task_for(tmp_path, wt)
        sandbox = task.sandbox.allowing(task.run_dir / "codex-home")
        env = agent.environment(task)
        with confined(sandbox, agent.command(task), env, wt) as (argv, env):
            proc = subprocess.run(
                argv,
                input=task.prompt,
                env=env,
                cwd=wt,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, proc.stderr
    events: list[AgentEvent] = []
    stream = CodexStream(wt, events.append)
    for line in lines:
        stream.feed(line)
    assert (wt / "f.py").read_text() == scenario.f_py
    assert {r.headers.get("authorization") for r in server.responses} == {f"Bearer {KEY}"}
    if scenario.error_class is None:
        assert proc.returncode == 0 and stream.completed and stream.failure is None
    else:
        assert proc.returncode != 0 and stream.failure is not None
        assert classify(stream.failure) == scenario.error_class, stream.failure
    sample = SAMPLES / f"{scenario.name}.jsonl"
    text = "\n".join(lines).replace(str(wt), "@WORKTREE@").replace(server.base_url, SAMPLE_URL)
    if os.environ.get("EXPD_RECORD_SAMPLES") == "1":
        sample.parent.mkdir(parents=True, exist_ok=True)
        sample.write_text(text + "\n")
    assert sample.exists(), f"no sample yet: rerun with EXPD_RECORD_SAMPLES=1 to record {sample}"
    assert shape(lines) == shape(sample.read_text().splitlines()), text


@pytest.mark.parametrize("mode", ["auto", "landlock"])
async def test_real_cli_edits_through_the_adapter(codex: Path, tmp_path: Path, mode: str) -> None:
    """CodexAgent.run end to end: the freeform apply_patch tool edits f.py; priced by override."""
    wt = worktree(tmp_path)
    (wt / "f.py").write_text("x = 1\n")
    script = [Reply(calls=[("apply_patch", PATCH)]), Reply(text="Set x to 2 in f.py.\nDetail.")]
    price = Price(input=2.0, output=16.0, cached_input=0.2)
    with ResponsesServer(script) as server:
        agent = CodexAgent(
            config(codex, server.base_url, model="gpt-5.5", prices={"gpt-5.5": price})
        )
        events: list[AgentEvent] = []
        pgids: list[int] = []
        task = task_for(tmp_path, wt, mode=mode)
        task.on_process_start = pgids.append
        outcome = await agent.run(task, events.append)
    assert outcome.error is None, outcome.error
    assert (wt / "f.py").read_text() == "x = 2\n"
    assert outcome.description == "Set x to 2 in f.py."
    assert outcome.session_id and len(pgids) == 1
    assert outcome.tokens == 2000 + 100
    assert outcome.cost_usd == pytest.approx((1600 * 2.0 + 400 * 0.2 + 100 * 16.0) / 1e6)
    assert [e for e in events if isinstance(e, ToolUse)] == [
        ToolUse(name="edit", input={"path": "f.py", "kind": "update"})
    ]
    assert any(isinstance(e, ToolResult) and e.output == "f.py" for e in events)
    assert [e.tokens for e in events if isinstance(e, Usage)] == [2100]
    assert isinstance(events[-1], Final) and events[-1].session_id == outcome.session_id
    prompt = server.responses[0].body["input"][-1]["content"][0]["text"]  # type: ignore[index]
    assert ("expd commits it" in prompt) is not task.sandbox.confined  # only for Codex's own
    assert (task.run_dir / "codex-home").is_dir()


# --------------------------------------------------------------------------- through the daemon

PLAN = {1: 2, 2: 9, 3: 3}
"""x the fake model sets in each experiment: keep (2 beats 0), discard (9), keep (3 is best)."""


def experiment_of(body: dict[str, Any]) -> int:
    for item in body.get("input") or []:
        for part in item.get("content") or [] if item.get("role") == "user" else []:
            found = re.search(r"# Experiment (\d+)", str(part.get("text")))
            if found:
                return int(found.group(1))
    raise AssertionError("no experiment number in the request")


def model_policy(body: dict[str, Any]) -> Step:
    x = PLAN[experiment_of(body)]
    if last_tool_output(body) is None:
        return Reply(calls=[("exec_command", {"cmd": f"printf 'x = {x}\\n' > f.py"})])
    return Reply(text=f"Set x to {x} in f.py.")


def daemon_run(
    root: Path, codex: Path, model: Responder
) -> tuple[RunPaths, ResponsesServer, dict[str, Any]]:
    repo = make_repo(root, max_experiments=3)
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    with ResponsesServer(then=model) as server:
        toml.write_text(
            text[: text.index("[agent]")]
            + f"""[agent]
kind = "codex"
command = "{codex}"
model = "gpt-5"
base_url = "{server.base_url}"
api_key_env = "FAKE_KEY"
timeout = "60s"
retry_wait = "0.1s"
args = {json.dumps(NO_RETRY)}
"""
        )
        paths = start(repo, env={"FAKE_KEY": KEY})
        wait_finished(paths, timeout=90)
    status = json.loads(expd("status", "--json", cwd=repo).stdout)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert KEY.encode() not in path.read_bytes(), f"the API key is in {path}"
    return paths, server, status


def test_daemon_run_keeps_and_discards_with_costs_that_add_up(codex: Path, tmp_path: Path) -> None:
    paths, server, status = daemon_run(tmp_path, codex, model_policy)
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [
        (0, "baseline"),
        (1, "keep"),
        (2, "discard"),
        (3, "keep"),
    ], [r.reason for r in records]
    assert [r.description for r in records[1:]] == [f"Set x to {x} in f.py." for x in (2, 9, 3)]
    per_experiment = (1600 * 1.25 + 400 * 0.125 + 100 * 10.0) / 1e6  # gpt-5, two requests
    assert all(r.cost_usd == pytest.approx(per_experiment) for r in records[1:])
    assert all(r.tokens == 2100 and r.session_id for r in records[1:])
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    assert status["cost_usd"] == pytest.approx(3 * per_experiment)
    assert len(server.responses) == 6
    assert status["sandbox"] == backend() and status["confined"] is (backend() != "none")
    log = paths.agent_log(1).read_text()
    assert "→ shell" in log and "[usage] $0.0031 2100 tokens" in log and "[done] Set x" in log


def test_daemon_run_with_a_bad_key_ends_agent_unavailable(codex: Path, tmp_path: Path) -> None:
    paths, server, status = daemon_run(tmp_path, codex, fake.UNAUTHORIZED)
    assert [r.status for r in results(paths)] == ["baseline"]
    assert status["termination_reason"] == "agent_unavailable"
    assert "authentication failed" in status["message"] and "401" in status["message"]
    assert len(server.responses) == 1
