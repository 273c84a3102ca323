"""Snapshots of the run dashboard (fixed data, frozen clock; Textual pinned in the test extra).

Update after an intended change of looks with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs under `tests/__snapshots__/` before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from shared.liveness import Probe
from tests.tui_fakes import PID, make_app, standard_messages
from tui.messages import LivenessChanged

SnapCompare = Callable[..., bool]


def test_dashboard_100x30(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    assert snap_compare(app, terminal_size=(100, 30))


def test_dashboard_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24))


def test_dashboard_wide_with_experiment_open(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)

    async def select(pilot: Pilot[Any]) -> None:
        await pilot.press("down", "down")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(140, 34), run_before=select)


def test_hung_daemon_banner_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path, *standard_messages(), LivenessChanged(Probe("hung", PID, 42.0)))
    assert snap_compare(app, terminal_size=(80, 24))


def test_stop_confirmation_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), press=["s"])


def test_max_experiments_prompt_with_error_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), press=["m", "x", "enter"])
