"""`expd mcp`: the read tools load nothing heavy (checked on the server process's own import log),
and the bakeoff tools against a real bakeoff daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bakeoffs.paths import BakeoffRunPaths
from tests.bakeoff_repos import make_bakeoff_repo, wait_done
from tests.fake_runs import make_run, result
from tests.mcp_client import McpServer
from tests.repos import expd

FORBIDDEN = ("daemon", "tui", "textual", "pygit2", "git", "optuna", "tomlkit", "sqlalchemy")
"""What the server must never load for a read. (The SDK itself loads anyio, rich for its log
handler and, through uvicorn, watchfiles, before any tool runs: the reads must add nothing heavy.)"""


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-reads-state")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, state_dir: Path) -> Iterator[Path]:
    """A bakeoff with one finished run (started by the CLI) and a program with a finished run."""
    root = tmp_path_factory.mktemp("mcp-reads") / "repo"
    make_bakeoff_repo(root, tasks=2, variants={"solver": "solver", "half": "half"})
    run = make_run(root.resolve(), "prog", phase="complete", experiment=1, baseline=5.0, best=4.0)
    run.add_results(result(0, "baseline", 5.0), result(1, "keep", 4.0))
    run.paths.agent_dir.mkdir()
    run.paths.agent_log(1).write_text("the agent's words\n")
    proc = expd(
        "bakeoff", "start", "bk", "--json", cwd=root, env={"EXPD_STATE_DIR": str(state_dir)}
    )
    assert proc.returncode == 0, proc.stderr
    wait_done(BakeoffRunPaths(Path(json.loads(proc.stdout)["run_dir"])))
    yield root


PROBE = """
import anyio, json, sys
from shared.cli.mcp_server.server import build_server
server = build_server()
baseline = set(sys.modules)
calls = json.loads(sys.argv[1])
async def run_all():
    out = []
    for name, args in calls:
        result = await server.call_tool(name, args)
        out.append([name, result])
    for uri in ("expd://programs/prog/program.toml", "expd://runs/prog/20260101-120000/summary.md"):
        await server.read_resource(uri)
    await server.list_resources()
    return out, {t.name: t.output_schema for t in await server.list_tools()}
results, schemas = anyio.run(run_all)
loaded = sorted(sys.modules)
import jsonschema  # after the count: only the check needs it
invalid = []
for name, result in results:
    try:
        jsonschema.validate(result.structured_content, schemas[name])
    except jsonschema.ValidationError as exc:
        invalid.append([name, exc.message])
print(json.dumps({
    "failed": [[n, r.content[0].text[:300]] for n, r in results if r.is_error],
    "invalid": invalid,
    "loaded": loaded,
    "by_reads": sorted(set(loaded) - baseline),
}))
"""

READS = [
    ("list_programs", {}),
    ("get_program", {"name": "prog"}),
    ("list_runs", {}),
    ("get_run_status", {"run": "prog"}),
    ("get_run_results", {"run": "prog"}),
    ("get_experiment_log", {"run": "prog"}),
    ("get_run_summary", {"run": "prog"}),
    ("get_run_report", {"run": "prog", "format": "html"}),
    ("get_bakeoff_status", {}),
    ("get_bakeoff_report", {}),
]


def test_read_tools_load_no_heavy_module(repo: Path, state_dir: Path) -> None:
    """The read tools, through the server object `expd mcp` serves, in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(READS)],
        cwd=repo,
        env={**os.environ, "EXPD_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["failed"], out["failed"]
    assert not out["invalid"], out["invalid"]  # each result fits its published output schema
    heavy = sorted(m for m in out["loaded"] if m.split(".")[0] in FORBIDDEN)
    assert not heavy, heavy
    project = {m.split(".")[0] for m in out["by_reads"]} & {"daemon", "tui", "shared"}
    assert project <= {"shared"}, project
    assert "shared.cli.mcp_server.tools_runs" in out["loaded"]


def test_bakeoff_tools_match_the_cli(repo: Path, state_dir: Path, tmp_path: Path) -> None:
    env = {"EXPD_STATE_DIR": str(state_dir)}
    server = McpServer(tmp_path, tmp_path / "server.err", env=env, args=("--repo", str(repo)))
    try:
        started = server.ok("start_bakeoff", name="bk")
        assert set(started) == {"run_id", "pid", "run_dir"}
        final = server.poll(
            "get_bakeoff_status", lambda s: s["daemon"] == "finished", run=started["run_id"]
        )
        assert final["done"] == final["total"] == 4
        kinds = {r["run_id"]: r.get("kind") for r in server.ok("list_runs")["runs"]}
        assert started["run_id"] in kinds  # a bakeoff run's status fits list_runs' schema too
        doc = server.ok("get_bakeoff_report", run=started["run_id"])
        proc = expd(
            "bakeoff", "report", started["run_id"], "--format", "json",
            cwd=repo, env={"EXPD_STATE_DIR": str(state_dir)},
        )  # fmt: skip
        cli_doc = json.loads(proc.stdout)
        doc.pop("generated_at"), cli_doc.pop("generated_at")
        assert doc == cli_doc
        assert "no bakeoff" in server.error("start_bakeoff", name="nope")
    finally:
        server.close()


def test_repo_option_must_name_a_repository(tmp_path: Path) -> None:
    for where, message in [
        (tmp_path / "missing", "is not a directory"),
        (tmp_path, "not inside a git repository"),
    ]:
        proc = expd("mcp", "--repo", str(where), cwd=tmp_path)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith("expd: error:") and message in proc.stderr, proc.stderr
