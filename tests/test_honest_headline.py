"""The headline is an estimate from unselected runs: the books `daemon.policies.ledger` keeps.

Mostly pure: recorded results are fed to `ledger.follow` (what the recorder does live and on
resume), and the state's headline fields are checked against what the runs say; one run of the
real daemon checks that the fixed policy re-measures its incumbent after a keep.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import msgspec
import pytest

from daemon.policies.ledger import estimate, follow
from daemon.policies.noise import baseline_evidence, hides_gains_note, start_note
from daemon.policies.sequential import SequentialPolicy
from shared.evidence import (
    BaselineEvidence,
    FixedEvidence,
    Interval,
    SequentialEvidence,
)
from shared.programs import parse_program
from shared.schema import LoopConfig, RunState
from tests.repos import make_repo, results, start, wait_finished

BASE = [100.0, 102.0, 98.0, 101.0, 99.0]
NEW = [90.0, 91.0, 89.0, 90.5, 89.5]


def fresh_state(estimates: bool = True) -> RunState:
    s = RunState(direction="lower")
    follow(s, "baseline", BASE, BaselineEvidence(pool=BASE, estimates=estimates))
    return s


def discard(fresh: list[float], pool: list[float], **kw: object) -> SequentialEvidence:
    return SequentialEvidence(fresh_incumbent_samples=fresh, pool=pool, **kw)  # type: ignore[arg-type]


def keep(s: RunState, samples: list[float], effect: float, interval: tuple[float, float]) -> None:
    s.keeps += 1
    ev = SequentialEvidence(
        candidate_samples=samples,
        fresh_incumbent_samples=[101.0],
        effect=effect,
        interval=Interval(*interval),
        pool=[],
    )
    follow(s, "keep", samples, ev)


def test_baseline_is_estimated_from_its_runs_and_the_base_is_no_improvement() -> None:
    s = fresh_state()
    assert s.baseline == pytest.approx(100.0, abs=0.5)
    assert s.best == s.baseline and s.improvement_pct == 0.0 and s.best_runs == 5
    assert s.best_ci is not None and s.best_ci[0] < 100 < s.best_ci[1]
    # Interleaved runs of the base commit count for both sides while it is the incumbent.
    follow(s, "discard", [95.0], discard([100.5, 99.5], [*BASE, 100.5, 99.5]))
    assert len(s.baseline_samples) == 7 and s.best_runs == 7 and s.improvement_pct == 0.0


def test_a_keep_is_shrunk_until_measured_then_estimated_from_fresh_runs_only() -> None:
    s = fresh_state()
    lucky = [80.0, 82.0]  # the runs that won: far better than the commit really is
    keep(s, lucky, 0.12, (0.05, 0.19))
    assert s.pool == [] and s.incumbent_samples == [] and s.best_runs == 0
    assert s.improvement_pct == pytest.approx(12.0)  # the keep's shrunk effect, not 19 %
    assert s.improvement_ci is not None and s.improvement_ci[0] < 12 < s.improvement_ci[1]
    assert s.best == pytest.approx(s.baseline * 0.88)
    # The next decision re-measured the new incumbent: only those runs make `best`.
    follow(s, "discard", [95.0], discard(NEW, NEW))
    assert s.best_runs == len(NEW) and s.incumbent_samples == NEW
    assert s.best == pytest.approx(statistics.median(NEW), abs=0.3)  # not the lucky 81
    assert s.improvement_pct == pytest.approx(10.0, abs=0.6)
    low, high = s.improvement_ci or [math.nan, math.nan]
    assert 6 < low < s.improvement_pct < high < 14
    assert s.best_ci is not None and s.best_ci[0] < s.best < s.best_ci[1]


def test_the_first_keep_takes_back_the_luck_of_the_base_runs_it_was_decided_against() -> None:
    """The first keep's reference was the base commit's runs: a keep is likelier when they looked
    slow, so their share of the keep's excess (measured − shrunk effect) is taken out of them."""
    s = fresh_state()
    before = s.baseline or 0.0
    s.keeps += 1
    cand = [85.0, 86.0, 84.0, 85.0, 85.5]
    ev = SequentialEvidence(
        candidate_samples=cand,
        incumbent_samples=BASE,
        fresh_incumbent_samples=[],
        measured_effect=0.15,
        effect=0.10,
        interval=Interval(0.03, 0.17),
        scale="log",
        pool=[],
    )
    follow(s, "keep", cand, ev)
    # Half the excess log(0.90/0.85) is the base side's (5 runs each side): 2.9 % faster.
    excess = math.log(0.90 / 0.85)
    assert s.baseline_samples == pytest.approx([v * math.exp(-excess / 2) for v in BASE])
    assert s.baseline == pytest.approx(before * math.exp(-excess / 2), rel=1e-3)
    # A later keep's reference was another commit's runs: the base runs stay.
    moved = list(s.baseline_samples)
    keep(s, [70.0, 71.0], 0.1, (0.02, 0.18))
    follow(s, "keep", [70.0], msgspec.structs.replace(ev, candidate_samples=[70.0, 71.0]))
    assert s.baseline_samples == moved


