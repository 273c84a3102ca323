"""`expd mcp` end to end: the SDK's own client over stdio against the real server process, which
starts real daemons on a real repository (the agents are shell commands)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.paths import RepoPaths
from tests.mcp_client import McpServer
from tests.repos import expd, git, make_repo

SLOW_AGENT = """#!/bin/bash
cat > /dev/null
n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
echo "slow agent working on x = $n"
sleep "${1:-3}"
echo "x = $((n + 1))" > f.py
"""

COMMAND_TOML = """\
metric = "score"
direction = "lower"
[decide]
policy = "fixed"
repeats = 1
min_effect = 0.01
[loop]
max_experiments = {max_experiments}
[agent]
kind = "command"
command = "{command}"
timeout = "60s"
"""

EXPECTED_TOOLS = {
    "list_programs",
    "get_program",
    "create_program",
    "update_program",
    "validate_measurement",
    "start_run",
    "resume_run",
    "get_run_status",
    "list_runs",
    "get_run_results",
    "get_experiment_log",
    "get_run_summary",
    "get_run_report",
    "stop_run",
    "abort_run",
    "update_run_limit",
    "set_guidance",
    "finalize_run",
    "start_bakeoff",
    "get_bakeoff_status",
    "get_bakeoff_report",
    "add_to_queue",
    "list_queue",
    "remove_from_queue",
    "clear_queue",
    "resume_queue",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("mcp") / "repo", max_experiments=2)
    (root / "slow.sh").write_text(SLOW_AGENT)
    (root / "slow.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a slow agent")
    return root


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-state")


@pytest.fixture(scope="module")
def server(
    repo: Path, state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[McpServer]:
    errlog = tmp_path_factory.mktemp("mcp-log") / "server.err"
    srv = McpServer(repo, errlog, env={"EXPD_STATE_DIR": str(state_dir)})
    yield srv
    srv.close()


def cli(repo: Path, state_dir: Path, *args: str) -> tuple[int, str, str]:
    proc = expd(*args, cwd=repo, env={"EXPD_STATE_DIR": str(state_dir)})
    return proc.returncode, proc.stdout, proc.stderr.strip()


MEASURE = """#!/bin/bash
x=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
d=$(( x > 3 ? x - 3 : 3 - x ))
echo "{\\"score\\": $((d + 1))}"
"""


def test_tools_schemas_and_instructions(server: McpServer) -> None:
    listed = server.portal.call(server.session.list_tools).tools
    tools = {t.name: t for t in listed}
    assert set(tools) == EXPECTED_TOOLS
    for t in listed:
        assert t.description, t.name
        assert t.input_schema["type"] == "object", t.name
        assert t.output_schema is not None and t.output_schema["type"] == "object", t.name
    create = tools["create_program"].input_schema
    assert set(create["required"]) == {"name", "metric", "direction"}
    assert create["properties"]["direction"]["enum"] == ["lower", "higher"]
    # the progress reporter is the server's, not an argument
    assert set(tools["validate_measurement"].input_schema["properties"]) == {"name", "runs"}
    limit = tools["update_run_limit"].input_schema["properties"]["max_experiments"]
    assert limit["type"] == "integer" and limit["minimum"] == 0
    status_out = tools["get_run_status"].output_schema
    assert {"run_id", "phase", "daemon", "keeps", "best"} <= set(status_out["required"])
    assert tools["get_run_status"].annotations.read_only_hint is True
    assert tools["abort_run"].annotations.destructive_hint is True
    instructions = server.initialized.instructions or ""
    assert "validate_measurement before start_run" in instructions
    assert "expected time and cost" in instructions


def test_program_create_update_validate(server: McpServer, repo: Path) -> None:
    made = server.ok("create_program", name="q", metric="score", direction="lower")
    assert made["program"] == "q" and set(made["files"]) >= {"program.md", "program.toml"}
    again = server.error("create_program", name="q", metric="score", direction="lower")
    assert again.startswith("expd: error: program 'q' already exists")

    bad = server.error("update_program", name="q", program_toml='metric = "s"\ndirection = "up"\n')
    assert bad.startswith("expd: error:") and "direction" in bad
    assert 'direction = "lower"' in (RepoPaths(repo).program("q").toml).read_text()

    toml = COMMAND_TOML.format(max_experiments=4, command="./agent.sh")
    updated = server.ok(
        "update_program", name="q", program_toml=toml, measure_sh=MEASURE, program_md="# q\n"
    )
    assert updated["files"]["program.md"] == "# q\n"
    assert updated["limits"]["max_experiments"] == 4
    assert updated["limits"]["agent_timeout_s"] == 60.0

    result, heard = server.call_with_progress("validate_measurement", name="q", runs=3)
    assert not result.is_error and isinstance(result.structured_content, dict)
    calibration = result.structured_content
    assert calibration["usable"] is True, calibration["reason"]
    assert [(done, total) for done, total, _ in heard] == [(n, 5) for n in range(1, 6)]
    assert (
        heard[0][2].startswith("build done")
        and heard[1][2] == "warm-up: score = 4 (" + (heard[1][2].split("(", 1)[1])
    )
    assert [m.split(":")[0] for _, _, m in heard[2:]] == ["run 1 of 3", "run 2 of 3", "run 3 of 3"]
    assert calibration["samples"] == [4.0, 4.0, 4.0]
    shown = server.ok("get_program", name="q")
    assert shown["calibration"]["usable"] is True
    assert shown["calibration"]["per_run_s"] is not None
    names = [p.get("program") for p in server.ok("list_programs")["programs"]]
    assert {"p", "q"} <= set(names)
    md = server.portal.call(server.session.read_resource, "expd://programs/q/program.md")
    assert md.contents[0].text == "# q\n"


def test_run_to_completion_matches_the_cli(server: McpServer, repo: Path, state_dir: Path) -> None:
    started = server.ok("start_run", program="p")
    run_id = started["run_id"]
    assert set(started) == {"run_id", "pid", "worktree", "branch", "sandbox"}
    final = server.poll(
        "get_run_status", lambda s: s["daemon"] == "finished", run=run_id, timeout=90
    )
    assert final["phase"] == "complete" and final["termination_reason"] == "max_experiments"

    results = server.ok("get_run_results", run=run_id)
    code, out, _ = cli(repo, state_dir, "results", run_id, "--json")
    assert code == 0 and results["results"] == json.loads(out)
    assert [r["status"] for r in results["results"]] == ["baseline", "keep", "keep"]
    assert server.ok("get_run_results", run=run_id, limit=1)["results"] == json.loads(out)[-1:]

    code, out, _ = cli(repo, state_dir, "status", run_id, "--json")
    status = json.loads(out)
    for key in ("run_id", "phase", "keeps", "baseline", "best", "termination_reason", "worktree"):
        assert final[key] == status[key], key

    log = server.ok("get_experiment_log", run=run_id, experiment=1)
    assert "EXPD-DESCRIPTION: x from 0 to 1" in log["text"] and log["truncated"] is False
    tail = server.ok("get_experiment_log", run=run_id, experiment=1, max_bytes=5)
    assert tail["truncated"] is True and len(tail["text"]) <= 5

    summary = server.ok("get_run_summary", run=run_id)
    assert f"run {run_id} ended: complete (max_experiments)" in summary["text"]
    assert [k["experiment"] for k in summary["kept"]] == [1, 2]
    report = server.ok("get_run_report", run=run_id)
    code, out, _ = cli(repo, state_dir, "report", run_id)
    assert report["text"].splitlines()[0] == out.splitlines()[0] == f"# expd report: {run_id}"

    listed = server.portal.call(server.session.list_resources).resources
    uri = f"expd://runs/{run_id}/summary.md"
    assert uri in {str(r.uri) for r in listed}
    read = server.portal.call(server.session.read_resource, uri)
    assert read.contents[0].text.startswith(f"# expd report: {run_id}")
    read = server.portal.call(server.session.read_resource, f"expd://runs/{run_id}/status.json")
    assert json.loads(read.contents[0].text)["run_id"] == run_id
    runs = server.ok("list_runs", program="p")["runs"]
    assert run_id in [r["run_id"] for r in runs]
    refused = server.error("resume_run", run=run_id)
    code, _, err = cli(repo, state_dir, "resume", run_id)
    assert code == 1 and refused == err
    assert "not an experiment number" in server.error("finalize_run", run=run_id, exclude=[0])
    conflict = server.error("finalize_run", run=run_id, exclude=[1])
    assert conflict.startswith("expd: error: experiment 2") and "conflicts" in conflict
    final_branch = server.ok("finalize_run", run=run_id, force=True)
    assert final_branch["applied"] == [1, 2] and final_branch["excluded"] == []
    assert final_branch["confirmation"]["status"] in ("confirmed", "not_confirmed")
    assert git(repo, "rev-parse", final_branch["branch"]) == final_branch["commit"]

    active = server.ok("list_runs", active_only=True)["runs"]
    assert all(r["daemon"] in ("running", "starting", "hung") for r in active)


def test_steer_stop_and_abort(server: McpServer, repo: Path, state_dir: Path) -> None:
    server.ok("create_program", name="slow", metric="score", direction="lower")
    toml = COMMAND_TOML.format(max_experiments=10, command="./slow.sh 2")
    server.ok("update_program", name="slow", program_toml=toml, measure_sh=MEASURE)
    run_id = server.ok("start_run", program="slow")["run_id"]
    server.poll("get_run_status", lambda s: s["phase"] == "agent_running", run=run_id)
    refused = server.error("update_program", name="slow", program_md="# changed\n")
    assert "has an active run" in refused

    limit = server.ok("update_run_limit", run=run_id, max_experiments=5)
    assert limit["action"] == "set" and limit["run_id"] == run_id
    server.ok("set_guidance", run=run_id, text="  try bigger steps  ")
    server.poll("get_run_status", lambda s: s["max_experiments"] == 5, run=run_id)
    guidance = RepoPaths(repo).program("slow").run(run_id.split("/")[1]).guidance
    server.poll("list_runs", lambda _: guidance.exists() and "bigger" in guidance.read_text())

    stop = server.ok("stop_run", run=run_id)
    assert stop["action"] == "stop" and stop["request_id"]
    final = server.poll("get_run_status", lambda s: s["daemon"] == "finished", run=run_id)
    assert final["termination_reason"] == "stopped"

    again = server.error("stop_run", run=run_id)
    code, _, err = cli(repo, state_dir, "stop", run_id)
    assert code == 1 and again == err

    run_id = server.ok("start_run", program="slow")["run_id"]
    server.poll(
        "get_run_status",
        lambda s: s["phase"] == "agent_running" and s["experiment"] >= 1,
        run=run_id,
    )
    abort = server.ok("abort_run", run=run_id)
    assert abort["action"] == "abort"
    final = server.poll("get_run_status", lambda s: s["daemon"] == "finished", run=run_id)
    assert final["termination_reason"] == "aborted"
    last = server.ok("get_run_results", run=run_id, limit=1)["results"][-1]
    assert last["status"] == "crash" and "abort" in last["reason"]


def test_bad_input_is_a_tool_error_and_the_server_answers(
    server: McpServer, repo: Path, state_dir: Path
) -> None:
    for args, tool, arguments in [
        (["status", "no-such-run"], "get_run_status", {"run": "no-such-run"}),
        (["results", "no-such-run"], "get_run_results", {"run": "no-such-run"}),
        (["start", "nope"], "start_run", {"program": "nope"}),
        (["validate", "nope"], "validate_measurement", {"name": "nope"}),
        (["start", "../x"], "start_run", {"program": "../x"}),
    ]:
        code, _, err = cli(repo, state_dir, *args)
        assert code == 1 and err.startswith("expd: error:"), err
        assert server.error(tool, **arguments) == err, tool
    missing = server.error("create_program")
    assert missing.startswith("expd: error: create_program: ") and "\n" not in missing
    assert "name: Field required" in missing and "metric: Field required" in missing
    wrong = server.error("update_run_limit", max_experiments="many")
    assert wrong.startswith("expd: error: update_run_limit: max_experiments: ")
    assert "valid integer" in wrong and "\n" not in wrong
    assert "less than or equal" in server.error("get_experiment_log", max_bytes=10**9)
    assert "Unknown tool" in server.error("no_such_tool")
    assert server.error("get_program", name="nope").startswith("expd: error: no program 'nope' (")
    assert "not a program file" in str(_read_error(server, "expd://programs/p/secrets.txt"))
    assert server.ok("list_programs")["programs"]


def _read_error(server: McpServer, uri: str) -> Exception:
    try:
        server.portal.call(server.session.read_resource, uri)
    except Exception as exc:
        return exc
    raise AssertionError(f"{uri} was read")


def test_queue_tools_chain_runs_like_the_cli(
    server: McpServer, repo: Path, state_dir: Path
) -> None:
    for name in ("qa", "qb", "qc"):
        server.ok("create_program", name=name, metric="score", direction="lower")
        toml = COMMAND_TOML.format(max_experiments=1, command="./slow.sh 0")
        server.ok("update_program", name=name, program_toml=toml, measure_sh=MEASURE)
    first = server.ok("add_to_queue", program="qa", max_experiments=1)
    assert first["added"]["program"] == "qa" and first["start"]["action"] == "started"
    second = server.ok("add_to_queue", program="qb")["added"]
    third = server.ok("add_to_queue", program="qc")["added"]
    assert "already" in server.error("add_to_queue", program="qb")
    removed = server.ok("remove_from_queue", entry_id=third["id"])["removed"]
    assert [e["program"] for e in removed] == ["qc"]
    code, out, _ = cli(repo, state_dir, "queue", "list", "--json")
    assert code == 0 and server.ok("list_queue") == json.loads(out)
    done = server.poll(
        "list_queue",
        lambda q: [e["state"] for e in q["entries"]] == ["done", "done"],
        timeout=120,
    )
    assert [e["program"] for e in done["entries"]] == ["qa", "qb"]
    assert done["entries"][1]["id"] == second["id"]
    ended = [server.ok("get_run_status", run=e["run_id"]) for e in done["entries"]]
    assert all(s["daemon"] == "finished" for s in ended)
    assert server.error("remove_from_queue", entry_id=999).startswith("expd: error:")
    assert "entry_id: " in server.error("remove_from_queue", entry_id="x")
    assert server.ok("clear_queue")["removed"]
    assert server.ok("list_queue")["entries"] == []
    assert server.ok("resume_queue")["action"] == "empty"
