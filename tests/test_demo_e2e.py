"""`expd demo --no-tui` end to end: the real CLI, the real daemon, the real tune agent."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.repos import expd


def test_demo_finishes_ten_experiments_and_improves(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    began = time.monotonic()
    proc = expd("demo", "--no-tui", "--dir", str(target), cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - began
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 90, f"the demo took {elapsed:.1f}s"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "max_experiments" in proc.stdout

    status = json.loads(expd("status", "--json", cwd=target).stdout)
    assert status["experiment"] == 10
    assert status["termination_reason"] == "max_experiments"
    assert status["keeps"] >= 1
    assert status["best"] < status["baseline"] * 0.9  # bytes, lower is better: ≥ 10 % smaller

    results = json.loads(expd("results", "--json", cwd=target).stdout)
    assert [r["experiment"] for r in results] == list(range(11))
    assert all(r["description"].startswith("tune: ") for r in results[1:])
