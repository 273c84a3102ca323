"""`expd bakeoff results|report|mark|diff|errors`: read a bakeoff run's files (and, for `mark`,
append one verdict). Like the other read commands these import only the standard library, msgspec
and `shared`, answer in milliseconds and work while the daemon runs: the daemon never writes
`marks.jsonl`, and every read takes complete lines only."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import codec
from shared.atomic import append_line
from shared.bakeoffs.analysis import ErrorGroup, error_groups
from shared.bakeoffs.grading import apply_marks, latest, load_graded, read_marks, read_records
from shared.bakeoffs.paths import BakeoffRunPaths
from shared.bakeoffs.ranking import rank, ranked_records
from shared.bakeoffs.schema import AttemptRecord, BakeoffManifest, Mark, attempt_key
from shared.bakeoffs.status import build_bakeoff_status, read_state
from shared.cli import bakeoff_report as report
from shared.cli import bakeoff_text as out
from shared.cli.bakeoff_term import term_report
from shared.cli.render import terminal_width
from shared.errors import UserError
from shared.locking import lock_blocking, unlock
from shared.runs import RunRef, resolve
from shared.tail import head_lines

EXAMPLE_LINES = 8
EXAMPLE_BYTES = 16384
"""How much of an example attempt's agent log `errors` reads (its first lines are enough)."""
EXAMPLES_TRIED = 20
"""A group's attempts whose logs are tried for a non-empty example."""


@dataclass
class Loaded:
    ref: RunRef
    paths: BakeoffRunPaths
    manifest: BakeoffManifest
    records: list[AttemptRecord]
    """Graded: the newest record per attempt with the manual marks applied."""


def load(arg: str | None) -> Loaded:
    ref = resolve(arg, kind="bakeoff")
    paths = BakeoffRunPaths(ref.paths.dir)
    manifest = codec.read(paths.run_json, BakeoffManifest)
    return Loaded(ref, paths, manifest, load_graded(paths))


def emit_json(obj: Any) -> None:
    print(out.to_json(obj))


def spec_order(loaded: Loaded, records: list[AttemptRecord]) -> list[AttemptRecord]:
    """Task, then variant in the spec's order, then attempt (unknown ids after known ones)."""
    spec = loaded.manifest.spec
    tasks = {t.id: i for i, t in enumerate(spec.tasks)}
    variants = {v.id: i for i, v in enumerate(spec.variants)}
    return sorted(
        records,
        key=lambda r: (
            tasks.get(r.task, len(tasks)),
            r.task,
            variants.get(r.variant, len(variants)),
            r.variant,
            r.attempt,
        ),
    )


# --------------------------------------------------------------------------- results


def cmd_results(args: argparse.Namespace) -> int:
    loaded = load(args.run)
    records = [
        r
        for r in loaded.records
        if (args.task is None or r.task == args.task)
        and (args.variant is None or r.variant == args.variant)
    ]
    records = spec_order(loaded, records)
    if args.json:
        emit_json([out.result_object(r) for r in records])
    else:
        print(out.results_text(records, width=terminal_width(sys.stdout)))
    return 0


# --------------------------------------------------------------------------- report


def use_color(stream: Any) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if "NO_COLOR" in os.environ:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def report_doc(loaded: Loaded) -> report.ReportDoc:
    """The report as one document (`expd bakeoff report --format json`)."""
    status = build_bakeoff_status(loaded.paths, run_id=loaded.ref.run_id)
    return report.build_doc(
        status, loaded.manifest, loaded.records, rank(loaded.manifest.spec, loaded.records)
    )


