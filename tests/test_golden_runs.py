"""Run directories written by expd 0.1 (tests/fixtures/runs_v1) still load and rebuild the same.

`state.json` in each fixture is what the live daemon wrote; rebuilding the state from
`results.jsonl` alone (what a resumed daemon does) must agree with it, and continue with the same
incumbent pool.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from daemon.service.recovery import recover
from shared import codec, evidence
from shared.evidence import BaselineEvidence, FixedEvidence, SequentialEvidence
from shared.paths import RunPaths
from shared.schema import ResultRecord, RunManifest, RunState

RUNS = Path(__file__).parent / "fixtures" / "runs_v1"

POOLS = {
    "sequential": [115.2, 117.6, 127.2, 114.0, 118.8, 124.8],
    "sequential_exact": [1.0, 1.0, 1.0, 1.0],
    "sequential_late_note": [100.0, 105.0, 96.0, 103.0, 98.0, 95.0, 104.0, 96.5],
    "fixed": [1.0, 1.0],
}
"""The pool each run's next decision compares against (the last decided result's)."""

COUNTED = (
    "experiment",
    "keeps",
    "discards",
    "crashes",
    "measurement_failures",
    "consecutive_non_keeps",
    "baseline",
    "best",
    "best_experiment",
    "incumbent_commit",
    "cost_usd",
    "tokens",
    "results_count",
    "drift",
    "drift_at_experiment",
    "noise",
)


@pytest.fixture(params=sorted(POOLS))
def run(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, RunPaths]:
    """A copy of one golden run (recovery may repair files in place)."""
    name = str(request.param)
    shutil.copytree(RUNS / name, tmp_path / name)
    return name, RunPaths(tmp_path / name)


def test_recovery_rebuilds_what_the_live_daemon_wrote(run: tuple[str, RunPaths]) -> None:
    name, paths = run
    live = codec.read(paths.state_json, RunState)
    manifest = codec.read(paths.run_json, RunManifest)
    recovered = recover(paths, manifest)
    assert recovered.notes == [] and recovered.interrupted is None
    rebuilt = recovered.recorder.state
    for field in COUNTED:
        assert getattr(rebuilt, field) == getattr(live, field), field
    assert rebuilt.pool == POOLS[name]


def _lines(name: str) -> list[bytes]:
    return (RUNS / name / "results.jsonl").read_bytes().splitlines()


def test_every_evidence_loads_typed_and_writes_back_the_same_bytes() -> None:
    """A line's evidence typed and written again is what the daemon wrote, key order included
    (for a noise note written before `noise_hides_gains` existed, plus that flag)."""
    kinds = set()
    for name in POOLS:
        for line in _lines(name):
            record = codec.decode(line, ResultRecord, source=name)
            typed = evidence.of(record)
            kinds.add(type(typed).__name__)
            if record.status == "baseline":
                assert isinstance(typed, BaselineEvidence) and typed.noise
            elif record.status == "crash":
                assert typed is None and record.evidence == {}
            else:
                assert isinstance(typed, SequentialEvidence | FixedEvidence)
                assert typed.pool, "every decided result records the pool it left"
            stored = evidence.dump(typed)
            if isinstance(typed, SequentialEvidence) and typed.note:
                assert stored.pop("noise_hides_gains") is ("hides" in typed.note)
            assert msgspec.json.encode(stored) == msgspec.json.encode(record.evidence)
    assert kinds == {"BaselineEvidence", "SequentialEvidence", "FixedEvidence", "NoneType"}


def test_old_noise_notes_still_warn_and_only_when_they_say_the_noise_hides_gains() -> None:
    notes = {}
    for name in ("sequential", "sequential_exact", "sequential_late_note"):
        for line in _lines(name):
            record = codec.decode(line, ResultRecord, source=name)
            typed = evidence.of(record)
            if isinstance(typed, SequentialEvidence) and typed.note:
                notes[typed.note] = evidence.hides_gains(typed) == typed.note
    assert notes["every run measured the same: no noise"] is False
    assert notes["noise 4.2 % hides gains below 4.2 %"] is True


def test_the_fixtures_cover_every_outcome() -> None:
    statuses = set()
    for name in POOLS:
        for line in (RUNS / name / "results.jsonl").read_bytes().splitlines():
            statuses.add(codec.decode(line, dict, source=name)["status"])
    assert statuses == {"baseline", "keep", "discard", "crash", "measurement_failure"}
