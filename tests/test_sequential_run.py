"""The sequential default through the real daemon: noisy measurements, the pool, drift, validate."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from daemon.policies.base import ChangeInfo, Decision, Measure, Side
from daemon.policies.fixed import FixedRepeatsPolicy
from daemon.policies.sequential import SequentialPolicy
from daemon.service.recorder import Recorder
from daemon.service.store import RunStore
from shared import codec
from shared.paths import RepoPaths, RunPaths
from shared.programs import parse_program
from shared.schema import Event, ResultRecord, RunManifest, RunState
from shared.tail import read_complete_lines
from tests.repos import (
    expd,
    git,
    make_repo,
    results,
    start,
    state,
    wait_dead,
    wait_finished,
)

# score = 100 (80 when f.py says `fast = 1`) × log-normal noise of σ 5 %, fresh randomness per run.
NOISY_MEASURE = f"""#!/bin/bash
{sys.executable} - <<'PY'
import math, os, random
level = 80.0 if "fast = 1" in open("f.py").read() else 100.0
noise = float(os.environ.get("NOISE", "0.05"))
print('{{"score": %.5f}}' % (level * math.exp(random.Random(os.urandom(16)).gauss(0, noise))))
PY
"""

# A neutral change every time (a comment), and `fast = 1` when $FAST_AT is this experiment.
NEUTRAL_AGENT = """#!/bin/bash
cat > /dev/null
if [ "${FAST_AT:-0}" = "$EXPD_EXPERIMENT" ]; then
  echo "fast = 1" >> f.py
  echo "EXPD-DESCRIPTION: the real speed-up"
else
  echo "# neutral edit $EXPD_EXPERIMENT" >> f.py
  echo "EXPD-DESCRIPTION: a neutral edit"
