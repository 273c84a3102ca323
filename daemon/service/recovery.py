"""Rebuilding a run's state at daemon start: results are the record, state.json is a cache.

Half-finished work is normalised, never silently resumed: an experiment that was in flight when the
previous daemon died is recorded once as `crash` ("interrupted"), its leftover processes are killed,
and the worktree goes back to the last kept commit.

Only what the daemon wrote is trusted: with the run's key, a results line or a state.json whose
seal does not verify is dropped with a note (results.jsonl is rewritten without such lines).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from daemon.ops.measure import MARK_VAR, run_mark
from daemon.service.recorder import Recorder
from daemon.service.store import RunStore, repair_results
from shared import codec, seal
from shared.arms import Arm, arms_of
from shared.atomic import write_atomic
from shared.errors import ContractError
from shared.paths import RunPaths
from shared.redact import NONE, Redactor
from shared.schema import ArmStats, InFlight, ProgramConfig, ResultRecord, RunManifest, RunState
from shared.tail import read_complete_lines


@dataclass
class Recovered:
    recorder: Recorder
    """Its store holds the rebuilt state; its results are the recorded ones."""
    interrupted: InFlight | None
    notes: list[str]
    lanes: list[tuple[int | None, InFlight]] = field(default_factory=list)
    """With lanes: every experiment a dead daemon left unrecorded, with its lane (None: not
    known, state.json was lost), in number order."""


class KeyLost(Exception):
    """The run's results are sealed but its key is gone: nothing in them can be trusted."""


def open_key(paths: RunPaths, record: Path | None = None) -> bytes | None:
    """The run's key; a run that has recorded nothing yet gets one, a run from before seals none.

    Raises `KeyLost` when sealed lines exist in the run's record (`results.jsonl`, or `record`)
    without a (readable) key.
    """
    key = seal.load_key(paths)
    if key is not None:
        return key
    lines = read_complete_lines(record or paths.results)
    if any(seal.is_sealed(line) for line in lines):
        raise KeyLost(
            f"{seal.key_path(paths).name} is missing or unreadable, so the results of this run "
            "cannot be verified; start a new run"
        )
    if lines:
        return None  # recorded before seals: loads, and goes on, as before
    seal.key_path(paths).unlink(missing_ok=True)  # unreadable and nothing sealed with it
    return seal.create_key(paths)


def load_results(paths: RunPaths, key: bytes | None = None) -> tuple[list[ResultRecord], list[str]]:
    """The recorded results; with `key`, lines whose seal does not verify are dropped for good."""
    notes = []
    cut = repair_results(paths.results)
    if cut:
        notes.append(f"dropped a torn last line of results.jsonl ({cut} bytes)")
    decoder = msgspec.json.Decoder(ResultRecord)
    results: list[ResultRecord] = []
    seen: set[int] = set()
    lines = read_complete_lines(paths.results)
    trusted = [line for line in lines if key is None or seal.unseal(key, line) is not None]
    if len(trusted) < len(lines):
        dropped = len(lines) - len(trusted)
        notes.append(
            f"dropped {dropped} results line(s) expd did not write (no valid seal); "
            "they are not trusted"
        )
        write_atomic(paths.results, b"".join(line + b"\n" for line in trusted))
    for line in trusted:
        try:
            record = decoder.decode(line)
        except msgspec.DecodeError as exc:
            notes.append(f"skipped an unreadable results line ({exc})")
            continue
        if record.experiment in seen:
            notes.append(f"skipped a duplicate result for experiment {record.experiment}")
            continue
        seen.add(record.experiment)
        results.append(record)
    return results, notes


def kill_leftovers(run_dir: Path, pgid: int | None, roots: tuple[Path, ...]) -> int:
    """Kill what a dead daemon's agent or measurement left running.

    Every child expd starts carries `EXPD_RUN_DIR` (the agent) or `EXPD_RUN_MARK` (a measurement,
    which is not told where the run directory is) in its environment, which survives `cd` and new
    sessions, so that (not the reusable pid) identifies them; the recorded process group is a
    second net for children that scrubbed their environment.
    """
    markers = (f"EXPD_RUN_DIR={run_dir}".encode(), f"{MARK_VAR}={run_mark(run_dir)}".encode())
    me = os.getpid()
    killed = 0
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except (OSError, IndexError, ValueError):
            continue
        if any(m in environ for m in markers) or (
            pgid and group == pgid and _cwd_inside(entry, roots)
        ):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def _cwd_inside(entry: Path, roots: tuple[Path, ...]) -> bool:
    try:
        cwd = Path(os.readlink(entry / "cwd"))
    except OSError:
        return False
    return any(cwd.is_relative_to(root.resolve()) for root in roots)


