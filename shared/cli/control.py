"""Steering a live run: stop, abort, set. Each writes a request with an id to `control.json`;
the daemon acknowledges the id in `state.json`, which is what `--wait` watches for.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from shared import control, runs
from shared.cli import render
from shared.cli.read import emit_json, warn
from shared.errors import UserError
from shared.status import ACTIVE, run_status

POLL_S = 0.2
ABORT_WAIT_S = 10.0
SET_WAIT_S = 10.0
SET_KEYS = {
    "max-experiments": "max_experiments",
    "max_experiments": "max_experiments",
    "guidance": "guidance",
}
SET_USAGE = "usage: expd set [RUN] max-experiments N | guidance TEXT"


def _status(ref: runs.RunRef) -> Any:
    """A program run's StatusReport or a bakeoff run's BakeoffStatus (both have what is read
    here)."""
    return run_status(ref.paths, run_id=ref.run_id, kind=ref.kind)


def _resume_hint(ref: runs.RunRef) -> str:
    return f"expd bakeoff resume {ref.run_id}" if ref.is_bakeoff else f"expd resume {ref.run_id}"


def running_run(arg: str | None) -> tuple[runs.RunRef, Any]:
    """The run and its status, refusing runs whose daemon is gone (nobody would read a request)."""
    ref = runs.resolve(arg)
    status = _status(ref)
    if status.daemon == "finished":
        reason = status.termination_reason
        raise UserError(
            f"run {ref.run_id} is not running: it is {status.phase}"
            + (f" ({reason})" if reason else "")
        )
    if status.daemon == "dead":
        raise UserError(
            f"run {ref.run_id} is not running: daemon is dead — resume with: {_resume_hint(ref)}"
        )
    if status.daemon == "hung":
        warn(f"the daemon of {ref.run_id} is unresponsive; the request waits until it recovers")
    return ref, status


def wait_for(
    check: Callable[[], bool], timeout: float | None, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Poll `check` until it holds (True) or `timeout` seconds pass (False); None waits forever."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if check():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        sleep(POLL_S)


def _stopped(ref: runs.RunRef) -> Callable[[], bool]:
    return lambda: _status(ref).daemon not in ACTIVE


class ControlReply(msgspec.Struct):
    """What `expd stop|abort|set --json` prints: the request sent and its id (the daemon
    acknowledges the id in `state.json`)."""

    run_id: str
    action: str
    request_id: str


def send_request(run: str | None, action: str) -> tuple[runs.RunRef, Any, ControlReply]:
    """Send `stop` or `abort` to the live run `run` names: the run, its status, the reply."""
    ref, status = running_run(run)
    request_id = control.send(ref.paths, action)
    return ref, status, ControlReply(ref.run_id, action, request_id)


def send_set(run: str | None, key: str, value: Any) -> tuple[runs.RunRef, ControlReply]:
    """Send `set KEY VALUE` (max_experiments or guidance) to the live program run `run` names."""
    ref, _ = running_run(run)
    if ref.is_bakeoff:
        raise UserError(f"{ref.run_id} is a bakeoff run: expd set is for program runs")
    request_id = control.send(ref.paths, "set", key=key, value=value)
    return ref, ControlReply(ref.run_id, "set", request_id)


def _report(args: argparse.Namespace, reply: ControlReply, text: str) -> None:
    if args.json:
        emit_json(reply)
    else:
        print(text)


def _final_line(ref: runs.RunRef) -> str:
    status = _status(ref)
    if status.daemon == "dead":
        if ref.is_bakeoff:
            return f"run {ref.run_id}: daemon is dead — resume with: {_resume_hint(ref)}"
        return f"run {ref.run_id}: {render.alert(status)}"
    reason = status.termination_reason
    return f"run {ref.run_id} is {status.phase}" + (f" ({reason})" if reason else "")


CONSEQUENCES = {
    "stop": "the running attempts finish first; nothing new starts",
    "abort": "the running attempts are cancelled and recorded as such",
}
"""What `stop` and `abort` do to a bakeoff run (a program run's are the callers')."""


def _request(
    args: argparse.Namespace, action: str, consequence: str
) -> tuple[runs.RunRef, Any, str]:
    """Send `action` to the run `args` names and say so; the run, its status and the request id."""
    ref, status, reply = send_request(args.run, action)
    if ref.is_bakeoff:
        consequence = CONSEQUENCES.get(action, consequence)
    request_id = reply.request_id
    text = f"{action} requested for {ref.run_id} (request {request_id}): {consequence}"
    _report(args, reply, text)
    return ref, status, request_id


def _say(args: argparse.Namespace, text: str) -> None:
    """A line after the report: on stderr under --json, so stdout stays one JSON document."""
    print(text, file=sys.stderr if args.json else sys.stdout)


def cmd_stop(args: argparse.Namespace) -> int:
    ref, _, _ = _request(args, "stop", "the current experiment finishes first")
    if args.wait:
        print(
            "waiting for the daemon to stop (Ctrl-C stops waiting; the request stands)",
            file=sys.stderr,
        )
        wait_for(_stopped(ref), None)
        _say(args, _final_line(ref))
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    ref, status, request_id = _request(args, "abort", "the agent is killed and its change reverted")
    if not args.wait:
        return 0
    if wait_for(_stopped(ref), ABORT_WAIT_S):
        _say(args, _final_line(ref))
        return 0
    if control.is_acked(ref.paths, request_id):
        _say(
            args,
            f"abort acknowledged; the daemon is still finishing (see: expd status {ref.run_id})",
        )
        return 0
    pid = status.pid
    raise UserError(
        f"the daemon did not acknowledge the abort within {ABORT_WAIT_S:g} s; if it is stuck: "
        f"kill -9 {pid if pid else '<pid>'}, then: {_resume_hint(ref)}"
    )


def parse_set(words: list[str]) -> tuple[str | None, str, Any]:
    """`[RUN] KEY VALUE...` → (run, key, value); the key may come first when RUN is omitted."""
    if words and words[0] in SET_KEYS:
        run, key, values = None, SET_KEYS[words[0]], words[1:]
    elif len(words) >= 2 and words[1] in SET_KEYS:
        run, key, values = words[0], SET_KEYS[words[1]], words[2:]
    else:
        raise UserError(SET_USAGE)
    if key == "max_experiments":
        if len(values) != 1:
            raise UserError("max-experiments takes one number: expd set [RUN] max-experiments N")
        try:
            number = int(values[0])
        except ValueError:
            number = -1
        if number < 0:
            raise UserError(f"max-experiments must be a whole number ≥ 0, not {values[0]!r}")
        return run, key, number
    if not values:
        raise UserError("guidance needs TEXT (use '' to clear it, or - to read it from stdin)")
    text = sys.stdin.read() if values == ["-"] else " ".join(values)
    return run, key, text.strip()


def cmd_set(args: argparse.Namespace) -> int:
    run, key, value = parse_set(args.words)
    ref, reply = send_set(run, key, value)
    request_id = reply.request_id
    shown = (
        value
        if key == "max_experiments"
        else repr(value if len(value) < 60 else value[:57] + "...")
    )
    _report(args, reply, f"set {key} = {shown} for {ref.run_id} (request {request_id})")
    if args.wait:
        if not wait_for(lambda: control.is_acked(ref.paths, request_id), SET_WAIT_S):
            raise UserError(
                f"the daemon did not acknowledge request {request_id} within {SET_WAIT_S:g} s"
                f" (see: expd status {ref.run_id})"
            )
        message = _status(ref).message
        _say(args, f"acknowledged{': ' + message if message else ''}")
    return 0
