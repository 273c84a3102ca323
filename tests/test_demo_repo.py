"""The offline demo repository: a clean git repo, a valid program, a deterministic metric."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from daemon.agents.base import AgentTask
from daemon.agents.tune import TuneAgent
from daemon.commands.demo import CORPUS_BYTES, corpus, write_demo_repo
from shared.errors import UserError
from shared.paths import ProgramPaths, RepoPaths
from shared.programs import load_program
from shared.schema import ResultRecord

BETTER = {"LEVEL": "9", "CHUNK_KB": "256", "MEM_LEVEL": "9"}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def measure(program: ProgramPaths, worktree: Path) -> float:
    done = subprocess.run(
        ["bash", str(program.measure_sh)], cwd=worktree, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result["bytes"], int) and isinstance(result["seconds"], float)
    return float(result["bytes"])


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, ProgramPaths]:
    root = tmp_path / "demo"
    name = write_demo_repo(root)
    return root, RepoPaths(root).program(name)


def test_creates_a_clean_committed_repo_with_a_valid_program(
    demo: tuple[Path, ProgramPaths],
) -> None:
    root, program = demo
    assert program.name == "demo"
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(root, "rev-list", "--count", "HEAD") == "1"
    tracked = set(git(root, "ls-files").splitlines())
    assert {"README.md", "corpus.txt", "pack.py", "pack_config.py"} <= tracked
    assert not any(path.startswith(".expd") for path in tracked)
    assert "/.expd/" in (root / ".git" / "info" / "exclude").read_text()
    assert program.md.read_text().strip() and program.measure_sh.stat().st_mode & 0o111

    config = load_program(program)
    assert (config.metric, config.direction) == ("bytes", "lower")
    assert (config.decide.policy, config.decide.repeats) == ("fixed", 1)
    assert config.agent.kind == "tune" and config.tune.seed == 7
    assert config.loop.max_experiments == 10
    assert set(config.tune.params) == {"LEVEL", "CHUNK_KB", "STRATEGY", "MEM_LEVEL"}
    # Every declared pattern finds its value, and the start lies inside the search space.
    agent = TuneAgent(config, run_dir=program.runs_dir / "check")
    current = agent.current_values({"pack_config.py": (root / "pack_config.py").read_text()})
    assert current == {"LEVEL": 1, "CHUNK_KB": 1, "STRATEGY": "default", "MEM_LEVEL": 2}


def test_the_corpus_is_deterministic_and_about_200_kb() -> None:
    text = corpus()
    assert text == corpus()
    assert CORPUS_BYTES <= len(text.encode()) < CORPUS_BYTES + 5_000


def test_measuring_prints_finite_bytes_and_leaves_the_tree_clean(
    demo: tuple[Path, ProgramPaths],
) -> None:
    root, program = demo
    first = measure(program, root)
    assert math.isfinite(first) and 0 < first < len((root / "corpus.txt").read_bytes())
    assert measure(program, root) == first  # deterministic: one sample decides
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert not list(root.rglob("__pycache__"))  # not even ignored leftovers


def test_better_settings_make_the_metric_clearly_smaller(
    demo: tuple[Path, ProgramPaths],
) -> None:
    root, program = demo
    baseline = measure(program, root)
    config = root / "pack_config.py"
    text = config.read_text()
    for name, value in BETTER.items():
        text = re.sub(rf"^{name} = \d+", f"{name} = {value}", text, flags=re.M)
    config.write_text(text)
    assert measure(program, root) < 0.5 * baseline


async def test_ten_tune_experiments_find_a_clear_improvement(
    demo: tuple[Path, ProgramPaths],
) -> None:
    """The demo's promise: with the fixed seed, the loop keeps something ≥ 10 % smaller."""
    root, program = demo
    config = load_program(program)
    run_dir = program.runs_dir / "sim"
    agent = TuneAgent(config, run_dir=run_dir, worktree=root)
    best = baseline = measure(program, root)
    kept = git(root, "rev-parse", "HEAD")
    await agent.feedback(ResultRecord(experiment=0, status="baseline", metric=baseline))
    for experiment in range(1, config.loop.max_experiments + 1):
        task = AgentTask(
            experiment=experiment,
            worktree=root,
            run_dir=run_dir,
            prompt="",
            prompt_file=run_dir / "prompt.md",
            timeout=60.0,
            env={},
        )
        outcome = await agent.run(task, lambda event: None)
        assert outcome.error is None, outcome.error
        metric = measure(program, root)
        status = "keep" if metric < best * (1 - config.decide.min_effect) else "discard"
        if status == "keep":
            best, kept = metric, git(root, "rev-parse", "HEAD")
        else:
            git(root, "reset", "--quiet", "--hard", kept)
        await agent.feedback(ResultRecord(experiment=experiment, status=status, metric=metric))
    await agent.close()
    assert best <= 0.9 * baseline


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        write_demo_repo(tmp_path / "busy")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError):
        write_demo_repo(tmp_path / "file")


def test_an_existing_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert write_demo_repo(tmp_path / "empty") == "demo"