def unrecorded_experiment(paths: RunPaths, recorded: set[int]) -> InFlight | None:
    """An experiment that began (its prompt is written first) but has no result.

    state.json normally names it; when that is lost (unreadable, or the daemon died before
    saving), its number must still not be reused.
    """
    latest: Path | None = None
    for prompt in paths.prompts_dir.glob("[0-9][0-9][0-9][0-9].md"):
        if prompt.stem.isdigit() and (latest is None or prompt.stem > latest.stem):
            latest = prompt
    if latest is None:
        return None
    number = int(latest.stem)
    if number in recorded or number < max(recorded, default=0):
        return None
    try:
        started = latest.stat().st_mtime
    except OSError:
        started = 0.0
    return InFlight(experiment=number, started_at=started)


def manifest_arms(manifest: RunManifest) -> list[Arm]:
    """The run's arms, from the configuration `expd start` froze into the manifest."""
    if not manifest.config.get("arms"):
        return []
    return arms_of(msgspec.convert(manifest.config, ProgramConfig), source="run.json")


def initial_state(
    manifest: RunManifest, *, now: float, old: RunState | None = None, resumed: bool = False
) -> RunState:
    """The state a daemon starts from, before any result is counted into it.

    From the manifest (the incumbent is the base commit until a result says otherwise), plus what
    the user changed on an earlier daemon of the run (the experiment limit, guidance, acknowledged
    requests) and when the run started. Every arm starts unpaused, with nothing counted: the
    results rebuild its statistics, and a new daemon may reach a provider the last one could not.
    """
    return RunState(
        arm_stats=[ArmStats(id=a.id) for a in manifest_arms(manifest)],
        run_id=manifest.run_id,
        program=manifest.program,
        metric=str(manifest.config.get("metric", "")),
        direction=str(manifest.config.get("direction", "lower")),
        max_experiments=old.max_experiments if old else manifest.max_experiments,
        incumbent_commit=manifest.base_commit,
        started_at=old.started_at if old and old.started_at else now,
        updated_at=now,
        acked=list(old.acked) if old else [],
        guidance=old.guidance if old else "",
        resumes=old.resumes + 1 if old and resumed else 0,
    )


def read_state(paths: RunPaths, key: bytes | None) -> RunState | None:
    """The previous daemon's state.json; raises ContractError if unreadable or not sealed by it."""
    if key is None or not paths.state_json.exists():
        return codec.read_optional(paths.state_json, RunState)
    data = paths.state_json.read_bytes()
    if seal.unseal(key, data) is None:
        raise ContractError("state.json: not written by expd (no valid seal)")
    return codec.decode(data, RunState, source=paths.state_json)


def recover(
    paths: RunPaths, manifest: RunManifest, key: bytes | None = None, redactor: Redactor = NONE
) -> Recovered:
    """The state rebuilt from results.jsonl, and the experiment a dead daemon left unrecorded."""
    notes: list[str] = []
    try:
        old = read_state(paths, key)
    except ContractError as exc:
        old = None
        notes.append(f"state.json was unreadable and is rebuilt from results.jsonl ({exc})")
    results, more = load_results(paths, key)
    notes += more
    resumed = bool(old and (old.in_flight or results or old.phase != "starting"))
    state = initial_state(manifest, now=time.time(), old=old, resumed=resumed)
    store = RunStore(paths, state, key=key, redactor=redactor)
    recorder = Recorder(store, manifest.base_commit)
    recorder.replay(results)
    interrupted = None
    recorded = {r.experiment for r in results}
    if lane_count(manifest) > 1:
        lanes = lanes_interrupted(paths, old, recorded)
        return Recovered(recorder=recorder, interrupted=None, notes=notes, lanes=lanes)
    if old and old.in_flight:
        if old.in_flight.experiment not in recorded:
            interrupted = old.in_flight
    else:
        interrupted = unrecorded_experiment(paths, recorded)
    return Recovered(recorder=recorder, interrupted=interrupted, notes=notes)


def lane_count(manifest: RunManifest) -> int:
    """`[lanes] count` as `expd start` froze it (1: a run without lanes)."""
    lanes = manifest.config.get("lanes")
    return int(lanes.get("count", 1)) if isinstance(lanes, dict) else 1


def lanes_interrupted(
    paths: RunPaths, old: RunState | None, recorded: set[int]
) -> list[tuple[int | None, InFlight]]:
    """The lanes' unrecorded experiments: from state.json, else (it was lost) every begun one.

    A run with lanes records every number it gives out, so a prompt without a result is always an
    experiment the dead daemon left in flight."""
    found: dict[int, tuple[int | None, InFlight]] = {}
    if old is not None:
        for lane in old.lanes:
            flight = lane.in_flight
            if flight is not None and flight.experiment > 0 and flight.experiment not in recorded:
                found[flight.experiment] = (lane.lane, flight)
    else:
        for prompt in paths.prompts_dir.glob("[0-9][0-9][0-9][0-9].md"):
            number = int(prompt.stem)
            if number > 0 and number not in recorded:
                try:
                    started = prompt.stat().st_mtime
                except OSError:
                    started = 0.0
                found[number] = (None, InFlight(experiment=number, started_at=started))
    return [found[n] for n in sorted(found)]
