"""What a bakeoff daemon has to run: the matrix's attempts not finished yet, task-major (for each
task, each attempt number, each variant) so the variants progress evenly, and the replays asked
for. Pure functions over the spec and the records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.bakeoffs.paths import check_id
from shared.bakeoffs.schema import (
    FINISHED,
    AttemptRecord,
    BakeoffSpec,
    Replay,
    TaskSpec,
    attempt_key,
)
from shared.errors import UserError
from shared.schema import AgentConfig

RETRIED = frozenset({"error", "timeout"})
"""What a `retry` request (`expd bakeoff resume --retry-errors`) runs again."""


@dataclass(frozen=True)
class Job:
    """One attempt to run: the task, the variant's agent table and prompt prefix, its number."""

    task: TaskSpec
    variant: str
    attempt: int
    agent: dict[str, Any] = field(default_factory=dict)
    prompt_prefix: str = ""
    replay_of: str | None = None

    @property
    def key(self) -> str:
        return attempt_key(self.task.id, self.variant, self.attempt)

    @property
    def prompt(self) -> str:
        return self.prompt_prefix + self.task.prompt


def matrix_jobs(
    spec: BakeoffSpec, latest: dict[str, AttemptRecord], *, retry: bool = False
) -> list[Job]:
    """The matrix's attempts whose newest record is not finished (with `retry`, errors and
    timeouts too), in task-major order."""
    out = []
    for task in spec.tasks:
        for n in range(1, spec.attempts + 1):
            for variant in spec.variants:
                record = latest.get(attempt_key(task.id, variant.id, n))
                status = record.status if record is not None else ""
                if status in FINISHED and not (retry and status in RETRIED):
                    continue
                out.append(Job(task, variant.id, n, variant.agent, variant.prompt_prefix))
    return out


def retry_jobs(spec: BakeoffSpec, latest: dict[str, AttemptRecord]) -> list[Job]:
    """The matrix's attempts whose newest record is an error or a timeout."""
    return [
        job
        for job in matrix_jobs(spec, latest, retry=True)
        if (r := latest.get(job.key)) is not None and r.status in RETRIED
    ]


def replay_job(spec: BakeoffSpec, replay: Replay) -> Job | None:
    task = next((t for t in spec.tasks if t.id == replay.task), None)
    if task is None:
        return None
    return Job(task, replay.variant, replay.attempt, replay.agent, replay.prompt_prefix, replay.of)


def next_number(
    spec: BakeoffSpec, keys: Iterable[tuple[str, str, int]], task: str, variant: str
) -> int:
    """1 + the highest attempt of (`task`, `variant`) so far: recorded, pending, or one the matrix
    will still run (a variant of the run has numbers 1…attempts reserved)."""
    highest = spec.attempts if any(v.id == variant for v in spec.variants) else 0
    for t, v, n in keys:
        if t == task and v == variant:
            highest = max(highest, n)
    return highest + 1


class Rejected(Exception):
    """A replay request that cannot run (the message says why)."""


def new_replay(
    spec: BakeoffSpec,
    latest: dict[str, AttemptRecord],
    pending: list[Replay],
    value: Any,
) -> Replay:
    """The replay a `replay` request asks for: `value` is {task, variant, attempt, as_variant,
    agent?, prompt_prefix?}; the original must be recorded."""
    if not isinstance(value, dict):
        raise Rejected("a replay needs task, variant, attempt and as_variant")
    task, variant, number = value.get("task"), value.get("variant"), value.get("attempt")
    other = value.get("as_variant")
    if not (isinstance(task, str) and isinstance(variant, str) and isinstance(other, str)):
        raise Rejected("a replay needs task, variant, attempt and as_variant")
    if isinstance(number, bool) or not isinstance(number, int):
        raise Rejected(f"attempt must be a number, not {number!r}")
    original = attempt_key(task, variant, number)
    if original not in latest:
        raise Rejected(f"attempt {original} is not recorded (yet)")
    if not any(t.id == task for t in spec.tasks):
        raise Rejected(f"task {task!r} is not in this run")
    try:
        check_id(other, "variant id")
    except UserError as exc:
        raise Rejected(str(exc)) from None
    agent = value.get("agent")
    prefix = value.get("prompt_prefix")
    known = next((v for v in spec.variants if v.id == other), None)
    if agent is None:
        if known is None:
            raise Rejected(f"variant {other!r} is not in this run, and no agent table came with it")
        agent = known.agent
        prefix = known.prompt_prefix if prefix is None else prefix
    if not isinstance(agent, dict):
        raise Rejected("agent must be a table")
    try:
        config = msgspec.convert(agent, AgentConfig)
    except msgspec.ValidationError as exc:
        raise Rejected(f"variant {other!r}: {exc}") from None
    if config.kind == "tune":
        raise Rejected("agent kind 'tune' cannot do tasks")
    if prefix is not None and not isinstance(prefix, str):
        raise Rejected("prompt_prefix must be a string")
    keys = [(r.task, r.variant, r.attempt) for r in latest.values()]
    keys += [(r.task, r.variant, r.attempt) for r in pending]
    return Replay(
        task=task,
        variant=other,
        attempt=next_number(spec, keys, task, other),
        of=original,
        agent=dict(agent),
        prompt_prefix=prefix or "",
    )
