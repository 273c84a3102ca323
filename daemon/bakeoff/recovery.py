"""Rebuilding a bakeoff run's state at daemon start: attempts.jsonl is the record, state.json a
cache of it plus what only the state knows (acknowledged requests, pending replays, how often an
attempt was interrupted).

Only what the daemon wrote is trusted: with the run's key, an attempts line or a state.json whose
seal does not verify is dropped with a note (attempts.jsonl is rewritten without such lines). An
attempt the previous daemon had running and never recorded was interrupted: it is counted, its
leftover processes are killed by the caller, and it runs again once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from daemon.service.store import repair_results
from shared import codec, seal
from shared.atomic import write_atomic
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.schema import (
    AttemptRecord,
    BakeoffManifest,
    BakeoffState,
    RunningAttempt,
    attempt_key,
)
from shared.errors import ContractError
from shared.tail import read_complete_lines

INTERRUPTED_TWICE = "interrupted twice: the daemon died during this attempt twice"


@dataclass
class Recovered:
    state: BakeoffState
    records: list[AttemptRecord]
    """Every trusted line of attempts.jsonl, in order."""
    interrupted: list[RunningAttempt]
    """Attempts a dead daemon had running and never recorded (already counted in the state)."""
    notes: list[str]


def load_records(
    paths: BakeoffRunPaths, key: bytes | None
) -> tuple[list[AttemptRecord], list[str]]:
    """The recorded attempts; with `key`, lines whose seal does not verify are dropped for good."""
    notes = []
    if cut := repair_results(paths.attempts):
        notes.append(f"dropped a torn last line of attempts.jsonl ({cut} bytes)")
    lines = read_complete_lines(paths.attempts)
    trusted = [line for line in lines if key is None or seal.unseal(key, line) is not None]
    if len(trusted) < len(lines):
        notes.append(
            f"dropped {len(lines) - len(trusted)} attempts line(s) expd did not write "
            "(no valid seal); they are not trusted"
        )
        write_atomic(paths.attempts, b"".join(line + b"\n" for line in trusted))
    decoder = msgspec.json.Decoder(AttemptRecord)
    records = []
    for line in trusted:
        try:
            records.append(decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            notes.append(f"skipped an unreadable attempts line ({exc})")
    return records, notes


def read_state(paths: BakeoffRunPaths, key: bytes | None) -> BakeoffState | None:
    """The previous daemon's state.json; ContractError when unreadable or not sealed by it."""
    if not paths.state_json.exists():
        return None
    data = paths.state_json.read_bytes()
    if key is not None and seal.unseal(key, data) is None:
        raise ContractError("state.json: not written by expd (no valid seal)")
    return codec.decode(data, BakeoffState, source=paths.state_json)


def initial_state(manifest: BakeoffManifest, now: float) -> BakeoffState:
    return BakeoffState(
        run_id=manifest.run_id,
        name=manifest.name,
        total=manifest.spec.total(),
        started_at=now,
        updated_at=now,
        sandbox=manifest.sandbox,
    )


def _unrecorded(paths: BakeoffRunPaths, records: list[AttemptRecord]) -> list[RunningAttempt]:
    """Without a trusted state: attempts whose prompt was written (an attempt's first file) but
    that have no record newer than it."""
    newest = {r.key: r.started_at for r in records}
    found = []
    for prompt in paths.attempts_dir.glob("*/*/prompt.md"):
        variant, _, number = prompt.parent.name.rpartition("-")
        if not number.isdigit():
            continue
        running = RunningAttempt(
            task=prompt.parent.parent.name,
            variant=variant,
            attempt=int(number),
            started_at=prompt.stat().st_mtime,
        )
        if newest.get(running.key, 0.0) < running.started_at - 1.0:
            found.append(running)
    return found


def recover(paths: BakeoffRunPaths, manifest: BakeoffManifest, key: bytes | None) -> Recovered:
    notes: list[str] = []
    try:
        old = read_state(paths, key)
    except ContractError as exc:
        old = None
        notes.append(f"state.json was unreadable and is rebuilt from attempts.jsonl ({exc})")
    records, more = load_records(paths, key)
    notes += more
    now = time.time()
    state = initial_state(manifest, now)
    recorded_cost = sum(r.cost_usd for r in records)
    recorded_tokens = sum(r.tokens for r in records)
    state.cost_usd, state.tokens = recorded_cost, recorded_tokens
    if old is not None:
        resumed = bool(records or old.running or old.phase != "starting")
        state.acked = list(old.acked)
        state.started_at = old.started_at or now
        state.resumes = old.resumes + (1 if resumed else 0)
        state.interrupted = dict(old.interrupted)
        # Streamed usage of attempts that never got recorded still counts against the budget.
        state.cost_usd = max(old.cost_usd, recorded_cost)
        state.tokens = max(old.tokens, recorded_tokens)
        running = list(old.running)
    else:
        state.resumes = 1 if records else 0
        running = _unrecorded(paths, records)
    newest = {}
    for record in records:
        newest[record.key] = max(newest.get(record.key, 0.0), record.started_at)
    interrupted = [r for r in running if newest.get(r.key, -1.0) < r.started_at]
    for attempt in interrupted:
        state.interrupted[attempt.key] = state.interrupted.get(attempt.key, 0) + 1
    recorded = {r.key for r in records}
    replays = list(old.replays) if old is not None else []
    state.replays = [
        r for r in replays if attempt_key(r.task, r.variant, r.attempt) not in recorded
    ]
    return Recovered(state=state, records=records, interrupted=interrupted, notes=notes)