def test_later_interleaved_runs_narrow_the_interval() -> None:
    s = fresh_state()
    keep(s, [80.0, 81.0], 0.1, (0.02, 0.18))
    follow(s, "discard", [95.0], discard(NEW[:2], NEW[:2]))
    wide = s.improvement_ci
    follow(s, "discard", [95.0], discard(NEW[2:] * 3, NEW))
    narrow = s.improvement_ci
    assert wide and narrow and narrow[1] - narrow[0] < wide[1] - wide[0]
    assert s.best_runs == 2 + 9


def test_confirmed_drift_moves_the_baseline_with_the_machine() -> None:
    """The machine got 10 % slower (drift confirmed on fresh runs): the baseline's runs move with
    it, so the improvement stays what the code did, not what the machine did."""
    s = fresh_state()
    keep(s, [80.0, 81.0], 0.1, (0.02, 0.18))
    follow(s, "discard", [95.0], discard(NEW, NEW))
    before = s.improvement_pct
    slower = [v * 1.1 for v in NEW]
    ev = discard(slower, slower, drift="slower", drift_shift=0.1, scale="log")
    follow(s, "discard", [99.0], ev)
    assert s.incumbent_samples == slower  # the runs before the shift no longer count
    assert s.improvement_pct == pytest.approx(before, abs=0.5)
    assert s.baseline == pytest.approx(110.0, abs=1.0)


def test_a_run_from_before_the_estimates_keeps_its_old_meaning() -> None:
    """A baseline without `estimates` (an older run): best is the kept median, no intervals."""
    s = fresh_state(estimates=False)
    s.baseline = s.best = 100.0  # as the loop sets them from the record's metric
    keep(s, [80.0, 82.0], 0.12, (0.05, 0.19))
    follow(s, "discard", [95.0], discard(NEW, [80.0, 82.0]))
    assert s.best == 100.0 and s.improvement_pct is None and s.best_ci is None
    assert s.pool == [80.0, 82.0]


def test_fixed_evidence_feeds_the_headline_too() -> None:
    s = fresh_state()
    s.keeps += 1
    follow(s, "keep", [85.0], FixedEvidence(effect=0.15, pool=[]))
    assert s.improvement_pct == pytest.approx(15.0) and s.improvement_ci is None
    follow(s, "discard", [95.0], FixedEvidence(fresh_incumbent_samples=NEW, pool=NEW))
    assert s.improvement_pct == pytest.approx(10.0, abs=0.6) and s.improvement_ci


def test_estimate_on_raw_values_and_higher_is_better() -> None:
    up = estimate([10.0, 10.2, 9.8], [12.0, 12.1, 11.9], "higher")
    assert up.improvement == pytest.approx(0.2, abs=0.01)
    raw = estimate([-1.0, -1.1, -0.9], [-0.5, -0.6, -0.4], "higher")  # values ≤ 0: raw scale
    assert raw.improvement == pytest.approx(0.5, abs=0.01) and raw.best == pytest.approx(-0.5)
    exact = estimate([5.0, 5.0], [4.0, 4.0], "lower")
    assert exact.improvement == pytest.approx(0.2)
    assert exact.improvement_ci == pytest.approx((0.2, 0.2))
    single = estimate([5.0], [4.0], "lower")  # no pair: no interval
    assert single.improvement_ci is None and single.best_ci is None


# --------------------------------------------------------------------------- noise, stagnation


def test_the_noise_note_says_what_to_change() -> None:
    note = hides_gains_note(0.08, min_effect=0.01, max_runs=12, alpha=0.05, beta=0.3)
    assert note is not None and "hides gains smaller than ~7.1%" in note
    assert "repeat the benchmark 51× inside measure.sh" in note and "min_effect = 0.075" in note
    assert hides_gains_note(0.005, min_effect=0.02, max_runs=12, alpha=0.05, beta=0.3) is None


