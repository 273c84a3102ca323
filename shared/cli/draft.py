"""`expd init NAME --draft`: an agent drafts the program, expd writes and validates it, the user
accepts, edits or discards it.

The drafting session is `daemon/commands/draft.py`; the files are written by the same
`write_program` as a plain `expd init`, and validated by the same `validate` as `expd validate`.
A draft whose measurement fails is kept for editing with its mark (`draft.json`), which `expd
start` refuses until `expd validate NAME` passes; nothing is started either way.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared import drafts
from shared.cli import render
from shared.cli.read import emit_json, warn
from shared.display import truncate
from shared.errors import UserError
from shared.paths import ProgramPaths, RepoPaths, find_repo_root
from shared.programs import write_program
from shared.redact import Redactor

SHOWN = ("program.md", "measure.sh", "build.sh", "program.toml")


def _interactive(args: argparse.Namespace) -> bool:
    return not args.json and not args.yes and sys.stdin.isatty() and sys.stdout.isatty()


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _validate(root: Path, name: str, runs: int) -> tuple[dict[str, Any], list[str]]:
    """`expd validate`'s result (a failure to even measure is an unusable result) and warnings."""
    from daemon.commands.validate import unprotected, validate

    try:
        result = validate(root, name, runs)
    except UserError as exc:
        result = {"program": name, "usable": False, "reason": str(exc), "samples": []}
    return result, (unprotected(root, name) if result["usable"] else [])


def _verdict_text(result: dict[str, Any]) -> str:
    """The validation's verdict; its reason may quote the drafted measurement's output."""
    if "commit" in result:
        text = render.calibration_text(result)
        text = text if result["usable"] else f"{text}\nfailed: {result['reason']}"
    else:
        text = f"failed: {result['reason']}"
    return drafts.printable(text)


def _edit(program: ProgramPaths) -> bool:
    """The program's files in the user's editor; False when no editor could run."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    names = [n for n in SHOWN if (program.dir / n).exists()]
    try:
        done = subprocess.run([*shlex.split(editor), *names], cwd=program.dir, check=False)
    except OSError as exc:
        print(f"cannot run the editor {editor!r} ({exc}); edit the files in {program.dir}")
        return False
    return done.returncode == 0


def _ask(question: str, answers: str) -> str:
    try:
        reply = input(question).strip().lower()[:1]
    except EOFError:
        return "k"
    return reply if reply and reply in answers else _ask(question, answers)


def _review(
    args: argparse.Namespace, root: Path, program: ProgramPaths, result: dict[str, Any]
) -> str:
    """On a terminal: accept, edit (then validate again) or discard; the final answer."""
    while True:
        if result["usable"]:
            reply = _ask("[a]ccept, [e]dit, [d]iscard? ", "aed")
        else:
            reply = _ask("[e]dit, [k]eep for later, [d]iscard? ", "ekd")
        if reply != "e":
            return reply
        if _edit(program):
            print(f"measuring {program.name} at HEAD again: {args.runs} runs…", flush=True)
            result.clear()
            fresh, warnings = _validate(root, program.name, args.runs)
            result.update(fresh)
            print(_verdict_text(result))
            for warning in warnings:
                warn(warning)
            drafts.write_mark(
                program,
                agent=args.agent,
                model=args.model,
                usable=result["usable"],
                reason=result["reason"],
            )


def cmd_draft(args: argparse.Namespace) -> int:
    root = find_repo_root()
    args.agent = args.agent or "claude"
    repo = RepoPaths(root)

    from daemon.commands.draft import DraftRequest, preflight, run_draft

    request = DraftRequest(
        name=args.name,
        kind=args.agent,
        model=args.model,
        command=args.command,
        sandbox=args.sandbox,
        metric=args.metric,
        direction=args.direction,
        measure=args.measure,
        runs=args.runs,
    )
    preflight(root, request)
    _say(args, f"drafting {args.name} with the {args.agent} agent (a read-only copy of HEAD)…")
    echo = None if args.json else (lambda line: print(f"  │ {truncate(line, 200)}", flush=True))
    try:
        session = run_draft(root, request, on_line=echo)
    except drafts.DraftError as exc:
        raise UserError(f"the draft is malformed: {exc}") from None
    program = write_program(repo, args.name, session.draft.files)
    redact = Redactor.from_env(os.environ)
    (program.dir / "draft.log").write_text(redact.text("\n".join(session.log) + "\n"))
    drafts.write_mark(  # until validated: an interrupted validation leaves it unstartable
        program, agent=args.agent, model=args.model, usable=False, reason="not validated yet"
    )
    if not args.json:
        for name in SHOWN:
            if name in session.draft.files:
                print(f"\n── {name} " + "─" * max(0, 60 - len(name)))
                print(drafts.printable(session.draft.files[name].rstrip("\n")))
        print(f"\nwrote {program.dir}; validating the measurement: {args.runs} runs…", flush=True)
    result, warnings = _validate(root, args.name, args.runs)
    drafts.write_mark(
        program,
        agent=args.agent,
        model=args.model,
        usable=result["usable"],
        reason=result["reason"],
    )
    if not args.json:
        print(_verdict_text(result))
        for warning in warnings:
            warn(warning)
    decision = _review(args, root, program, result) if _interactive(args) else ""
    if decision == "d":
        drafts.discard(program)
        _say(args, f"discarded {args.name}")
    elif result["usable"] and (decision == "a" or args.yes):
        drafts.accept(program)
    if args.json:
        emit_json(_document(args, program, session, result, warnings, decision))
    if not result["usable"]:
        if decision != "d":
            _say(
                args,
                f"the draft is kept for editing in {program.dir} (marked as a draft: `expd "
                f"start` refuses it until `expd validate {args.name}` passes; or rm -r it)",
            )
        raise UserError(f"the drafted measurement failed validation: {result['reason']}")
    if decision != "d":
        _say(args, f"next: expd start {args.name}")
    return 0


def _document(
    args: argparse.Namespace,
    program: ProgramPaths,
    session: Any,
    result: dict[str, Any],
    warnings: list[str],
    decision: str,
) -> dict[str, Any]:
    """What `--json` prints (and the TUI shows): the files, the verdict, how it was made."""
    mark = drafts.read_mark(program) if program.dir.exists() else None
    return {
        "program": args.name,
        "dir": str(program.dir),
        "agent": args.agent,
        "model": args.model,
        "sandbox": session.sandbox,
        "agent_s": round(session.seconds, 3),
        "cost_usd": session.cost_usd,
        "summary": session.summary,
        "files": session.draft.files,
        "validation": result,
        "warnings": warnings,
        "status": "discarded" if decision == "d" else (mark.status if mark else "accepted"),
    }
