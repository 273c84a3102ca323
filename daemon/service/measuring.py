"""Measuring in the run's measurement tree: the build, the baseline's runs, and a policy session's
runs.

The tree is expd's, checked out at exactly the commit measured (the agent's tree never is). A
series starts clean (untracked files removed, ignored ones such as the build's caches kept), then
the build runs. When the session asks for the incumbent, its commit's files replace the candidate's
for the run (the build's output stays, as within one series), and the candidate's come back before
the next candidate run, so slow drift of the machine hits both sides alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from daemon.ops.git.eval_tree import EvalTree
from daemon.ops.git.store import TreeError
from daemon.ops.measure import Measurer, Sample
from daemon.policies.base import Decision, Session, Side
from daemon.policies.driver import drive
from daemon.service import faults
from daemon.service.store import RunStore


class MeasurementLost(Exception):
    """The machine running a measurement went away (a lost Ray worker): nothing was learnt about
    the commit, so its experiment is an interrupted crash, not a measurement failure, and its lane
    goes on. `reason` is what the result records; `detail` what was seen."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason} ({detail})")
        self.reason, self.detail = reason, detail


@dataclass
class Measuring:
    store: RunStore
    measurer: Measurer
    tree: EvalTree
    track: Callable[[int], None]
    """Told each child's process group, so a resumed daemon can kill leftovers."""

    async def build(self) -> str | None:
        """Run the program's build, if it has one; the error when it failed."""
        if self.measurer.build_command is None:
            return None
        self.store.detail("building")
        sample = await self.measurer.build(self.track)
        return None if sample.ok else sample.error

    async def baseline(self, commit: str, runs: int, samples: list[Sample]) -> str | None:
        """Build, then measure `commit` `runs` times into `samples`; the first failure."""
        try:
            await self.tree.checkout(commit)
        except TreeError as exc:
            return str(exc)
        failure = await self.build()
        for i in range(runs):
            if failure:
                break
            self.store.detail(f"measuring {i + 1}/{runs}")
            try:
                sample = await self._once(0, "incumbent")
            except MeasurementLost as exc:
                return str(exc)
            faults.point("baseline_measured", 0)
            if not sample.ok:
                failure = sample.error
            samples.append(sample)
        return failure

    async def decide(self, n: int, session: Session, incumbent: str, candidate: str) -> Decision:
        """Build the candidate (already checked out, clean), then measure what `session` asks for
        until it decides. MeasurementLost when a run's machine went away."""
        failure = await self.build()
        count = 0
        on_incumbent = False

        async def measure(side: Side) -> dict[str, float] | None:
            nonlocal count, on_incumbent, failure
            if failure:
                return None
            want_incumbent = side == "incumbent"
            if want_incumbent != on_incumbent:
                commit = incumbent if want_incumbent else candidate
                try:
                    await self.tree.checkout(commit, clean=False)
                except TreeError as exc:
                    failure = str(exc)
                    return None
                on_incumbent = want_incumbent
            count += 1
            if count > 1 or self.measurer.build_command:
                self.store.detail(f"measuring {side} run {count}")
            sample = await self._once(n, side)
            faults.point("measured", n)
            if not sample.ok:
                failure = sample.error
                return None
            return sample.metrics

        decision = await drive(session, measure)
        if decision.status == "measurement_failure" and failure:
            return dataclasses.replace(decision, keep=False, reason=failure, metric=None)
        return decision

    async def _once(self, n: int, side: Side) -> Sample:
        try:
            sample = await self.measurer.once(self.track)
        except MeasurementLost as exc:
            self.store.event("measurement", n, side=side, ok=False, metrics={}, error=str(exc))
            raise
        self.store.event(
            "measurement", n, side=side, ok=sample.ok, metrics=sample.metrics, error=sample.error
        )
        return sample
