"""Arms through the real daemon: `expd start` with `[[arms]]` of known quality, real git.

The command arms share one script, `arm.sh up|down|idle`: `up` moves x one step towards the
target (TARGET=10, so every `up` is a keep), `down` one step away (a discard), `idle` changes
nothing (a crash: no change). `round_robin` makes the split exact: experiment 1 goes to the
first declared arm, 2 to the second, and so on. The adapters' `temperature` and `effort` are
checked against a local chat-completions server and the replaying fake Codex CLI.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.agents.base import AgentEvent, AgentTask
from daemon.agents.codex import CodexAgent
from daemon.agents.registry import make_agent
from shared.arms import arms_of
from shared.paths import RunPaths
from shared.schema import ArmStats, Event, ProgramConfig, ResultRecord
from tests.fakes.chat_server import ChatServer, Reply
from tests.repos import expd, make_repo, results, start, state, wait_dead, wait_finished

ARM_SH = """#!/bin/bash
cat > /dev/null
n=$(sed -E 's/x = ([0-9-]+)/\\1/' f.py)
case "$1" in
  up) m=$((n + 1)) ;;
  down) m=$((n - 1)) ;;
  *) echo "EXPD-DESCRIPTION: nothing to do"; exit 0 ;;
esac
echo "EXPD-DESCRIPTION: x from $n to $m"
echo "x = $m" > f.py
"""
ENV = {"TARGET": "10"}
FAKE_CODEX = Path(__file__).parent / "fakes" / "fake_codex.py"


def arm(name: str, command: str | None, addendum: str = "", **agent: Any) -> str:
    lines = ["[[arms]]", f'id = "{name}"']
    if command is not None:
        lines.append(f'command = "{command}"')
    if addendum:
        lines.append(f'prompt_addendum = "{addendum}"')
    lines += [f"{k} = {json.dumps(v)}" for k, v in agent.items()]
    return "\n".join(lines) + "\n"


THREE = (
    arm("good", "./agent.sh up", "Take x one step up.")
    + arm("bad", "./agent.sh down", "Take x one step down.")
    + arm("idle", "./agent.sh idle", "Leave the code alone.")
)


def program(
    root: Path, arms: str, *, max_experiments: int, allocation: str = "round_robin"
) -> Path:
    policy = f'[arms_policy]\nallocation = "{allocation}"\nseed = 7\n'
    return make_repo(
        root, max_experiments=max_experiments, agent_sh=ARM_SH, toml_extra=arms + policy
    )


def run_id(paths: RunPaths) -> str:
    return f"{paths.dir.parent.parent.name}/{paths.dir.name}"


def status(repo: Path, paths: RunPaths) -> dict[str, Any]:
    return json.loads(expd("status", run_id(paths), "--json", cwd=repo).stdout)


def events(paths: RunPaths) -> list[Event]:
    return [
        msgspec.json.decode(line, type=Event) for line in paths.events.read_bytes().splitlines()
    ]


def recount(records: list[ResultRecord], ids: list[str]) -> list[ArmStats]:
    """Each arm's statistics counted afresh from results.jsonl (gains from the metrics)."""
    out = {i: ArmStats(id=i) for i in ids}
    best = None
    for r in records:
        if r.status == "baseline":
            best = r.metric
            continue
        a = out[r.arm or ""]
        a.experiments += 1
        a.keeps += r.status == "keep"
        a.errors += r.status == "crash"
        a.cost_usd += r.cost_usd
        a.tokens += r.tokens
        a.agent_s += r.agent_s
        if r.status == "keep":
            assert best is not None and r.metric is not None
            a.improvement_pct += (best - r.metric) / abs(best) * 100  # lower is better
            best = r.metric
    return list(out.values())


def same_stats(got: list[ArmStats], want: list[ArmStats]) -> None:
    assert [a.id for a in got] == [a.id for a in want]
    for g, w in zip(got, want, strict=True):
        assert (g.experiments, g.keeps, g.errors, g.tokens) == (
            w.experiments,
            w.keeps,
            w.errors,
            w.tokens,
        ), g.id
        assert g.improvement_pct == pytest.approx(w.improvement_pct), g.id
        assert g.cost_usd == pytest.approx(w.cost_usd) and g.agent_s == pytest.approx(w.agent_s)


# --------------------------------------------------------------------------- through the daemon