fi
"""

SEQUENTIAL = "min_effect = 0.02\nalpha = 0.001\nmax_runs = 12"
"""The default policy with a strict α, so six neutral decisions almost never keep anything."""


def restore_pool(results: list[ResultRecord], tmp_path: Path) -> list[float]:
    """The incumbent pool a resumed daemon continues with: the results replayed."""
    recorder = Recorder(RunStore(RunPaths(tmp_path), RunState()), base_commit="")
    recorder.replay(results)
    return recorder.state.pool


def events(paths: RunPaths) -> list[Event]:
    return [
        codec.decode(line, Event, source="events") for line in read_complete_lines(paths.events)
    ]


# --------------------------------------------------------------------------- config


def test_sequential_is_the_default_and_its_keys_are_checked() -> None:
    base = 'metric = "ms"\ndirection = "lower"\n[agent]\ncommand = "./a.sh"\n'
    config = parse_program(base, source=Path("program.toml"))
    assert config.decide.policy == "sequential"
    assert (config.decide.min_runs, config.decide.alpha, config.decide.beta) == (2, 0.05, 0.3)
    for table, needle in (
        ("alpha = 0.7", "[decide] alpha must be between 0 and 0.5"),
        ("beta = 0", "[decide] beta must be between 0 and 0.5"),
        ("min_runs = 0", "[decide] min_runs must be at least 1"),
        ("min_runs = 5\nmax_runs = 3", "[decide] max_runs (3) must be ≥ min_runs (5)"),
        ('policy = "bayes"', "policy"),
    ):
        with pytest.raises(Exception) as info:
            parse_program(base + "[decide]\n" + table + "\n", source=Path("x/program.toml"))
        assert "x/program.toml" in str(info.value) and needle in str(info.value), info.value


def test_init_scaffolds_the_sequential_policy(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    proc = expd("init", "p", "--metric", "ms", "--direction", "lower", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    toml = RepoPaths(repo).program("p").toml
    config = parse_program(toml.read_text(), source=toml)
    assert config.decide.policy == "sequential" and config.decide.max_runs == 12


# --------------------------------------------------------------------------- the real daemon


def test_deterministic_runs_decide_in_the_minimum_number_of_runs(tmp_path: Path) -> None:
    """Zero noise: the default policy keeps and discards exactly as the fixed one would."""
    repo = make_repo(tmp_path / "repo", max_experiments=3, decide="min_effect = 0.01")
    paths = start(repo, env={"TARGET": "1"})
    final = wait_finished(paths)
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "discard", "discard"], [
        r.reason for r in recs
    ]
    assert final.best == 1.0 and final.noise == "" and final.drift == ""
    assert recs[1].evidence["policy"] == "sequential"
    runs = recs[1].evidence["runs"]
    assert runs["candidate"] <= 4 and runs["incumbent"] <= 2  # no noise: decided quickly
    assert recs[2].evidence["runs"]["candidate"] <= 4
    assert recs[0].evidence["pool"] == recs[0].samples
    assert recs[1].evidence["pool"] == []  # a keep: the next decision re-measures
    assert recs[2].evidence["fresh_incumbent_samples"] == [1.0, 1.0]  # the refill, no more


def test_neutral_changes_under_noise_are_discarded(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=6,
        decide=SEQUENTIAL,
        agent_sh=NEUTRAL_AGENT,
        measure_sh=NOISY_MEASURE,
    )
    paths = start(repo)
    final = wait_finished(paths, timeout=120)
    recs = results(paths)
    assert final.termination_reason == "max_experiments", final.message
    statuses = [r.status for r in recs[1:]]
    # With α = 0.001 a run of six has a false keep about 1 % of the time, two about 0.07 %
    # (measured on the policy with this noise), so at most one rare keep is tolerated.
    assert len(statuses) == 6 and statuses.count("discard") >= 5, [r.reason for r in recs]
    assert final.keeps == statuses.count("keep") <= 1
    for r in recs[1:]:
        ev = r.evidence
        assert {"effect", "interval", "llr", "bounds", "pool", "runs"} <= set(ev), ev
        assert ev["runs"]["incumbent"] >= 1  # incumbent runs were interleaved
        assert len(ev["pool"]) <= SequentialPolicy.pool_size  # bounded, the oldest dropped
    sides = [e.data["side"] for e in events(paths) if e.kind == "measurement" and e.experiment]
    assert "incumbent" in sides and "candidate" in sides
    # The worktree is back on the run's branch at the baseline after the interleaved checkouts.
    worktree = Path(codec.read(paths.run_json, RunManifest).worktree)
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") != "HEAD"
    assert git(worktree, "status", "--porcelain") == ""


def test_a_real_gain_under_noise_is_kept(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=2,
        decide=SEQUENTIAL,
        agent_sh=NEUTRAL_AGENT,
        measure_sh=NOISY_MEASURE,
    )
    paths = start(repo, env={"FAST_AT": "1"})
    final = wait_finished(paths, timeout=120)
    recs = results(paths)
    assert recs[1].status == "keep", recs[1].reason
    assert recs[1].evidence["effect"] > 0.1
    assert recs[2].status == "discard", recs[2].reason
    assert final.best_experiment == 1
    # The kept candidate's runs won the selection: they are not the pool. The next decision
    # re-measured the new incumbent (at least 2 fresh runs) and compared with those alone.
    assert recs[1].evidence["pool"] == []
    fresh = recs[2].evidence["fresh_incumbent_samples"]
    assert len(fresh) >= 2 and recs[2].evidence["incumbent_samples"] == fresh
    assert not set(fresh) & set(recs[1].samples)
    # The headline is the new incumbent's estimate from those fresh runs, with an interval.
    assert final.estimates and final.best_runs == len(fresh) == len(final.incumbent_samples)
    assert final.best == pytest.approx(statistics.median(fresh), rel=0.08)
    low, high = final.improvement_ci or [0.0, 0.0]
    # The truth is 20 %; a 95 % interval misses it one time in twenty, so only the estimate is
    # held to it, with a margin of about four standard errors (4 runs a side at 5 % noise).
    assert low < final.improvement_pct < high and abs(final.improvement_pct - 20) < 12
    shown = json.loads(expd("status", "--json", f"p/{paths.dir.name}", cwd=repo).stdout)
    assert shown["best"] == final.best and shown["improvement_pct"] == final.improvement_pct
    assert shown["best_ci"] == final.best_ci and shown["improvement_ci"] == final.improvement_ci
    assert (shown["best_runs"], shown["baseline_runs"]) == (len(fresh), len(final.baseline_samples))
    human = expd("status", f"p/{paths.dir.name}", cwd=repo).stdout
    assert f"better, 95 % noise interval {low:+.1f} to {high:+.1f} %, {len(fresh)} runs" in human
    report = expd("report", f"p/{paths.dir.name}", cwd=repo).stdout
    assert f"better, 95 % noise interval {low:+.1f} to {high:+.1f} %" in report


def test_noisy_baseline_says_so_once(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=1,
        decide="min_effect = 0.01\nmax_runs = 4",
        agent_sh=NEUTRAL_AGENT,
        measure_sh=NOISY_MEASURE,
    )
    paths = start(repo, env={"NOISE": "0.2"})
    final = wait_finished(paths, timeout=120)
    assert "hides gains" in final.noise, final
    assert [e.kind for e in events(paths)].count("noise") == 1
    assert results(paths)[0].evidence["note"] == final.noise
    shown = expd("status", "--json", cwd=repo)
    assert json.loads(shown.stdout)["noise"] == final.noise
    human = expd("status", cwd=repo).stdout
    assert "noise     noise (CV" in human


def test_start_warns_about_noise_a_calibration_measured(tmp_path: Path) -> None:
    """`expd validate` measured noise that hides gains of min_effect: `expd start` says so on
    stderr with what to change, and the daemon records it before the baseline is measured."""
    repo = make_repo(
        tmp_path / "repo",
        max_experiments=1,
        decide="min_effect = 0.01\nmax_runs = 4",
        agent_sh=NEUTRAL_AGENT,
        measure_sh=NOISY_MEASURE,
    )
    env = {"NOISE": "0.06"}
    assert expd("validate", "p", "--runs", "6", cwd=repo, env=env).returncode == 0
    proc = expd("start", "p", "--json", cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if "warning" in line)
    assert warning.startswith("expd: warning: noise (CV ")
    assert "inside measure.sh" in warning and "[calibration of 6 runs]" in warning
    paths = RepoPaths(repo).program("p").run(json.loads(proc.stdout)["run_id"].split("/")[1])
    final = wait_finished(paths, timeout=120)
    kinds = [e.kind for e in events(paths)]
    assert kinds.count("noise") == 1 and kinds.index("noise") < kinds.index("measurement")
    assert final.noise == warning.removeprefix("expd: warning: ")


# --------------------------------------------------------------------------- pool and drift


@dataclasses.dataclass
class DriftingPolicy:
    """The fixed policy, except that decision 2 reports drift and resets the pool."""

    inner: FixedRepeatsPolicy
    begins: list[tuple[list[float], ChangeInfo | None]] = dataclasses.field(default_factory=list)
    name: str = "sequential"

    def baseline_runs(self) -> int:
        return 1

    def begin(self, pool: list[float], *, change: ChangeInfo | None = None) -> Any:
        self.begins.append((list(pool), change))
        return _Session(self.inner.begin(pool, change=change), len(self.begins))


@dataclasses.dataclass
class _Session:
    inner: Any
    number: int

    def next(self) -> Measure | Decision:
        step = self.inner.next()
        if isinstance(step, Decision) and self.number == 2:
            return dataclasses.replace(step, drift="incumbent 9% slower", pool=[7.0, 7.0])
        return step

    def observe(self, side: Side, metrics: dict[str, float] | None) -> None:
        self.inner.observe(side, metrics)


def test_drift_and_the_pool_flow_through_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon in this process, with a policy that drifts at experiment 2."""
    import daemon.commands.spawn
    import daemon.service.loop
    import daemon.service.main

    repo = make_repo(tmp_path / "repo", max_experiments=3)
    policy = DriftingPolicy(FixedRepeatsPolicy(metric="score", direction="lower", repeats=1))
    monkeypatch.setattr(daemon.service.loop, "make_policy", lambda config: policy)
    monkeypatch.setattr(daemon.commands.spawn, "_spawn", lambda paths: os.getpid())
    monkeypatch.setenv("TARGET", "3")
    monkeypatch.chdir(repo)
    started = daemon.commands.spawn.start_run(repo, "p")
    assert daemon.service.main.main([str(started.run_dir)]) == 0
    paths = RunPaths(started.run_dir)

    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "keep", "keep"]
    # After a keep the pool is empty (the fixed policy re-measures the incumbent itself).
    assert [pool for pool, _ in policy.begins] == [[4.0], [], [7.0, 7.0]]
    assert policy.begins[0][1] == ChangeInfo(lines_added=1, lines_removed=1)
    assert recs[2].evidence["drift"] == "incumbent 9% slower"
    assert recs[2].evidence["pool"] == [7.0, 7.0]
    drift = [e for e in events(paths) if e.kind == "drift"]
    assert [(e.experiment, e.data["detail"]) for e in drift] == [(2, "incumbent 9% slower")]
    final = state(paths)
    assert (final.drift, final.drift_at_experiment) == ("incumbent 9% slower", 2)
    status = json.loads(expd("status", "--json", cwd=repo).stdout)
    assert (status["drift"], status["drift_at_experiment"]) == ("incumbent 9% slower", 2)
    assert "drift     drift at #2: incumbent 9% slower" in expd("status", cwd=repo).stdout
    # What a resumed daemon would continue with: the pool the last decision left.
    assert restore_pool(recs, tmp_path) == recs[3].evidence["pool"] == []