def cmd_report(args: argparse.Namespace) -> int:
    loaded = load(args.run)
    doc = report_doc(loaded)
    if args.format == "json":
        text = out.to_json(doc) + "\n"
    elif args.format == "md":
        text = report.markdown(doc)
    elif args.format == "html":
        from shared.cli.bakeoff_html import html_page

        text = html_page(doc, groups_with_logs(loaded))
    else:
        color = args.output is None and use_color(sys.stdout)
        text = term_report(doc, compact=args.compact, color=color)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {target}: {exc.strerror or exc}") from None
    print(f"expd: wrote {target}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- errors


def log_head(paths: BakeoffRunPaths, key: str, lines: int = EXAMPLE_LINES) -> list[str]:
    task, variant, attempt = key.rsplit("/", 2)
    log = paths.attempt(task, variant, int(attempt)).agent_log
    raw = head_lines(log, EXAMPLE_BYTES)[:lines]
    return [line.decode("utf-8", errors="replace") for line in raw]


def groups_with_logs(loaded: Loaded) -> list[ErrorGroup]:
    """The failure groups, each with the first lines of an example attempt's agent log (the
    first attempt of the group whose log is not empty)."""
    groups = error_groups(loaded.manifest.spec, loaded.records)
    for group in groups:
        for key in group.attempts[:EXAMPLES_TRIED]:
            lines = log_head(loaded.paths, key)
            if lines:
                group.example, group.example_log = key, lines
                break
    return groups


def cmd_errors(args: argparse.Namespace) -> int:
    loaded = load(args.run)
    groups = groups_with_logs(loaded)
    if args.json:
        emit_json({"run_id": loaded.ref.run_id, "groups": groups})
    else:
        finished = len(ranked_records(loaded.manifest.spec, loaded.records))
        print(out.errors_text(loaded.ref.run_id, groups, finished))
    return 0


# --------------------------------------------------------------------------- one attempt


def find_attempt(loaded: Loaded, task: str, variant: str, attempt: int) -> AttemptRecord:
    """The graded record of one attempt, or an error that says what is wrong with the name."""
    key = attempt_key(task, variant, attempt)
    for r in loaded.records:
        if r.key == key:
            return r
    spec, run = loaded.manifest.spec, loaded.ref.run_id
    tasks = [t.id for t in spec.tasks]
    if task not in tasks and not any(r.task == task for r in loaded.records):
        raise UserError(f"no task {task!r} in {run} (its tasks: {out.listed(tasks)})")
    variants = [v.id for v in spec.variants]
    if variant not in variants and not any(r.variant == variant for r in loaded.records):
        raise UserError(f"no variant {variant!r} in {run} (its variants: {out.listed(variants)})")
    state = read_state(loaded.paths)
    if state is not None and any(a.key == key for a in state.running):
        raise UserError(f"attempt {key} of {run} is still running")
    if attempt < 1 or attempt > spec.attempts:
        raise UserError(
            f"no attempt {attempt} of {task}/{variant} in {run}: it runs attempts 1–{spec.attempts}"
        )
    raise UserError(f"attempt {key} of {run} has not finished (yet)")


# --------------------------------------------------------------------------- mark


def manual_index(record: AttemptRecord, which: str | None) -> int:
    """The manual criterion `which` names: an index, the question, or a unique prefix of it."""
    manual = [i for i, c in enumerate(record.criteria) if c.type == "manual"]
    if which is None:
        if len(manual) == 1:
            return manual[0]
        if not manual:
            raise UserError(f"attempt {record.key} has no manual criterion to mark")
        raise UserError(
            f"attempt {record.key} has {len(manual)} manual criteria: name one with --criterion "
            f"({out.listed([f'{i}: {record.criteria[i].target}' for i in manual])})"
        )
    if which.strip().isdigit():
        index = int(which)
        if index >= len(record.criteria):
            raise UserError(
                f"attempt {record.key} has {len(record.criteria)} criteria: no criterion {index}"
            )
        c = record.criteria[index]
        if c.type != "manual":
            raise UserError(
                f"criterion {index} of {record.key} is {c.type}:{out.short(c.target)}: "
                "only manual criteria are marked"
            )
        return index
    exact = [i for i in manual if record.criteria[i].target == which]
    found = exact or [i for i in manual if record.criteria[i].target.startswith(which)]
    if len(found) == 1:
        return found[0]
    if not found:
        others = [c for c in record.criteria if c.type != "manual" and c.target.startswith(which)]
        if others:
            raise UserError(
                f"{which!r} names a {others[0].type} criterion of {record.key}: "
                "only manual criteria are marked"
            )
        raise UserError(f"no manual criterion of {record.key} starts with {which!r}")
    raise UserError(f"{which!r} matches {len(found)} manual criteria of {record.key}: say more")


def append_mark(paths: BakeoffRunPaths, mark: Mark) -> None:
    """One line on `marks.jsonl`, fsynced, under a lock so concurrent marks never interleave."""
    fd = lock_blocking(paths.dir / "marks.lock")
    try:
        append_line(paths.marks, codec.encode_line(mark), durable=True)
    finally:
        unlock(fd)


def cmd_mark(args: argparse.Namespace) -> int:
    loaded = load(args.run)
    record = find_attempt(loaded, args.task, args.variant, args.attempt)
    index = manual_index(record, args.criterion)
    mark = Mark(
        task=record.task,
        variant=record.variant,
        attempt=record.attempt,
        criterion=index,
        passed=args.verdict == "pass",
        note=args.note or "",
        at=time.time(),
    )
    append_mark(loaded.paths, mark)
    raw = latest(read_records(loaded.paths)).get(record.key, record)
    now = apply_marks(raw, read_marks(loaded.paths))
    if args.json:
        emit_json({"mark": mark, "result": out.result_object(now)})
    else:
        question = out.short(record.criteria[index].target, 60)
        print(
            f"{now.key}: criterion {index} ({question}) marked {args.verdict} → "
            f"{now.status}, score {out.fmt_score(now.score)}"
        )
    return 0


# --------------------------------------------------------------------------- diff


def read_patch(paths: BakeoffRunPaths, record: AttemptRecord) -> str | None:
    """The attempt's patch (None when it changed nothing)."""
    if not record.changed:
        return None
    path = paths.attempt(record.task, record.variant, record.attempt).patch
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def cmd_diff(args: argparse.Namespace) -> int:
    loaded = load(args.run)
    left_v, right_v = args.variants
    sides = []
    for variant in (left_v, right_v):
        record = find_attempt(loaded, args.task, variant, args.attempt)
        sides.append((record, read_patch(loaded.paths, record)))
    if args.json:
        emit_json(
            {
                "task": args.task,
                "attempt": args.attempt,
                "left": out.diff_side(*sides[0]),
                "right": out.diff_side(*sides[1]),
            }
        )
        return 0
    width = args.width if args.width is not None else terminal_width(sys.stdout)
    if width < 20:
        raise UserError(f"--width {width} is too narrow for two columns (at least 20)")
    print(out.side_by_side(sides[0], sides[1], width))
    return 0
