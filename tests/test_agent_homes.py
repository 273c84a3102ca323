"""Confined agent CLIs get private copies of their state folders, never the user's real ones, and
Codex's own sandbox is turned off inside expd's."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.agents.base import AgentTask
from daemon.agents.claude import ClaudeAgent
from daemon.agents.codex import CodexAgent
from daemon.agents.homes import claude_home, codex_home, opencode_home
from daemon.ops.sandbox import Confinement, Sandbox
from shared.schema import AgentConfig, ProgramConfig


def user_home(root: Path) -> Path:
    """A home with Claude Code, Codex and OpenCode set up, history included."""
    home = root / "home"
    claude = home / ".claude"
    (claude / "projects" / "old").mkdir(parents=True)
    (claude / "projects" / "old" / "session.jsonl").write_text("{}\n")
    (claude / ".credentials.json").write_text('{"token": "t"}')
    (claude / "settings.json").write_text('{"hooks": {}}')
    (claude / "agents").mkdir()
    (claude / "agents" / "a.md").write_text("agent")
    (home / ".claude.json").write_text('{"userID": "u"}')
    (home / ".codex" / "sessions").mkdir(parents=True)
    (home / ".codex" / "auth.json").write_text('{"key": "k"}')
    (home / ".codex" / "config.toml").write_text('model = "m"\n')
    config = home / ".config" / "opencode"
    (config / "node_modules" / "big").mkdir(parents=True)
    (config / "opencode.json").write_text("{}")
    data = home / ".local" / "share" / "opencode"
    data.mkdir(parents=True)
    (data / "auth.json").write_text("{}")
    (data / "opencode.db").write_text("history")
    return home


def test_claude_gets_its_login_and_settings_but_no_history(tmp_path: Path) -> None:
    home = user_home(tmp_path)
    private = claude_home(tmp_path / "run", {"HOME": str(home)})
    assert {p.name for p in private.iterdir()} == {
        ".credentials.json",
        "settings.json",
        "agents",
        ".claude.json",
    }
    assert json.loads((private / ".claude.json").read_text()) == {"userID": "u"}
    (home / ".claude" / "settings.json").write_text("changed")
    assert claude_home(tmp_path / "run", {"HOME": str(home)}) == private  # taken once per run
    assert (private / "settings.json").read_text() == '{"hooks": {}}'


def test_codex_and_opencode_get_their_login_and_config(tmp_path: Path) -> None:
    home = user_home(tmp_path)
    env = {"HOME": str(home)}
    codex = codex_home(tmp_path / "run", env, copy=True)
    assert {p.name for p in codex.iterdir()} == {"auth.json", "config.toml"}
    opencode = opencode_home(tmp_path / "run", env)
    assert (opencode / "config" / "opencode" / "opencode.json").is_file()
    assert not (opencode / "config" / "opencode" / "node_modules").exists()
    assert [p.name for p in (opencode / "data" / "opencode").iterdir()] == ["auth.json"]


def task(root: Path, sandbox: Sandbox) -> AgentTask:
    tree = root / "wt"
    tree.mkdir(exist_ok=True)
    return AgentTask(
        1, tree, root / "run", "# Experiment 1", root / "p.md", 10, {}, sandbox=sandbox
    )


def test_confined_adapters_point_the_clis_at_the_private_copies(tmp_path: Path) -> None:
    home = user_home(tmp_path)
    confined = Sandbox("bwrap", Confinement(tree=tmp_path / "wt"), ("bwrap",))
    job = task(tmp_path, confined)
    agent = AgentConfig(kind="claude", command="claude", env={"HOME": str(home)})
    env = ClaudeAgent(ProgramConfig(metric="m", direction="lower", agent=agent)).environment(job)
    assert env["CLAUDE_CONFIG_DIR"] == str(job.run_dir / "claude-home")
    assert (job.run_dir / "claude-home" / ".credentials.json").is_file()

    agent = AgentConfig(kind="codex", env={"HOME": str(home)})
    codex = CodexAgent(ProgramConfig(metric="m", direction="lower", agent=agent))
    argv = codex.command(job)
    assert argv[argv.index("--sandbox") + 1] == "danger-full-access"
    assert codex.command(task(tmp_path, Sandbox()))[argv.index("--sandbox") + 1] == (
        "workspace-write"
    )
    assert codex.environment(job)["CODEX_HOME"] == str(job.run_dir / "codex-home")
    assert (job.run_dir / "codex-home" / "auth.json").read_text() == '{"key": "k"}'
