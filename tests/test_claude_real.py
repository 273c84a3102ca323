"""The real Claude Code CLI (pinned in tests/agent_clis.py) against a local fake Anthropic API.

`ANTHROPIC_BASE_URL` points the CLI at `tests/fakes/anthropic_server.py`, `HOME` at a temporary
directory (the user's ~/.claude is never touched), and the non-essential traffic is switched off,
so nothing leaves the machine. The fake model edits files through the CLI's own tools; the daemon
runs end to end with it. `python -m tests.test_claude_real` re-captures tests/samples/claude/
(what the fast tests replay) from the pinned CLI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from daemon.agents.base import AgentEvent, AgentOutcome, AgentTask, Text, ToolUse
from daemon.agents.claude import ClaudeAgent
from shared.paths import RepoPaths
from shared.schema import AgentConfig, ProgramConfig
from tests.agent_clis import PACKAGES, backend, require_cli, sandbox_around
from tests.fakes.anthropic_server import AnthropicServer, Script, Turn
from tests.repos import expd, make_repo, results, start, wait_finished

SAMPLES = Path(__file__).parent / "samples" / "claude"
MODEL = "claude-sonnet-4-5"
"""A model Claude Code knows the price of ($3 / $15 per million tokens)."""
KEY = "sk-ant-test-0123456789abcdef"
OFFLINE = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


@dataclass
class Scenario:
    script: Callable[[Path], Script]
    """The fake model's turns, given the worktree (tools take absolute paths)."""
    side: Turn | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    cut_after: float | None = None
    """Kill the CLI after this many seconds (to record a stream that never ends)."""


def _edit(work: Path) -> Script:
    return [
        Turn.tool("Read", {"file_path": str(work / "f.py")}, text="Let me look at f.py first."),
        Turn.tool(
            "Edit",
            {"file_path": str(work / "f.py"), "old_string": "x = 0", "new_string": "x = 1"},
            usage=(50, 40, 900, 120),
        ),
        Turn.text("Set x to 1 to move the score toward the target.\n\nNothing else changed."),
    ]


def _tools(work: Path) -> Script:
    return [
        Turn.tool("Write", {"file_path": str(work / "g.py"), "content": "y = 2\n"}),
        Turn.tool("Bash", {"command": "cat g.py && exit 3", "description": "Show g.py"}),
        Turn.tool("Write", {"file_path": "/etc/expd-outside.txt", "content": "no\n"}),
        Turn.text("Added g.py with y = 2"),
    ]


SCENARIOS: dict[str, Scenario] = {
    "edit": Scenario(_edit),
    "tools": Scenario(_tools),
    "max_turns": Scenario(_edit, args=["--max-turns", "1"]),
    "auth_error": Scenario(lambda w: [], Turn.auth_error(), env={"CLAUDE_CODE_MAX_RETRIES": "1"}),
    "auth_retrying": Scenario(lambda w: [], Turn.auth_error(), cut_after=5.0),
    "credit": Scenario(lambda w: [], Turn.credit_too_low()),
    "rate_limit": Scenario(
        lambda w: [], Turn.rate_limited(1), env={"CLAUDE_CODE_MAX_RETRIES": "1"}
    ),
    "overloaded": Scenario(lambda w: [], Turn.overloaded(), env={"CLAUDE_CODE_MAX_RETRIES": "1"}),
}


def cli_env(server: AnthropicServer, home: Path, **extra: str) -> dict[str, str]:
    return {
        **OFFLINE,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": KEY,
        **extra,
    }


def make_worktree(root: Path) -> Path:
    work = root / "work"
    work.mkdir(parents=True)
    (work / "f.py").write_text("x = 0\n")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def server_for(scenario: Scenario, work: Path) -> AnthropicServer:
    script = scenario.script(work)
    error = scenario.side
    return AnthropicServer(script, default=error, side=error)


def capture(name: str, binary: Path) -> str:
    """One scenario's raw stream-json from the real CLI, with its paths made placeholders."""
    scenario = SCENARIOS[name]
    with tempfile.TemporaryDirectory() as tmp:
        work, home = make_worktree(Path(tmp)), Path(tmp) / "home"
        home.mkdir()
        with server_for(scenario, work) as server:
            argv = [str(binary), "-p", "--output-format", "stream-json", "--verbose"]
            argv += ["--permission-mode", "acceptEdits", "--allowedTools", "Bash"]
            argv += ["--model", MODEL, *scenario.args]
            env = {"PATH": os.environ["PATH"], **cli_env(server, home, **scenario.env)}
            try:
                out = subprocess.run(
                    argv, cwd=work, env=env, input="Make x better.", capture_output=True,
                    text=True, timeout=scenario.cut_after or 60,
                ).stdout  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                out = (exc.stdout or b"").decode()
        text = out.replace(str(work), "{{WORKTREE}}").replace(str(home), "{{HOME}}")
        return text.replace(tmp, "{{TMP}}")


