"""Driving a policy session to its decision: the loop the daemon and `expd finalize` share.

The session asks for measurements; `measure(side)` takes one and returns its metrics, or None when
it failed. Which commit is measured, and switching between them, is the caller's: the driver only
knows sides. After a failure nothing more is measured: the session is told of the failure for
each further run it asks for, so it ends as a measurement failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from daemon.policies.base import Decision, Measure, Session, Side

MeasureSide = Callable[[Side], Awaitable[dict[str, float] | None]]


async def drive(session: Session, measure: MeasureSide) -> Decision:
    """Measure what `session` asks for until it decides; returns the decision."""
    failed = False
    while isinstance(step := session.next(), Measure):
        metrics = None if failed else await measure(step.side)
        failed = metrics is None
        session.observe(step.side, metrics)
    return step