def test_start_note_comes_from_a_recent_calibration_only() -> None:
    base = (
        'metric = "ms"\ndirection = "lower"\n[decide]\nmin_effect = 0.01\n'
        '[agent]\ncommand = "./a.sh"\n'
    )
    config = parse_program(base, source=Path("program.toml"))
    assert start_note(config, {}) is None
    note = start_note(config, {"noise": {"robust_cv": 0.08, "runs": 9}})
    assert note is not None and note.endswith("[calibration of 9 runs]")
    quiet = start_note(config, {"noise": {"robust_cv": 0.002, "runs": 9}})
    assert quiet is None
    evidence = baseline_evidence(config, "sequential", {}, BASE)
    assert evidence.estimates is True


def test_stagnation_default_lets_a_night_run_run() -> None:
    """At a keep rate of 10 %, 30 non-keeps in a row happen by chance 4 % of the time (10 in a
    row: 35 %, which ended runs after about a dozen experiments)."""
    assert LoopConfig().max_consecutive_discards == 30
    assert 0.9**30 < 0.05 < 0.9**10


def test_policy_defaults_are_the_measured_ones() -> None:
    p = SequentialPolicy("t", "lower")
    assert (p.pool_size, p.incumbent_every, p.refill, p.max_runs) == (24, 4, 4, 12)


def test_the_benchmark_simulates_with_the_daemons_books() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import decisions

    sim = decisions.simulate("sequential", "mixed", 0.05, "t", 30)
    assert len(sim["kept"]) == 30 and sim["runs"] > 30
    assert set(sim) >= {"claimed", "covered", "at_budget", "true"}
    summary = decisions.summarize(
        [sim, decisions.simulate("fixed median-of-5", "neutral", 0.05, "u", 30)]
    )
    assert 0 <= summary["below_start"] <= 1 and summary["runs_per_decision"] > 1


def test_fixed_policy_remeasures_its_incumbent_through_the_daemon(tmp_path: Path) -> None:
    """Every experiment keeps (score 4 → 3 → 2 → 1): each one after a keep measured the new
    incumbent twice, interleaved, and compared with those runs, not the keep's own."""
    decide = 'policy = "fixed"\nrepeats = 2\nmin_effect = 0.01'
    repo = make_repo(tmp_path / "repo", max_experiments=3, decide=decide)
    paths = start(repo, env={"TARGET": "3"})
    final = wait_finished(paths)
    recs = results(paths)
    assert [r.status for r in recs] == ["baseline", "keep", "keep", "keep"]
    assert "fresh_incumbent_samples" not in recs[1].evidence  # the baseline was the reference
    assert recs[2].evidence["fresh_incumbent_samples"] == [3.0, 3.0]
    assert recs[3].evidence["fresh_incumbent_samples"] == [2.0, 2.0]
    assert recs[3].evidence["incumbent_median"] == 2.0
    assert all(r.evidence["pool"] == [] for r in recs[1:])
    assert final.estimates and final.baseline == 4.0
    assert final.best == pytest.approx(1.0) and final.improvement_pct == pytest.approx(75.0)
    assert final.best_runs == 0  # the last keep: its estimate until re-measured


def test_every_place_that_shows_the_headline_shows_its_interval() -> None:
    """The TUI header, the notify command's environment and the status line say the same."""
    from daemon.service.notify import notify_env
    from shared.display import headline_words
    from shared.schema import RunManifest
    from tui.widgets.stats_header import metric_line

    s = fresh_state()
    keep(s, [80.0, 81.0], 0.1, (0.02, 0.18))
    follow(s, "discard", [95.0], discard(NEW, NEW))
    s.metric, s.best_experiment = "score", 1
    low, high = s.improvement_ci or [0.0, 0.0]
    words = headline_words(s.improvement_pct, s.improvement_ci, s.best_runs)
    assert (
        words
        == f"{s.improvement_pct:.1f}% better, 95 % noise interval {low:+.1f} to {high:+.1f} %, 5 runs"
    )
    header = metric_line(s).plain
    assert f"at #1 ({s.improvement_pct:.1f}% better, 95 % noise interval {low:+.1f}" in header
    env = notify_env(RunManifest(run_id="p/1"), s, "/tmp/run")
    assert env["EXPD_IMPROVEMENT_PCT"] == f"{s.improvement_pct:.4g}"
    assert env["EXPD_IMPROVEMENT_CI"] == f"{low:.4g} {high:.4g}"
    assert env["EXPD_BEST"] == f"{s.best:.10g}"
    keep(s, [70.0, 71.0], 0.05, (0.0, 0.1))  # not yet re-measured: said so
    assert headline_words(s.improvement_pct, s.improvement_ci, s.best_runs).endswith(
        "estimated at its keep"
    )
    older = RunState(direction="lower", baseline=10.0, best=8.0, metric="score")
    assert "(20.0% better)" in metric_line(older).plain  # a run from before: no interval