def config(binary: Path, server: AnthropicServer, home: Path, **agent: Any) -> ProgramConfig:
    extra_env = agent.pop("env", {})
    return ProgramConfig(
        metric="score",
        direction="lower",
        agent=AgentConfig(
            kind="claude",
            model=MODEL,
            command=str(binary),
            env=cli_env(server, home, **extra_env),
            **agent,
        ),
    )


def run_agent(
    cfg: ProgramConfig, work: Path, timeout: float = 45, mode: str = "auto"
) -> tuple[AgentOutcome, list]:
    events: list[AgentEvent] = []
    prompt = "# Experiment 1\n\nMake the score lower by changing x in f.py."
    prompt_file = work.parent / "0001.md"
    prompt_file.write_text(prompt)
    sandbox = sandbox_around(work, mode=mode)  # confined as the daemon confines it
    task = AgentTask(1, work, work.parent, prompt, prompt_file, timeout, env={}, sandbox=sandbox)
    outcome = anyio.run(ClaudeAgent(cfg).run, task, events.append)
    return outcome, events


@pytest.fixture(scope="module")
def claude() -> Path:
    return require_cli("claude")


@pytest.mark.realcli
@pytest.mark.parametrize("mode", ["auto", "landlock"])
def test_the_real_cli_edits_through_its_own_tools(claude: Path, tmp_path: Path, mode: str) -> None:
    work, home = make_worktree(tmp_path), tmp_path / "home"
    with server_for(SCENARIOS["edit"], work) as server:
        outcome, events = run_agent(config(claude, server, home, max_turns=8), work, mode=mode)
        first = server.requests[0]
    assert outcome.error is None, outcome
    assert (work.parent / "claude-home").is_dir() is (mode != "auto" or backend() != "none")
    assert server.unknown == [] and len(server.requests) == 3
    assert (work / "f.py").read_text() == "x = 1\n"
    assert outcome.description == "Set x to 1 to move the score toward the target."
    assert re.fullmatch(r"[0-9a-f-]{36}", outcome.session_id or "")
    # 3 turns: 100+50+100 fresh input, 900 cache reads, 120 cache writes, 20+40+20 output.
    assert outcome.tokens == 250 + 900 + 120 + 80
    expected = (250 * 3 + 900 * 0.3 + 120 * 3.75 + 80 * 15) / 1e6
    assert outcome.cost_usd == pytest.approx(expected, rel=1e-6)
    assert {"Read", "Edit", "Write", "Bash"} <= set(server.tool_names())
    assert first["model"] == MODEL
    system = json.dumps(first["system"])
    assert "Make the score lower by changing x in f.py." in system and "unattended" in system
    assert "Carry out experiment 1" in json.dumps(first["messages"][0])
    uses = [e for e in events if isinstance(e, ToolUse)]
    assert [(u.name, u.input.get("file_path")) for u in uses] == [
        ("Read", "f.py"),
        ("Edit", "f.py"),
    ]


@pytest.mark.realcli
def test_edits_outside_the_worktree_are_refused(claude: Path, tmp_path: Path) -> None:
    work, home = make_worktree(tmp_path), tmp_path / "home"
    with server_for(SCENARIOS["tools"], work) as server:
        outcome, events = run_agent(config(claude, server, home), work)
    assert outcome.error is None and outcome.description == "Added g.py with y = 2"
    assert (work / "g.py").read_text() == "y = 2\n"
    assert not Path("/etc/expd-outside.txt").exists()
    log = [json.dumps(e, default=str) for e in events]
    assert any("permission denied: Write" in line for line in log)


@pytest.mark.realcli
def test_a_dropped_stream_is_retried_by_the_cli_itself(claude: Path, tmp_path: Path) -> None:
    work, home = make_worktree(tmp_path), tmp_path / "home"
    with AnthropicServer([Turn.cut(), Turn.text("Recovered after a dropped stream")]) as server:
        outcome, events = run_agent(config(claude, server, home), work)
    assert outcome.error is None and outcome.description == "Recovered after a dropped stream"
    assert any(isinstance(e, Text) and "Claude Code retries" in e.text for e in events)