def test_restore_pool_prefers_the_recorded_pool_and_falls_back_to_samples(tmp_path: Path) -> None:
    old = [
        ResultRecord(experiment=0, status="baseline", samples=[10.0, 11.0]),
        ResultRecord(experiment=1, status="discard", samples=[9.0]),
        ResultRecord(experiment=2, status="keep", samples=[8.0, 8.5]),
        ResultRecord(experiment=3, status="crash"),
    ]
    assert restore_pool(old, tmp_path) == [8.0, 8.5]  # results written before the pool was recorded
    new = [
        *old,
        ResultRecord(
            experiment=4,
            status="discard",
            samples=[9.0],
            evidence={"policy": "fixed", "pool": [8.0, 8.5, 8.2]},
        ),
        ResultRecord(experiment=5, status="crash", reason="interrupted"),
    ]
    assert restore_pool(new, tmp_path) == [8.0, 8.5, 8.2]
    assert restore_pool([], tmp_path) == []


def test_resume_continues_with_the_recorded_pool(tmp_path: Path) -> None:
    """Killed after experiment 1 was decided and recorded: the resumed daemon's first decision
    compares against the pool experiment 1 left (fresh incumbent runs included)."""
    repo = make_repo(tmp_path / "repo", max_experiments=2, decide="min_effect = 0.01")
    paths = start(repo, env={"EXPD_FAULT": "recorded@1", "TARGET": "0"})
    wait_dead(paths)
    first = results(paths)
    assert [r.status for r in first] == ["baseline", "discard"]
    proc = expd("resume", f"p/{paths.dir.name}", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    wait_finished(paths)
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "discard", "discard"]
    pool = first[1].evidence["pool"]
    assert recs[2].evidence["incumbent_samples"][: len(pool)] == pool


