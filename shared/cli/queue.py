"""`expd queue add|list|remove|clear|resume`: the run queue from the command line.

The edits are `shared/queue.py`'s; starting entries is `daemon/commands/queue_runner.py`'s,
imported only by the commands that may start one (`add` and `resume`), so `list` stays light.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from shared import codec, queue
from shared.cli.main import start_options
from shared.cli.queue_text import queue_text, what
from shared.cli.read import emit_json
from shared.display import one_line
from shared.errors import UserError
from shared.paths import find_repo_root


def _entry_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"an entry id is a whole number ≥ 1, not {text!r}")
    return value


def _json(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add(p: Any) -> None:
    p.add_argument("program", metavar="PROGRAM")
    start_options(p)
    p.add_argument(
        "--continue-on-abort",
        action="store_true",
        help="when this run is aborted, start the next entry anyway (default: the queue pauses)",
    )
    _json(p)


def _remove(p: Any) -> None:
    p.add_argument("entry", metavar="ID", type=_entry_id, help="the entry's id (expd queue list)")
    _json(p)


def _resume(p: Any) -> None:
    # Given by a finishing daemon to the starter it launches: wait for that run's locks first.
    p.add_argument("--after", metavar="RUN_DIR", help=argparse.SUPPRESS)
    _json(p)


SUBCOMMANDS = {
    "add": ("cmd_add", "queue a run of PROGRAM (it starts when the runs before it are over)", _add),
    "list": ("cmd_list", "the queue's entries, the finished ones too", _json),
    "remove": ("cmd_remove", "take an entry out of the queue", _remove),
    "clear": ("cmd_clear", "remove every entry but the running one", _json),
    "resume": ("cmd_resume", "start the next entry if no run is live (lifts a pause)", _resume),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="queue_command", metavar="SUBCOMMAND", parser_class=type(p))
    for name, (handler, help_text, add) in SUBCOMMANDS.items():
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(queue_handler=handler)
        add(q)


def cmd_queue(args: argparse.Namespace) -> int:
    name = getattr(args, "queue_handler", None)
    if name is None:
        raise UserError(f"expd queue needs a subcommand: {', '.join(SUBCOMMANDS)}")
    handler = globals()[name]
    result: int = handler(args)
    return result


# --------------------------------------------------------------------------- handlers


def cmd_add(args: argparse.Namespace) -> int:
    root = find_repo_root()
    options = queue.QueueOptions(
        max_experiments=args.max_experiments,
        agent=args.agent,
        model=args.model,
        fresh=args.fresh,
        continue_on_abort=args.continue_on_abort,
    )
    entry = queue.add(root, args.program, options)
    if not args.json:
        print(f"queued entry {entry.id}: {what(entry)}", flush=True)
    outcome = _resume(root)
    if args.json:
        current = queue.read_queue(root).find(entry.id) or entry
        emit_json({"added": current, **codec.to_builtins(outcome)})
    else:
        _print_outcome(outcome)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    root = find_repo_root()
    q = queue.list_queue(root)
    if args.json:
        emit_json(q)
        return 0
    for entry in q.entries:  # what the file cannot know: a daemon that died (shown, not written)
        if (
            entry.state == "running"
            and not entry.reason
            and not queue.run_is_live(root, entry.run_id)
        ):
            entry.reason = (
                f"its daemon is not running: `expd resume {entry.run_id}` continues it, "
                "`expd queue resume` moves on"
            )
    print(queue_text(q))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    entry = queue.remove(find_repo_root(), args.entry)
    if args.json:
        emit_json({"removed": [entry]})
    else:
        print(f"removed entry {entry.id}: {what(entry)} ({entry.state})")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    removed = queue.clear(find_repo_root())
    if args.json:
        emit_json({"removed": removed})
    else:
        print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    if args.after:
        return _chained(Path(args.after))
    outcome = _resume(find_repo_root(), unpause=True)
    if args.json:
        emit_json(outcome)
    else:
        _print_outcome(outcome)
    return 0


def _chained(run_dir: Path) -> int:
    """The detached starter of a finishing daemon: its lines go to `.expd/queue.log`."""
    from daemon.commands.queue_runner import resume_queue

    def say(text: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {one_line(text)}", flush=True)

    repo = find_repo_root()  # the finishing daemon launches it in the repository
    say(f"the daemon of run {run_dir.parent.parent.name}/{run_dir.name} is exiting")
    outcome = resume_queue(repo, after=run_dir, say=say)
    if outcome.action != "started":  # a start says so as it happens
        say(outcome.message)
    return 0


def _resume(root: Path, *, unpause: bool = False) -> Any:
    from daemon.commands.queue_runner import resume_queue

    return resume_queue(root, unpause=unpause)


# --------------------------------------------------------------------------- presentation


def _print_outcome(outcome: Any) -> None:
    for entry in outcome.given_up:
        print(f"entry {entry.id} ({entry.program}) {entry.state}: {entry.reason}", file=sys.stderr)
    print(outcome.message)