@pytest.mark.realcli
@pytest.mark.parametrize(
    ("name", "error_class"),
    [("auth_retrying", "auth"), ("credit", "quota"), ("overloaded", "rate_limit")],
)
def test_provider_errors_from_the_real_cli_are_classified(
    claude: Path, tmp_path: Path, name: str, error_class: str
) -> None:
    work, home = make_worktree(tmp_path), tmp_path / "home"
    scenario = SCENARIOS[name]
    with server_for(scenario, work) as server:
        started = time.monotonic()
        outcome, _ = run_agent(config(claude, server, home, env=scenario.env), work)
    assert outcome.error_class == error_class, outcome
    assert time.monotonic() - started < 20  # a refused key is not retried for minutes
    assert KEY not in json.dumps(outcome.__dict__, default=str)


@pytest.mark.realcli
def test_running_out_of_turns_is_a_crash_not_a_provider_failure(
    claude: Path, tmp_path: Path
) -> None:
    work, home = make_worktree(tmp_path), tmp_path / "home"
    with server_for(SCENARIOS["edit"], work) as server:
        outcome, _ = run_agent(config(claude, server, home, max_turns=1), work)
    assert outcome.error is not None and "error_max_turns" in outcome.error
    assert outcome.error_class is None
    assert outcome.description == "Let me look at f.py first."


PLAN = {1: 1, 2: 0, 3: 2}
"""x the model sets in each experiment: 1 beats 0 (keep), back to 0 (discard), 2 (keep)."""


def daemon_model(body: dict[str, Any]) -> Turn:
    """Read f.py, edit x to the planned value, summarise: the experiment number is in the brief."""
    texts, seen = [], []
    for message in body["messages"]:
        content = message["content"]
        for block in content if isinstance(content, list) else [{"text": content}]:
            if block.get("type") == "tool_result":
                seen.append(json.dumps(block["content"]))
            else:
                texts.append(str(block.get("text") or ""))
    text = "\n".join(texts)
    n = int(re.search(r"Carry out experiment (\d+)", text).group(1))  # type: ignore[union-attr]
    where = re.search(r"Primary working directory: (\S+)", text).group(1)  # type: ignore[union-attr]
    path = f"{where}/f.py"
    if not seen:
        return Turn.tool("Read", {"file_path": path})
    if len(seen) == 1:
        old = re.search(r"x = -?\d+", seen[0]).group(0)  # type: ignore[union-attr]
        return Turn.tool(
            "Edit", {"file_path": path, "old_string": old, "new_string": f"x = {PLAN[n]}"}
        )
    return Turn.text(f"Set x to {PLAN[n]}")


def daemon_program(
    root: Path,
    binary: Path,
    server: AnthropicServer,
    home: Path,
    *,
    experiments: int = 3,
    **env: str,
) -> Path:
    repo = make_repo(root, max_experiments=experiments)
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    env = {**OFFLINE, "HOME": str(home), **env}
    table = ", ".join(f'{k} = "{v}"' for k, v in env.items())
    toml.write_text(
        text[: text.index("[agent]")]
        + f"""[agent]
kind = "claude"
model = "{MODEL}"
command = "{binary}"
base_url = "{server.url}"
api_key_env = "EXPD_TEST_ANTHROPIC_KEY"
max_turns = 6
timeout = "60s"
retry_wait = "0.2s"
env = {{ {table} }}
"""
    )
    return repo


