"""The headless `expd` command line: argument parsing, dispatch and the exit-code contract.

Exit codes: 0 success (for `status`: the daemon is running), 1 a usage or user error (one line,
no traceback), 2 an internal error (traceback only with EXPD_DEBUG=1), 3 (`status`) the run is
not running, 4 (`status`) the daemon is unresponsive.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from shared import __version__
from shared.display import one_line
from shared.errors import UserError
from shared.schema import AGENT_KINDS

EXIT_INTERNAL = 2
EXIT_INTERRUPTED = 130


class UsageError(UserError):
    """A command line argparse rejected."""


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; the contract says 1 with one line, so raise instead."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def count(text: str) -> int:
    """A whole number ≥ 0 (for --max-experiments, --limit, --experiment)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 0, not {text!r}")
    return value


def _json(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run(p: Parser) -> None:
    p.add_argument("run", metavar="RUN", nargs="?", help="id or unique prefix (default: newest)")


def _init_args(p: Parser) -> None:
    p.add_argument("name", metavar="NAME")
    p.add_argument("--measure", metavar="CMD", help="the measurement command (in measure.sh)")
    p.add_argument("--metric", metavar="F", help="the metric field to optimize (required)")
    p.add_argument("--direction", choices=("lower", "higher"), help="(required)")
    p.add_argument(
        "--agent", choices=AGENT_KINDS, help="agent kind (default: command; drafting: claude)"
    )
    p.add_argument("--model", metavar="M")
    draft = p.add_argument_group("guided setup (--metric and --direction become optional)")
    draft.add_argument(
        "--draft",
        action="store_true",
        help="the agent reads a read-only copy of the repository in a sandbox and drafts the "
        "program; expd checks and validates it",
    )
    draft.add_argument("--command", metavar="CMD", help="the drafting command (--agent command)")
    draft.add_argument("--sandbox", choices=("auto", "bwrap", "landlock"), default="auto")
    draft.add_argument("--runs", type=count, default=10, metavar="N", help="validation runs")
    draft.add_argument("--yes", action="store_true", help="accept a draft that validates")
    _json(p)


def _validate_args(p: Parser) -> None:
    p.add_argument("name", metavar="NAME")
    p.add_argument("--runs", type=count, default=10, metavar="N", help="measurements (default 10)")
    _json(p)


def start_options(p: argparse.ArgumentParser) -> None:
    """What `expd start` takes besides the program (`expd queue add` takes the same)."""
    p.add_argument("--max-experiments", type=count, metavar="N")
    p.add_argument("--agent", metavar="KIND", help="override [agent] kind")
    p.add_argument("--model", metavar="M", help="override [agent] model")
    p.add_argument("--fresh", action="store_true", help="do not tell the agents about earlier runs")


def _launch_args(p: Parser, first: str) -> None:
    p.add_argument(first, metavar=first.upper())
    if first == "name":
        start_options(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--attach", action="store_true", help="watch the run (its dashboard on a terminal)"
    )
    _json(mode)


def _status_args(p: Parser) -> None:
    _run(p)
    p.add_argument("--all", action="store_true", help="active runs of every repository")
    p.add_argument("--watch", action="store_true", help="refresh every second until it ends")
    _json(p)


def _stop_args(p: Parser) -> None:
    _run(p)
    p.add_argument("--wait", action="store_true", help="wait until the daemon has stopped")
    _json(p)


def _set_args(p: Parser) -> None:
    p.add_argument("words", nargs="+", metavar="[RUN] KEY VALUE")
    p.add_argument("--wait", action="store_true", help="wait for the daemon's acknowledgement")
    _json(p)


def _results_args(p: Parser) -> None:
    _run(p)
    fmt = p.add_mutually_exclusive_group()
    _json(fmt)
    fmt.add_argument("--tsv", action="store_true", help="tab-separated values")
    p.add_argument("--limit", type=count, metavar="N", help="only the last N")


def _logs_args(p: Parser) -> None:
    _run(p)
    p.add_argument("--experiment", type=count, metavar="N")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")


def _agents_args(p: Parser) -> None:
    p.add_argument("program", metavar="PROGRAM", nargs="?", help="use this program's [agent]")
    _json(p)


def _report_args(p: Parser) -> None:
    _run(p)
    p.add_argument("--format", choices=("md", "html"), default="md", help="default: md")
    p.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")


def _finalize_args(p: Parser) -> None:
    _run(p)
    p.add_argument("--branch", metavar="NAME", help="default: expd/PROGRAM/STAMP-final")
    p.add_argument("--exclude", metavar="N,M", help="kept experiments to leave out")
    p.add_argument(
        "--force",
        action="store_true",
        help="create the branch even when the re-measurement does not confirm the gain",
    )
    _json(p)


def _demo_args(p: Parser) -> None:
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: a new temp dir)")
    p.add_argument("--no-tui", action="store_true", help="plain-text progress")


