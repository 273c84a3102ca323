"""A generation end to end: a real run shares experiments between a good and an idle arm, `expd
darwin` names the good one on the evidence, `--apply` archives the generation and rewrites
program.toml in place, and the next run starts from the promoted setup."""

from __future__ import annotations

import json
from pathlib import Path

from shared.arms import arms_of
from shared.paths import ProgramPaths
from shared.programs import load_program
from tests.repos import expd, make_repo, start, wait_finished
from tests.test_arms_run import ARM_SH, arm

ENV = {"TARGET": "50"}  # far away: every step up is a keep


def test_a_generation_from_a_real_run(tmp_path: Path) -> None:
    arms = (
        "# the arms of generation 1\n"
        + arm("idle", "./agent.sh idle")
        + arm("good", "./agent.sh up", "Take x one step up.")
    )
    policy = '[arms_policy]\nallocation = "round_robin"\n'
    repo = make_repo(
        tmp_path / "repo", max_experiments=12, agent_sh=ARM_SH, toml_extra=arms + policy
    )
    paths = start(repo, env=ENV)
    final = wait_finished(paths, timeout=120)
    assert final.termination_reason == "max_experiments", final.message
    keeps = {a.id: a.keeps for a in final.arm_stats}
    assert keeps == {"idle": 0, "good": 6}

    plan = expd("darwin", "p", "--json", cwd=repo)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["winner"]["arm"] == "good" and doc["winner"]["significant"] is True
    assert [r["id"] for r in doc["ranking"]] == ["good", "idle"]

    applied = expd("darwin", "p", "--apply", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    program = ProgramPaths(repo, "p")
    archives = list((program.dir / "generations").glob("*.json"))
    assert len(archives) == 1
    text = program.toml.read_text()
    assert "# the arms of generation 1" in text  # the user's comment survives the rewrite
    config = load_program(program)
    assert [a.id for a in arms_of(config)] == ["good", "idle"]
    assert config.agent.command == "./agent.sh up"  # promoted to control

    # The next generation runs from the rewritten file.
    second = start(repo, env=ENV)
    again = wait_finished(second, timeout=120)
    assert again.termination_reason == "max_experiments", again.message
    assert [a.id for a in again.arm_stats] == ["good", "idle"]
    report = expd("report", f"p/{second.dir.name}", cwd=repo)
    assert report.returncode == 0 and "good" in report.stdout
