"""`expd agents` and `expd start` refusing an agent kind that cannot run here."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from shared.paths import RepoPaths
from tests.repos import expd, make_repo


def fake_cli(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def set_agent(repo: Path, body: str) -> None:
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text()
    toml.write_text(text[: text.index("[agent]")] + "[agent]\n" + body)


def test_agents_lists_every_kind_with_availability(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_cli(bin_dir, "codex", "codex-cli 9.9.9")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OPENAI_API_KEY": ""}
    proc = expd("agents", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["kind"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"command", "tune", "claude", "codex", "opencode", "openai"}
    assert rows["command"]["available"] and rows["tune"]["available"]
    assert rows["codex"]["available"] and rows["codex"]["version"] == "codex-cli 9.9.9"
    assert not rows["claude"]["available"] and "not found on PATH" in rows["claude"]["detail"]
    assert not rows["openai"]["available"]
    text = expd("agents", cwd=tmp_path, env=env).stdout
    assert "codex" in text and "ready" in text and "missing" in text


def test_agents_of_a_program_shows_its_kind_and_model(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    set_agent(repo, 'kind = "openai"\nmodel = "m1"\nbase_url = "http://127.0.0.1:9/v1"\n')
    rows = json.loads(expd("agents", "p", "--json", cwd=repo).stdout)
    chosen = next(r for r in rows if r["selected"])
    assert chosen["kind"] == "openai" and chosen["available"] and chosen["model"] == "m1"


def test_start_refuses_a_kind_that_cannot_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    set_agent(repo, 'kind = "claude"\nmodel = "claude-sonnet-4-5"\n')
    env = {"PATH": "/usr/bin:/bin"}
    proc = expd("start", "p", cwd=repo, env=env)
    assert proc.returncode == 1
    assert "agent kind 'claude' cannot run: claude not found on PATH" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(RepoPaths(repo).program("p").runs_dir.iterdir()) == []

    set_agent(repo, 'kind = "openai"\nmodel = "gpt-5-mini"\napi_key_env = "NO_SUCH_KEY_VAR"\n')
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY_VAR"}
    proc = expd("start", "p", cwd=repo, env=env)
    assert proc.returncode == 1 and "$NO_SUCH_KEY_VAR is not set" in proc.stderr
    assert list(RepoPaths(repo).program("p").runs_dir.iterdir()) == []