COMMANDS: dict[str, tuple[str, str, Callable[[Parser], None]]] = {
    "init": ("launch:cmd_init", "create a program in .expd/programs/NAME", _init_args),
    "validate": (
        "launch:cmd_validate",
        "measure HEAD N times: noise (CV), outliers, suggested [decide] settings",
        _validate_args,
    ),
    "start": (
        "launch:cmd_start",
        "start a run of a program in a detached daemon",
        lambda p: _launch_args(p, "name"),
    ),
    "resume": (
        "launch:cmd_resume",
        "relaunch the daemon of an interrupted run",
        lambda p: _launch_args(p, "run"),
    ),
    "status": (
        "read:cmd_status",
        "the state of a run (exit 0 running, 3 not running, 4 hung)",
        _status_args,
    ),
    "attach": ("tui:cmd_attach", "the dashboard of a run (needs a terminal)", _run),
    "stop": ("control:cmd_stop", "stop after the current experiment", _stop_args),
    "abort": ("control:cmd_abort", "kill the agent now, revert, end the run", _stop_args),
    "set": (
        "control:cmd_set",
        "change a live run: max-experiments N | guidance TEXT",
        _set_args,
    ),
    "results": ("read:cmd_results", "the experiments of a run", _results_args),
    "logs": ("read:cmd_logs", "an experiment's agent log (or the daemon log)", _logs_args),
    "list": ("read:cmd_list", "programs of this repository and their runs", _json),
    "report": (
        "report:cmd_report",
        "a run's summary, chart and results (md or html)",
        _report_args,
    ),
    "agents": (
        "agents:cmd_agents",
        "agent kinds: which can run here, their version and model",
        _agents_args,
    ),
    "finalize": (
        "finalize:cmd_finalize",
        "replay a run's kept experiments onto its base as a review branch, re-measured",
        _finalize_args,
    ),
    "bakeoff": (
        "bakeoff:cmd_bakeoff",
        "compare agent setups: variants × tasks × attempts (see: expd bakeoff --help)",
        lambda p: importlib.import_module("shared.cli.bakeoff").add_arguments(p),
    ),
    "darwin": (
        "darwin:cmd_darwin",
        "rank a program's arms (or a bakeoff's variants) by outcomes; --apply promotes the winner",
        lambda p: importlib.import_module("shared.cli.darwin").add_arguments(p),
    ),
    "clean": (
        "housekeeping:cmd_clean",
        "give finished runs' disk back: trees, discarded experiments' refs and objects",
        lambda p: importlib.import_module("shared.cli.housekeeping").add_clean_arguments(p),
    ),
    "delete": (
        "housekeeping:cmd_delete",
        "delete a run (or --program NAME and its runs) and everything it left",
        lambda p: importlib.import_module("shared.cli.housekeeping").add_delete_arguments(p),
    ),
    "demo": ("launch:cmd_demo", "a self-contained offline demo in a fresh repository", _demo_args),
    "queue": (
        "queue:cmd_queue",
        "runs back to back: add | list | remove | clear | resume (see: expd queue --help)",
        lambda p: importlib.import_module("shared.cli.queue").add_arguments(p),
    ),
    "mcp": (
        "mcp_cmd:cmd_mcp",
        "serve expd's tools to an MCP client (Claude Code, Codex, Cursor, …) over stdio",
        lambda p: importlib.import_module("shared.cli.mcp_cmd").add_arguments(p),
    ),
}


def build_parser(only: str | None = None) -> Parser:
    """The whole parser, or (`only`) just the subcommand being run: argparse looks up a
    translation for every help string, and building them all costs more than `status` itself.
    """
    parser = Parser(prog="expd", description="An experiment daemon for any git repository.")
    parser.add_argument("--version", action="version", version=f"expd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (handler, help_text, add_arguments) in COMMANDS.items():
        if only is None or name == only:
            p = sub.add_parser(name, help=help_text, description=help_text)
            p.set_defaults(handler=handler)
            add_arguments(p)
    return parser


def load_handler(spec: str) -> Callable[[argparse.Namespace], int]:
    """Import only the module of the command being run: `status` never loads `start`'s code."""
    module, _, name = spec.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"shared.cli.{module}"), name
    )
    return handler


def home(parser: Parser) -> int:
    """`expd` alone: on a terminal inside a repository the home screen of the TUI; elsewhere the
    repository's programs when there are some, else the help."""
    from shared.paths import RepoPaths, find_repo_root

    try:
        root = find_repo_root()
    except UserError:
        root = None
    if root is not None:
        from shared.cli.tui import home_tui, on_terminal

        if on_terminal():
            return home_tui(root)
    if root is not None and RepoPaths(root).program_names():
        return load_handler("read:cmd_list")(argparse.Namespace(json=False))
    parser.print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (the console script passes it to sys.exit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        code = home(parser) if handler is None else load_handler(handler)(args)
        sys.stdout.flush()
        return code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except UserError as exc:
        print(f"expd: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nexpd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`expd results | head`): silence the final flush and stop.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if os.environ.get("EXPD_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        hint = "" if os.environ.get("EXPD_DEBUG") == "1" else " (EXPD_DEBUG=1 shows the traceback)"
        print(
            f"expd: internal error: {type(exc).__name__}: {one_line(str(exc))}{hint}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