def test_round_robin_arms_share_the_run(tmp_path: Path) -> None:
    repo = program(tmp_path / "repo", THREE, max_experiments=6)
    paths = start(repo, env=ENV)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    records = results(paths)
    assert [(r.experiment, r.arm, r.status) for r in records] == [
        (0, None, "baseline"),
        (1, "good", "keep"),
        (2, "bad", "discard"),
        (3, "idle", "crash"),
        (4, "good", "keep"),
        (5, "bad", "discard"),
        (6, "idle", "crash"),
    ], [r.reason for r in records]
    same_stats(final.arm_stats, recount(records, ["good", "bad", "idle"]))
    assert final.arm_stats[0].improvement_pct == pytest.approx(100 / 11 + 100 / 10)

    shown = status(repo, paths)["arms"]
    assert [a["id"] for a in shown] == ["good", "bad", "idle"]
    assert [(a["experiments"], a["keeps"], a["errors"]) for a in shown] == [
        (2, 2, 0),
        (2, 0, 0),
        (2, 0, 2),
    ]
    assert [a["share"] for a in shown] == pytest.approx([1 / 3] * 3)
    assert shown[0]["keep_rate"] == 1.0 and shown[0]["mean_agent_s"] > 0
    assert all(a["paused"] == "" for a in shown)

    addenda = {"good": "one step up", "bad": "one step down", "idle": "alone"}
    for r in records[1:]:
        prompt = paths.prompt(r.experiment).read_text()
        assert "## Your approach for this experiment" in prompt
        for name, text in addenda.items():
            assert (text in prompt) == (name == r.arm), (r.experiment, name)
    starts = [e for e in events(paths) if e.kind == "agent_start"]
    assert [e.data.get("arm") for e in starts] == ["good", "bad", "idle"] * 2