@pytest.mark.realcli
def test_the_daemon_keeps_and_discards_with_costs_that_add_up(claude: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with AnthropicServer(daemon_model) as server:
        repo = daemon_program(tmp_path / "repo", claude, server, home)
        run = start(repo, env={"EXPD_TEST_ANTHROPIC_KEY": KEY})
        final = wait_finished(run, timeout=90)
    records = [r for r in results(run) if r.experiment > 0]
    assert [r.status for r in records] == ["keep", "discard", "keep"], records
    assert [r.description for r in records] == ["Set x to 1", "Set x to 0", "Set x to 2"]
    assert all(r.session_id and r.cost_usd > 0 and r.tokens > 0 for r in records)
    status = json.loads(expd("status", "--json", cwd=repo).stdout)
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    assert status["tokens"] == sum(r.tokens for r in records)
    assert status["sandbox"] == backend()
    if backend() != "none":  # its own state folder: a private copy, never the user's ~/.claude
        assert (run.dir / "claude-home").is_dir()
    assert final.termination_reason == "max_experiments"
    log = (run.dir / "agent" / "0001.log").read_text()
    assert "→ Edit" in log and KEY not in log
    for path in run.dir.rglob("*"):
        assert not path.is_file() or KEY not in path.read_text(errors="replace"), path


@pytest.mark.realcli
def test_an_overloaded_api_retries_the_same_experiment(claude: Path, tmp_path: Path) -> None:
    failures = [Turn.overloaded(), Turn.overloaded()]  # the CLI's one retry fails too

    def model(body: dict[str, Any]) -> Turn:
        return failures.pop(0) if failures else daemon_model(body)

    with AnthropicServer(model) as server:
        repo = daemon_program(
            tmp_path / "repo", claude, server, tmp_path / "home", experiments=1,
            CLAUDE_CODE_MAX_RETRIES="1",
        )  # fmt: skip
        run = start(repo, env={"EXPD_TEST_ANTHROPIC_KEY": KEY})
        final = wait_finished(run, timeout=60)
    assert [(r.experiment, r.status) for r in results(run)] == [(0, "baseline"), (1, "keep")]
    events = [json.loads(line) for line in run.events.read_text().splitlines()]
    errors = [e["data"] for e in events if e["kind"] == "agent_error"]
    assert [(e["error_class"], e["verdict"]) for e in errors] == [("rate_limit", "retry")]
    assert final.termination_reason == "max_experiments"


@pytest.mark.realcli
def test_a_refused_key_ends_the_run_agent_unavailable(claude: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with AnthropicServer(default=Turn.auth_error(), side=Turn.auth_error()) as server:
        repo = daemon_program(tmp_path / "repo", claude, server, home)
        run = start(repo, env={"EXPD_TEST_ANTHROPIC_KEY": KEY})
        final = wait_finished(run, timeout=60)
    assert final.termination_reason == "agent_unavailable"
    assert "authentication failed" in (final.message or "")
    assert [r for r in results(run) if r.experiment > 0] == []


if __name__ == "__main__":
    binary = require_cli("claude")
    SAMPLES.mkdir(parents=True, exist_ok=True)
    for sample in sys.argv[1:] or list(SCENARIOS):
        (SAMPLES / f"{sample}.jsonl").write_text(capture(sample, binary))
        print(f"captured {sample} with {PACKAGES['claude'].npm}@{PACKAGES['claude'].version}")


DRAFT_FILES = {
    "program.md": "# speed\n## Goal\nMake `score` lower.\n## In scope\n- f.py\n"
    "## Off limits\n- measure.sh\n## Rules\n- One focused change per experiment.\n",
    "measure.sh": 'echo "{\\"score\\": 4}"\n',
    "program.toml": 'metric = "score"\ndirection = "lower"\n[loop]\nmax_experiments = 1\n',
}


def drafting_model(body: dict[str, Any]) -> Turn:
    """Write the three files one tool call each into the scratch folder, then summarise."""
    text = json.dumps(body.get("system")) + json.dumps(body["messages"])
    where = re.search(r"Primary working directory: ([^\s\\]+)", text).group(1)  # type: ignore[union-attr]
    done = text.count('"tool_result"')
    names = list(DRAFT_FILES)
    if done < len(names):
        name = names[done]
        return Turn.tool("Write", {"file_path": f"{where}/{name}", "content": DRAFT_FILES[name]})
    return Turn.text("Drafted speed: score from measure.sh, lower is better")


@pytest.mark.realcli
def test_the_real_cli_drafts_a_program_that_validates(claude: Path, tmp_path: Path) -> None:
    if backend() == "none":
        pytest.skip("drafting needs a sandbox that confines")
    home = tmp_path / "home"
    home.mkdir()
    repo = make_repo(tmp_path / "repo")
    with AnthropicServer(drafting_model) as server:
        proc = expd(
            "init", "speed", "--draft", "--agent", "claude", "--model", MODEL,
            "--command", str(claude), "--runs", "3", "--json",
            cwd=repo, env=cli_env(server, home), timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert len(server.requests) == len(DRAFT_FILES) + 1
        system = json.dumps(server.requests[0].get("system"))
        assert "drafting a program for it" in system and "You are drafting a program" in system
    doc = json.loads(proc.stdout)
    assert doc["status"] == "validated" and doc["validation"]["samples"] == [4.0, 4.0, 4.0], doc
    assert doc["summary"] == "Drafted speed: score from measure.sh, lower is better"
    program = RepoPaths(repo).program("speed")
    assert program.md.read_text() == DRAFT_FILES["program.md"]
    assert program.measure_sh.read_text() == DRAFT_FILES["measure.sh"]
    toml = program.toml.read_text()
    assert toml.startswith(DRAFT_FILES["program.toml"]) and 'kind = "claude"' in toml
    assert "→ Write" in (program.dir / "draft.log").read_text()
    assert not list(home.rglob("*.jsonl")), "the CLI wrote into the user's ~/.claude"
