"""Lanes in plain text: the lanes table of `expd status` and the lane cell of a result (shared by
`expd results` and `expd report`). A run without lanes shows none of it."""

from __future__ import annotations

from shared.display import DASH, fmt_duration, one_line
from shared.schema import ResultRecord
from shared.status import LaneStatus

LANES_HEADER = ["LANE", "PHASE", "EXPERIMENT", "ELAPSED", "NODE", "PAUSED"]


def has_lanes(records: list[ResultRecord]) -> bool:
    """Whether the run has lanes (its experiments say which lane made them)."""
    return any(r.lane is not None for r in records)


def lane_cell(rec: ResultRecord) -> str:
    """The lane that made `rec` (a dash: the baseline, or a result from before lanes)."""
    return DASH if rec.lane is None else str(rec.lane)


def lane_cells(lane: LaneStatus, now: float, *, ended_at: float | None = None) -> list[str]:
    """One lane, in `LANES_HEADER` order; the elapsed time stops at `ended_at` (the run ended)."""
    at = now if ended_at is None else ended_at
    return [
        str(lane.lane),
        one_line(lane.phase) or DASH,
        DASH if lane.experiment is None else f"#{lane.experiment}",
        DASH if lane.since is None else fmt_duration(at - lane.since),
        one_line(lane.node) or DASH,
        one_line(lane.paused) or DASH,
    ]


def lanes_rows(
    lanes: list[LaneStatus], now: float, *, ended_at: float | None = None
) -> list[list[str]]:
    """Every lane's cells, in lane order."""
    return [
        lane_cells(lane, now, ended_at=ended_at) for lane in sorted(lanes, key=lambda x: x.lane)
    ]