def test_kill_mid_run_then_resume_recounts_the_arms(tmp_path: Path) -> None:
    """The daemon dies measuring experiment 4 (good's): the resumed run records it once, as an
    interrupted crash of `good`, and rebuilds every arm's statistics from results.jsonl."""
    repo = program(tmp_path / "repo", THREE, max_experiments=7)
    paths = start(repo, env={**ENV, "EXPD_FAULT": "measuring@4"})
    wait_dead(paths)
    before = state(paths)
    assert before.in_flight is not None and before.in_flight.arm == "good"
    assert before.phase not in ("complete", "crashed")

    proc = expd("resume", run_id(paths), cwd=repo, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    records = results(paths)
    assert [r.experiment for r in records] == list(range(8))
    interrupted = records[4]
    assert interrupted.status == "crash" and "interrupted" in interrupted.reason
    assert interrupted.arm == "good"
    # After the resume the split goes on from the recount: 5 bad, 6 idle, 7 good.
    assert [r.arm for r in records[5:]] == ["bad", "idle", "good"]
    same_stats(final.arm_stats, recount(records, ["good", "bad", "idle"]))
    assert [a["experiments"] for a in status(repo, paths)["arms"]] == [3, 2, 2]
    assert final.resumes == 1


# Commands that pass the start's check but are gone when they run (`true` hides what follows).
GONE = "true && ./no-such-agent.sh"


def test_start_refuses_an_arm_that_cannot_run(tmp_path: Path) -> None:
    arms = arm("good", "./agent.sh up") + arm("missing", "./no-such-agent.sh")
    repo = program(tmp_path / "repo", arms, max_experiments=5)
    out = expd("start", "p", "--json", cwd=repo)
    assert out.returncode == 1 and "arm 'missing': agent command not found" in out.stderr


def test_an_arm_that_cannot_run_is_paused_and_the_others_go_on(tmp_path: Path) -> None:
    """Thompson with the floor: `missing` (exit 127) gets its share early, once, then pauses."""
    arms = arm("good", "./agent.sh up") + arm("missing", GONE)
    repo = program(tmp_path / "repo", arms, max_experiments=5, allocation="thompson")
    paths = start(repo, env=ENV)
    final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    records = results(paths)
    missing = [r for r in records if r.arm == "missing"]
    assert len(missing) == 1 and missing[0].status == "crash", missing
    assert "not found" in missing[0].reason
    assert [r.arm for r in records[1:]].count("good") == 4
    paused = [e for e in events(paths) if e.kind == "arm_paused"]
    assert [(e.experiment, e.data["arm"]) for e in paused] == [(missing[0].experiment, "missing")]
    shown = {a["id"]: a for a in status(repo, paths)["arms"]}
    assert "not found" in shown["missing"]["paused"] and shown["good"]["paused"] == ""
    assert (shown["missing"]["experiments"], shown["missing"]["errors"]) == (1, 1)
    same_stats(final.arm_stats, recount(records, ["good", "missing"]))


def test_every_arm_unavailable_ends_the_run_agent_unavailable(tmp_path: Path) -> None:
    arms = arm("one", GONE) + arm("two", "true && ./nor-this-one.sh")
    repo = program(tmp_path / "repo", arms, max_experiments=6)
    paths = start(repo, env=ENV)
    final = wait_finished(paths)
    assert final.phase == "complete"
    assert final.termination_reason == "agent_unavailable"
    assert "every arm is paused" in final.message and "one:" in final.message
    assert [(r.arm, r.status) for r in results(paths)[1:]] == [("one", "crash"), ("two", "crash")]
    assert all(a.paused for a in final.arm_stats)


def test_a_provider_that_gives_up_pauses_its_arm(tmp_path: Path) -> None:
    """An `openai` arm whose key is refused: the retry policy gives up, the experiment is
    recorded as the arm's crash, the arm pauses, and the command arm takes the rest."""
    with ChatServer(lambda body: Reply.auth_error()) as server:
        api = arm(
            "api", None, kind="openai", model="m", base_url=server.url, api_key_env="FAKE_KEY"
        )
        repo = program(tmp_path / "repo", arm("good", "./agent.sh up") + api, max_experiments=4)
        paths = start(repo, env={**ENV, "FAKE_KEY": "sk-test-refused-0000"})
        final = wait_finished(paths)
    assert final.termination_reason == "max_experiments", final.message
    records = results(paths)
    assert [(r.arm, r.status) for r in records[1:]] == [
        ("good", "keep"),
        ("api", "crash"),
        ("good", "keep"),
        ("good", "keep"),
    ]
    assert "authentication failed" in records[2].reason
    assert "authentication failed" in final.arm_stats[1].paused
    assert len(server.requests) == 1


def test_an_arms_key_is_redacted_like_the_agents(tmp_path: Path) -> None:
    """`api_key_env` of an arm (not of `[agent]`) names a secret: it never reaches a file."""
    value = "arm-credential-4f9Qz81x"
    arms = arm("good", "echo $ARM_CRED; ./agent.sh up", api_key_env="ARM_CRED") + arm(
        "idle", "./agent.sh idle"
    )
    repo = program(tmp_path / "repo", arms, max_experiments=2)
    paths = start(repo, env={**ENV, "ARM_CRED": value})
    wait_finished(paths)
    assert "[redacted:ARM_CRED]" in paths.agent_log(1).read_text()
    for path in paths.dir.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- the adapters


def task(root: Path, env: dict[str, str]) -> AgentTask:
    (root / "wt").mkdir(parents=True)
    (root / "wt" / "f.py").write_text("x = 0\n")
    return AgentTask(
        experiment=1,
        worktree=root / "wt",
        run_dir=root / "run",
        prompt="# Experiment 1\nMake score lower.",
        prompt_file=root / "prompt.md",
        timeout=10,
        env=env,
    )


def armed(arms: str, name: str, base: str = "") -> ProgramConfig:
    """The config an arm's agent is made with, as the daemon makes it (its keys over [agent])."""
    toml = f'metric = "score"\ndirection = "lower"\n[agent]\n{base}\n{arms}'
    config = msgspec.convert(tomllib.loads(toml), ProgramConfig)
    chosen = next(a for a in arms_of(config) if a.id == name)
    return msgspec.structs.replace(config, agent=chosen.agent)


async def test_openai_sends_temperature_and_reasoning_effort(tmp_path: Path) -> None:
    arms = '[[arms]]\nid = "cool"\ntemperature = 0.2\neffort = "high"\n[[arms]]\nid = "plain"\n'
    with ChatServer() as server:
        base = f'kind = "openai"\nmodel = "m"\nbase_url = "{server.url}"'
        for name in ("cool", "plain"):
            config = armed(arms, name, base)
            agent = make_agent(config, kind="openai", model="m", run_dir=tmp_path)
            emitted: list[AgentEvent] = []
            outcome = await agent.run(task(tmp_path / name, {}), emitted.append)
            assert outcome.error is None, outcome.error
    cool, plain = server.requests
    assert (cool["temperature"], cool["reasoning_effort"]) == (0.2, "high")
    assert "temperature" not in plain and "reasoning_effort" not in plain


async def test_codex_passes_the_reasoning_effort(tmp_path: Path) -> None:
    FAKE_CODEX.chmod(0o755)
    arms = '[[arms]]\nid = "deep"\neffort = "high"\n[[arms]]\nid = "plain"\n'
    base = f'kind = "codex"\ncommand = "{FAKE_CODEX}"\nmodel = "gpt-5"'
    for name in ("deep", "plain"):
        record = tmp_path / f"{name}.json"
        agent = CodexAgent(armed(arms, name, base))
        outcome = await agent.run(
            task(tmp_path / name, {"FAKE_CODEX_RECORD": str(record)}), lambda e: None
        )
        assert outcome.error is None, outcome.error
        argv = json.loads(record.read_text())["argv"]
        overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
        efforts = [o for o in overrides if o.startswith("model_reasoning_effort=")]
        assert efforts == (['model_reasoning_effort="high"'] if name == "deep" else [])


def test_program_without_arms_has_none_in_its_state(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=1)
    paths = start(repo, env={"TARGET": "3"})
    final = wait_finished(paths)
    assert final.arm_stats == [] and all(r.arm is None for r in results(paths))
    assert status(repo, paths)["arms"] == []
    assert all(e.data.get("arm") is None for e in events(paths))
