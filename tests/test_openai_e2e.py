"""The `openai` agent through the real daemon (`expd start`), against a local fake model server.

The fake model writes `x = N` into f.py (the measurement scores |x - 3| + 1, lower is better),
with the plan for each experiment read from the `experiment N` its briefing names, so the run
sees keeps and discards, and provider failures retry the same experiment number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.paths import RepoPaths, RunPaths
from tests.fakes.chat_server import Call, ChatServer, Reply
from tests.repos import expd, make_repo, results, start, wait_finished

KEY = "sk-e2e-9fQwLx0secretvalue7777"
PLAN = {1: 2, 2: 9, 3: 3}
"""x the model sets in each experiment: 2 is better than 0 (keep), 9 worse (discard), 3 best."""


class Model:
    """The fake model's policy: read f.py, write the planned x, then summarise."""

    def __init__(self, *, first: list[Reply] | None = None) -> None:
        self.first = list(first or [])
        """Replies served before the policy starts (provider failures to recover from)."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        if self.first:
            return self.first.pop(0)
        messages = body["messages"]
        n = int(re.search(r"experiment (\d+)", messages[1]["content"]).group(1))  # type: ignore[union-attr]
        x = PLAN[n]
        if messages[-1]["role"] == "user":
            return Reply.tool_calls(
                [Call("read_file", {"path": "f.py"}), Call("write_file", {"path": "f.py", "content": f"x = {x}\n"})]
            )  # fmt: skip
        tools = [m["content"] for m in messages if m["role"] == "tool"]
        if not any(t.startswith("exit code") for t in tools):
            return Reply.tool_calls([Call("run_shell", {"command": "cat f.py"})])
        return Reply.text(f"set x to {x}")


def program(root: Path, *, max_experiments: int, extra: str = "", loop_extra: str = "") -> Path:
    repo = make_repo(root, max_experiments=max_experiments)
    toml = RepoPaths(repo).program("p").toml
    text = toml.read_text().replace("[loop]\n", "[loop]\n" + loop_extra)
    text = text[: text.index("[agent]")]
    toml.write_text(
        text
        + f"""[agent]
kind = "openai"
model = "fake-model"
base_url = "{{url}}"
api_key_env = "FAKE_KEY"
timeout = "20s"
retry_wait = "0.1s"
{extra}
[agent.prices."fake-model"]
input = 1.0
output = 2.0
[agent.prices."fake-small"]
input = 0.5
output = 1.0
"""
    )
    return repo


def run(
    root: Path, script: Callable[[dict[str, Any]], Reply], **kw: Any
) -> tuple[RunPaths, ChatServer, dict]:
    """Start the run against a fresh fake server; wait for it to end; return its status."""
    repo = program(root, **kw)
    server = ChatServer(script)
    toml = RepoPaths(repo).program("p").toml
    toml.write_text(toml.read_text().replace("{url}", server.url))
    try:
        paths = start(repo, env={"FAKE_KEY": KEY})
        wait_finished(paths, timeout=60)
    finally:
        server.close()
    proc = expd("status", "--json", cwd=repo)
    return paths, server, json.loads(proc.stdout)


def no_key_written(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert KEY.encode() not in path.read_bytes(), f"the API key is in {path}"


def test_keeps_and_discards_with_costs_that_add_up(tmp_path: Path) -> None:
    paths, server, status = run(tmp_path, Model(), max_experiments=3)
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [
        (0, "baseline"),
        (1, "keep"),
        (2, "discard"),
        (3, "keep"),
    ], [r.reason for r in records]
    assert [r.description for r in records[1:]] == ["set x to 2", "set x to 9", "set x to 3"]
    assert status["termination_reason"] == "max_experiments"
    per_experiment = (3 * 100 * 1.0 + 3 * 20 * 2.0) / 1e6
    assert all(r.cost_usd == pytest.approx(per_experiment) for r in records[1:])
    assert all(r.tokens == 3 * 120 for r in records[1:])
    assert status["cost_usd"] > 0
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    assert len(server.requests) == 9
    assert {h["authorization"] for h in server.request_headers} == {f"Bearer {KEY}"}
    log = paths.agent_log(1).read_text()
    assert "→ write_file" in log and "← run_shell exit code 0" in log and "[usage]" in log
    no_key_written(tmp_path)


def test_rate_limit_retries_the_same_experiment(tmp_path: Path) -> None:
    model = Model(first=[Reply.rate_limited(retry_after=0), Reply.server_error(502)])
    paths, server, status = run(tmp_path, model, max_experiments=2)
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [
        (0, "baseline"),
        (1, "keep"),
        (2, "discard"),
    ]
    assert status["cost_usd"] > 0
    assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    errors = [
        (e["experiment"], e["data"]["error_class"]) for e in events if e["kind"] == "agent_error"
    ]
    assert errors == [(1, "rate_limit"), (1, "transient")], events
    assert "[retry] rate limited" in paths.agent_log(1).read_text()
    assert len(server.requests) == 2 + 6


def test_bad_key_stops_the_run_saying_what_to_fix(tmp_path: Path) -> None:
    paths, server, status = run(tmp_path, lambda body: Reply.auth_error(), max_experiments=3)
    assert [r.status for r in results(paths)] == ["baseline"]
    assert status["termination_reason"] == "agent_unavailable"
    assert "authentication failed" in status["message"]
    assert "$FAKE_KEY" in status["message"] and "fix the credentials" in status["message"]
    assert len(server.requests) == 1
    no_key_written(tmp_path)


def test_exhausted_quota_switches_to_the_fallback_model(tmp_path: Path) -> None:
    model = Model(first=[Reply.quota_error()])
    paths, server, status = run(
        tmp_path, model, max_experiments=1, extra='fallback_model = "fake-small"'
    )
    records = results(paths)
    assert [(r.experiment, r.status) for r in records] == [(0, "baseline"), (1, "keep")]
    assert [r["model"] for r in server.requests] == ["fake-model"] + ["fake-small"] * 3
    assert records[1].cost_usd == pytest.approx((3 * 100 * 0.5 + 3 * 20 * 1.0) / 1e6)
    assert status["cost_usd"] == pytest.approx(records[1].cost_usd)


def test_budget_stops_at_the_boundary_where_it_is_reached(tmp_path: Path) -> None:
    """Each experiment costs $0.00042: the total reaches $0.0005 after the second one."""
    paths, _server, status = run(
        tmp_path, Model(), max_experiments=3, loop_extra="max_cost_usd = 0.0005\n"
    )
    records = results(paths)
    assert [r.experiment for r in records] == [0, 1, 2]
    assert status["termination_reason"] == "budget"
    assert status["cost_usd"] == pytest.approx(2 * 0.00042)


def test_typed_agent_events_reach_the_transcript(tmp_path: Path) -> None:
    paths, _server, _status = run(tmp_path, Model(), max_experiments=1)
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    agent = [e for e in events if e["kind"] == "agent" and e["experiment"] == 1]
    types = [e["data"]["type"] for e in agent]
    assert {"tool_use", "tool_result", "usage", "result"} <= set(types)
    tool = next(e["data"] for e in agent if e["data"]["type"] == "tool_use")
    assert tool["name"] in {"read_file", "write_file", "run_shell"}
