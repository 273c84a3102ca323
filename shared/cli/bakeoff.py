"""`expd bakeoff …`: the subcommands' arguments and their dispatch (each handler's module is
imported only when it runs)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from shared.errors import UserError


def _json(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run(p: Any, *, optional: bool = True) -> None:
    p.add_argument(
        "run",
        metavar="RUN",
        nargs="?" if optional else None,
        help="bakeoff run id or unique prefix" + (" (default: newest)" if optional else ""),
    )


def _attempt(p: Any, *, required: bool = True) -> None:
    p.add_argument("--task", metavar="T", required=required)
    p.add_argument("--variant", metavar="V", required=required)
    p.add_argument("--attempt", metavar="N", type=int, default=1, help="default: 1")


def _init(p: Any) -> None:
    p.add_argument("name", metavar="NAME")
    _json(p)


def _start(p: Any) -> None:
    p.add_argument("name", metavar="NAME")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--attach", action="store_true", help="watch it (the dashboard on a terminal)"
    )
    _json(mode)


def _resume(p: Any) -> None:
    _run(p, optional=False)
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="also run again attempts that errored or timed out",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--attach", action="store_true", help="watch it")
    _json(mode)


def _results(p: Any) -> None:
    _run(p)
    _json(p)
    p.add_argument("--task", metavar="T", help="only this task")
    p.add_argument("--variant", metavar="V", help="only this variant")


def _report(p: Any) -> None:
    _run(p)
    p.add_argument("--format", choices=("term", "md", "html", "json"), default="term")
    p.add_argument("--compact", action="store_true", help="term: one line per variant")
    p.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")


def _mark(p: Any) -> None:
    _run(p, optional=False)
    _attempt(p)
    p.add_argument(
        "--criterion", metavar="K", help="which manual criterion: its index (from 0) or question"
    )
    p.add_argument("verdict", choices=("pass", "fail"))
    p.add_argument("--note", default="", help="why (kept with the mark)")
    _json(p)


def _replay(p: Any) -> None:
    _run(p, optional=False)
    _attempt(p)
    p.add_argument("--as", dest="as_variant", metavar="OTHER", required=True, help="the variant")
    _json(p)


def _diff(p: Any) -> None:
    _run(p, optional=False)
    p.add_argument("--task", metavar="T", required=True)
    p.add_argument("--attempt", metavar="N", type=int, default=1, help="default: 1")
    p.add_argument("variants", nargs=2, metavar="V")
    p.add_argument("--width", type=int, metavar="COLS", help="default: the terminal's")
    _json(p)


def _errors(p: Any) -> None:
    _run(p)
    _json(p)


SUBCOMMANDS: dict[str, tuple[str, str, Callable[[Any], None]]] = {
    "init": ("bakeoff_launch:cmd_init", "create .expd/bakeoffs/NAME/bakeoff.toml", _init),
    "start": ("bakeoff_launch:cmd_start", "run the variants × tasks matrix in a daemon", _start),
    "resume": ("bakeoff_launch:cmd_resume", "relaunch an interrupted bakeoff run", _resume),
    "results": ("bakeoff_read:cmd_results", "one row per attempt", _results),
    "report": ("bakeoff_read:cmd_report", "ranking, intervals and the winner", _report),
    "mark": ("bakeoff_read:cmd_mark", "decide a manual criterion of an attempt", _mark),
    "replay": (
        "bakeoff_launch:cmd_replay",
        "run an attempt's exact prompt and base again with another variant",
        _replay,
    ),
    "diff": ("bakeoff_read:cmd_diff", "two variants' patches for a task, side by side", _diff),
    "errors": ("bakeoff_read:cmd_errors", "failures grouped by cause", _errors),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bakeoff_command", metavar="SUBCOMMAND", parser_class=type(p))
    for name, (handler, help_text, add) in SUBCOMMANDS.items():
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(bakeoff_handler=handler)
        add(q)


def cmd_bakeoff(args: argparse.Namespace) -> int:
    spec = getattr(args, "bakeoff_handler", None)
    if spec is None:
        raise UserError(f"expd bakeoff needs a subcommand: {', '.join(SUBCOMMANDS)}")
    module, _, name = spec.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"shared.cli.{module}"), name
    )
    return handler(args)