# --------------------------------------------------------------------------- expd validate


def _validate_repo(tmp_path: Path, measure: str) -> Path:
    return make_repo(tmp_path / "repo", measure_sh=measure, decide="min_effect = 0.02")


def test_validate_a_steady_measurement(tmp_path: Path) -> None:
    repo = _validate_repo(tmp_path, NOISY_MEASURE)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = expd(
        "validate",
        "p",
        "--runs",
        "6",
        "--json",
        cwd=repo,
        env={"NOISE": "0.003", "TMPDIR": str(tmp)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["usable"] and len(result["samples"]) == 6
    assert 0 < result["noise"]["robust_cv"] < 0.02
    assert result["suggested"]["min_effect"] >= 0.02
    assert result["commit"] == git(repo, "rev-parse", "HEAD")
    stored = json.loads((RepoPaths(repo).program("p").dir / "calibration.json").read_text())
    assert stored["file_digests"]["measure.sh"] and stored["samples"] == result["samples"]
    # The temporary worktree is gone: from disk and from git's list.
    assert list(tmp.iterdir()) == []
    assert len(git(repo, "worktree", "list").splitlines()) == 1

    human = expd("validate", "p", "--runs", "3", cwd=repo, env={"NOISE": "0.003"})
    assert human.returncode == 0, human.stderr
    assert "CV" in human.stdout and "suggest   [decide] min_effect" in human.stdout
    assert "\n  warm-up: score = " in human.stdout and "\n  run 3 of 3: score = " in human.stdout

    # A run started now reuses it: the baseline's evidence carries the calibration.
    paths = start(repo, "p", "--max-experiments", "0", env={"NOISE": "0.003"})
    wait_finished(paths)
    assert codec.read(paths.run_json, RunManifest).calibration["samples"]
    assert results(paths)[0].evidence["calibration"]["commit"] == result["commit"]


def test_validate_a_noisy_measurement_fails_with_one_line(tmp_path: Path) -> None:
    repo = _validate_repo(tmp_path, NOISY_MEASURE)
    proc = expd("validate", "p", "--runs", "8", cwd=repo, env={"NOISE": "1.0"})
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "too noisy" in lines[0], proc.stderr
    assert len(git(repo, "worktree", "list").splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "measure", "needle"),
    [
        (("nope",), NOISY_MEASURE, "no program 'nope'"),
        (("p", "--runs", "1"), NOISY_MEASURE, "--runs must be at least 2"),
        (("p",), "#!/bin/bash\necho 'boom' >&2\nexit 3\n", "measurement 1 of 10 failed"),
    ],
)
def test_validate_refuses_with_one_line(
    tmp_path: Path, args: tuple[str, ...], measure: str, needle: str
) -> None:
    repo = _validate_repo(tmp_path, measure)
    proc = expd("validate", *args, cwd=repo)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_program_toml_sequential_table_round_trips() -> None:
    text = textwrap.dedent(
        """
        metric = "ms"
        direction = "lower"
        [decide]
        policy = "sequential"
        min_effect = 0.03
        min_runs = 3
        max_runs = 20
        alpha = 0.01
        beta = 0.1
        [secondary]
        size = "lower"
        [loop]
        keep_simplifications = true
        [agent]
        command = "./a.sh"
        """
    )
    from daemon.policies.registry import make_policy

    policy = make_policy(parse_program(text, source=Path("program.toml")))
    assert policy.name == "sequential"
    assert (policy.min_effect, policy.min_runs, policy.max_runs) == (0.03, 3, 20)  # type: ignore[attr-defined]
    assert (policy.alpha, policy.beta) == (0.01, 0.1)  # type: ignore[attr-defined]
    assert policy.secondary == {"size": "lower"} and policy.keep_simplifications  # type: ignore[attr-defined]
