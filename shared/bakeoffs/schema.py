"""The files of a bakeoff run, as structs.

Like a program run's, every file the daemon writes decodes leniently (defaults everywhere, unknown
fields ignored). `bakeoff.toml` is typed by people and checked strictly in `shared.bakeoffs.config`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.schema import SCHEMA_VERSION, DiffStat

ATTEMPT_STATUSES = ("passed", "failed", "error", "timeout", "cancelled")
FINISHED = frozenset({"passed", "failed", "error", "timeout"})
"""Statuses a resume never runs again (`cancelled` ones, cut short by an abort, are re-run)."""
PHASES = ("starting", "running", "stopping", "complete", "crashed")
CRITERION_TYPES = ("test_pass", "command", "file_exists", "contains", "manual", "metric")
TERMINATION_REASONS = ("finished", "budget", "stopped", "aborted", "error")


class _Lenient(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base for files expd writes: unknown fields ignored, every field has a default."""


def attempt_key(task: str, variant: str, attempt: int) -> str:
    """`task/variant/attempt`: ids are checked not to contain `/`."""
    return f"{task}/{variant}/{attempt}"


# --------------------------------------------------------------------------- the resolved spec


class Criterion(_Lenient):
    """One criterion of a task, as resolved at start (see docs/bakeoffs.md)."""

    type: str = "command"
    target: str = ""
    """The command, path, text or question the criterion names."""
    weight: float = 1.0
    field: str | None = None
    """`metric`: the metric's field (None: the only one printed)."""
    direction: str = "higher"
    """`metric`: which way is better."""
    min: float | None = None
    max: float | None = None
    """`metric`: the value passes only inside these bounds (none: passes when it is measured)."""
    timeout_s: float | None = None
    """Commands: their own timeout (None: the bakeoff's `criteria_timeout`)."""


class TaskSpec(_Lenient):
    id: str = ""
    prompt: str = ""
    base: str = ""
    """The commit the attempts start from (resolved from the task's `base` at start)."""
    base_ref: str = ""
    """`base` as written (empty: the HEAD at start)."""
    criteria: list[Criterion] = []
    timeout_s: float | None = None
    """The task's own per-attempt timeout (None: the bakeoff's)."""
    source: str = ""
    """Where the task was defined (bakeoff.toml or a file of `tasks_dir`)."""


class VariantSpec(_Lenient):
    id: str = ""
    prompt_prefix: str = ""
    agent: dict[str, Any] = {}
    """The variant's `[agent]` table (the bakeoff's `[agent]` defaults merged in)."""


class BakeoffSpec(_Lenient):
    attempts: int = 1
    concurrency: int = 2
    timeout_s: float = 1800.0
    max_cost_usd: float | None = None
    criteria_timeout_s: float = 600.0
    criteria_sandbox: str = "auto"
    tasks: list[TaskSpec] = []
    variants: list[VariantSpec] = []

    def total(self) -> int:
        return len(self.tasks) * len(self.variants) * self.attempts


class BakeoffManifest(_Lenient):
    """`run.json` of a bakeoff run: written once by `expd bakeoff start`."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["bakeoff"] = "bakeoff"
    run_id: str = ""
    name: str = ""
    repo: str = ""
    bakeoff_dir: str = ""
    base_commit: str = ""
    """The HEAD at start (the base of tasks that name none)."""
    created_at: float = 0.0
    expd_version: str = ""
    spec: BakeoffSpec = msgspec.field(default_factory=BakeoffSpec)
    sandbox: str = ""
    """The sandbox `expd bakeoff start` found for the agents (bwrap, landlock or none)."""


class ManifestKind(_Lenient):
    """Enough of any `run.json` to tell a bakeoff run from a program run."""

    kind: str = "program"


# --------------------------------------------------------------------------- daemon-written


class CriterionResult(_Lenient):
    type: str = ""
    target: str = ""
    passed: bool | None = None
    """None: not decided (a `manual` criterion not marked yet)."""
    details: str = ""
    value: float | None = None
    """`metric`: the value measured."""
    weight: float = 1.0
    seconds: float = 0.0


class AttemptRecord(_Lenient):
    """One line of `attempts.jsonl`: a finished (or cancelled) attempt. Appended, never rewritten;
    a later line for the same key (a re-run of a cancelled or errored attempt) supersedes it."""

    task: str = ""
    variant: str = ""
    attempt: int = 1
    status: str = ""
    score: float | None = None
    """The weighted share of decided criteria passed (None: nothing decided yet)."""
    criteria: list[CriterionResult] = []
    cost_usd: float = 0.0
    tokens: int = 0
    duration_s: float = 0.0
    """The agent's time."""
    criteria_s: float = 0.0
    base: str = ""
    commit: str | None = None
    """What the criteria ran on: the attempt's commit, or the base when it changed nothing."""
    ref: str | None = None
    """The ref that pins the attempt's commit in the user's repository (None: no change)."""
    changed: bool = False
    diff: DiffStat = msgspec.field(default_factory=DiffStat)
    error: str | None = None
    error_class: str | None = None
    """A provider failure's class (auth, quota, rate_limit, transient, other)."""
    answer: str = ""
    """The agent's final answer (what `contains:` looks in), cut to a few KiB."""
    started_at: float = 0.0
    finished_at: float = 0.0
    replay_of: str | None = None
    """`task/variant/attempt` this attempt replays with another variant (not ranked)."""
    reruns: int = 0
    """How often it was started again after an interruption."""

    @property
    def key(self) -> str:
        return attempt_key(self.task, self.variant, self.attempt)


class RunningAttempt(_Lenient):
    task: str = ""
    variant: str = ""
    attempt: int = 1
    started_at: float = 0.0
    stage: str = ""
    """agent | criteria"""
    pgid: int | None = None
    slot: int = 0
    replay_of: str | None = None

    @property
    def key(self) -> str:
        return attempt_key(self.task, self.variant, self.attempt)


class Replay(_Lenient):
    """A replay asked for (`expd bakeoff replay`), kept in the state until it is recorded."""

    task: str = ""
    variant: str = ""
    """The variant that runs it."""
    attempt: int = 1
    """Its attempt number (after the variant's own)."""
    of: str = ""
    """The original attempt's key."""
    agent: dict[str, Any] = {}
    prompt_prefix: str = ""


class BakeoffState(_Lenient):
    """`state.json` of a bakeoff run: replaced atomically on every change."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["bakeoff"] = "bakeoff"
    run_id: str = ""
    name: str = ""
    phase: str = "starting"
    detail: str = ""
    message: str = ""
    total: int = 0
    done: int = 0
    running: list[RunningAttempt] = []
    interrupted: dict[str, int] = {}
    """Attempt key → how often a daemon died while it ran."""
    replays: list[Replay] = []
    cost_usd: float = 0.0
    tokens: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    termination_reason: str | None = None
    acked: list[str] = []
    resumes: int = 0
    sandbox: str = ""


class Mark(_Lenient):
    """One line of `marks.jsonl` (written by `expd bakeoff mark`): a verdict on a manual
    criterion. The newest mark of a criterion wins."""

    task: str = ""
    variant: str = ""
    attempt: int = 1
    criterion: int = 0
    """Index in the task's criteria."""
    passed: bool = False
    note: str = ""
    at: float = 0.0

    @property
    def key(self) -> str:
        return attempt_key(self.task, self.variant, self.attempt)
