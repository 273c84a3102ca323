"""`expd darwin PROGRAM|BAKEOFF-RUN`: rank the arms by their outcomes, name a winner only on
evidence, print the next generation; `--apply` archives it and writes it into the program (the
writing is `daemon.commands.generations`, imported only then)."""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared import codec, runs
from shared.arms import arms_of
from shared.bakeoffs.grading import load_graded
from shared.bakeoffs.paths import BakeoffPaths, BakeoffRunPaths
from shared.bakeoffs.ranking import rank
from shared.bakeoffs.schema import BakeoffManifest
from shared.bakeoffs.status import build_bakeoff_status
from shared.cli.darwin_text import plan_text
from shared.cli.follow import decode_results
from shared.cli.read import emit_json, warn
from shared.darwin import (
    ArmOutcome,
    Generation,
    Plan,
    RunOutcomes,
    Source,
    Verdict,
    pool,
    rank_arms,
    run_outcomes,
)
from shared.errors import UserError
from shared.generations import VARIANT_KEYS, Promotion, next_ids, promote
from shared.paths import RepoPaths, check_program_name, find_repo_root
from shared.programs import load_program
from shared.schema import RunManifest
from shared.tail import read_complete_lines


@dataclass
class Subject:
    """What is ranked and where its next generation would be written."""

    kind: Literal["program", "bakeoff"]
    name: str
    repo: Path
    toml: Path
    before: dict[str, Any]
    """The config file as it parses now (the plan is made from it)."""
    declared: list[str]
    plan: Plan
    outcomes: list[RunOutcomes] = field(default_factory=list)

    @property
    def list_key(self) -> str:
        return "arms" if self.kind == "program" else "variant"

    @property
    def what(self) -> str:
        return "arm" if self.kind == "program" else "variant"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="PROGRAM|BAKEOFF-RUN")
    p.add_argument("--winner", metavar="ARM", help="promote this arm, whatever the evidence")
    p.add_argument(
        "--arm",
        action="append",
        dest="arms",
        metavar="ARM",
        help="a challenger to keep in the next generation (repeat it; default: every arm)",
    )
    p.add_argument(
        "--runs", action="append", metavar="RUN", help="only these runs of the program (repeat it)"
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="archive the generation and write the next one into program.toml (bakeoff.toml)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_darwin(args: argparse.Namespace) -> int:
    subject = _subject(args.target, args.runs)
    _check_names(subject, args.winner, args.arms)
    plan = subject.plan
    if args.winner is not None:
        plan.winner = Verdict(
            arm=args.winner,
            significant=plan.winner.arm == args.winner,
            reason=f"chosen with --winner (the evidence: {plan.winner.reason})",
            forced=True,
        )
    promotion, problem = None, None
    if plan.winner.arm is not None:
        plan.next_arms = next_ids(subject.declared, plan.winner.arm, args.arms)
        try:
            promotion = _promote(subject, plan.next_arms)
            plan.notes += promotion.notes
        except UserError as exc:
            problem = str(exc)
            plan.notes.append(f"cannot apply: {problem}")
    applied = None
    if args.apply:
        if plan.winner.arm is None:
            raise UserError(f"no winner to promote; pass --winner ARM ({plan.winner.reason})")
        if promotion is None:
            raise UserError(problem or "nothing to apply")
        from daemon.commands.generations import Owner, apply_generation

        applied = apply_generation(
            Owner(subject.kind, subject.repo, subject.name),
            _generation(subject, promotion),
            promotion,
            before=subject.before,
        )
    if args.json:
        out = codec.to_builtins(plan)
        if applied is not None:
            out["applied"] = {
                "generation": applied.number,
                "archive": str(applied.archive),
                "config": str(applied.config),
            }
        emit_json(out)
    else:
        print(plan_text(plan, subject.what))
        if applied is not None:
            print(
                f"\napplied: generation {applied.number} archived in {applied.archive}; "
                f"{applied.config.name} rewritten ({subject.list_key}: "
                f"{', '.join(plan.next_arms or [])})"
            )
    return 0


# --------------------------------------------------------------------------- the target


def _subject(target: str, selected: list[str] | None) -> Subject:
    """A program by name, else a bakeoff run (a run id or unique prefix)."""
    root = find_repo_root()
    try:
        check_program_name(target)
        is_program = RepoPaths(root).program(target).toml.is_file()
    except UserError:
        is_program = False
    if is_program:
        try:
            other = runs.resolve(target, root, kind="bakeoff")
        except UserError:
            other = None
        if other is not None:
            warn(
                f"{target!r} is a program and also names bakeoff run {other.run_id}: ranking the "
                f"program (for the bakeoff run, pass its full id)"
            )
        return _program(root, target, selected)
    try:
        ref = runs.resolve(target, root)
    except UserError as exc:
        names = ", ".join(RepoPaths(root).program_names()) or "none"
        raise UserError(
            f"no program named {target!r} (programs: {names}), and no bakeoff run: {exc}"
        ) from None
    if not ref.is_bakeoff:
        raise UserError(
            f"{ref.run_id} is a run of program {ref.program}: darwin ranks a program over its "
            f"runs (expd darwin {ref.program} --runs {ref.run_id})"
        )
    if selected:
        raise UserError("--runs is for programs: a bakeoff run is ranked on its own")
    return _bakeoff(ref)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def _program(root: Path, name: str, selected: list[str] | None) -> Subject:
    prog = RepoPaths(root).program(name)
    config = load_program(prog)
    declared = [a.id for a in arms_of(config, source=prog.toml)]
    if len(declared) < 2:
        raise UserError(
            f"program {name!r} declares {len(declared)} arm(s): darwin compares at least two "
            f"([[arms]] in {prog.toml})"
        )
    if selected:
        refs = []
        for arg in selected:
            ref = runs.resolve(arg, root, kind="program")
            if ref.program != name:
                raise UserError(f"--runs {arg}: {ref.run_id} is not a run of program {name!r}")
            refs.append(ref)
    else:
        refs = runs.repo_runs(root, name, kind="program")
    outcomes = [_run_outcomes(ref) for ref in refs]
    arms, others = pool(outcomes, declared)
    if not any(a.experiments for a in arms):
        where = f"{len(refs)} run(s)" if refs else "runs (it has none)"
        raise UserError(
            f"no outcomes: no experiment in program {name!r}'s {where} ran one of its arms "
            f"({', '.join(declared)})"
        )
    ranking, verdict, comparison, unit = rank_arms(arms)
    plan = Plan(
        source=Source(kind="program", name=name, runs=[r.run_id for r in refs]),
        unit=unit,
        ranking=ranking,
        winner=verdict,
        comparison=comparison,
        current_arms=declared,
        next_arms=None,
        other_arms=others,
    )
    before = _read_toml(prog.toml)
    return Subject("program", name, root, prog.toml, before, declared, plan, outcomes)


def _run_outcomes(ref: runs.RunRef) -> RunOutcomes:
    records, bad = decode_results(read_complete_lines(ref.paths.results))
    if bad:
        warn(f"{ref.paths.results}: skipped {bad} unreadable line(s)")
    manifest = codec.read_optional(ref.paths.run_json, RunManifest)
    direction = str((manifest.config if manifest else {}).get("direction", "lower"))
    return run_outcomes(ref.run_id, records, direction)


def _bakeoff(ref: runs.RunRef) -> Subject:
    paths = BakeoffRunPaths(ref.paths.dir)
    manifest = codec.read(paths.run_json, BakeoffManifest)
    status = build_bakeoff_status(paths, run_id=ref.run_id)
    if status.daemon != "finished":
        raise UserError(
            f"bakeoff run {ref.run_id} is not finished (its daemon is {status.daemon}): darwin "
            "ranks finished runs"
        )
    declared = [v.id for v in manifest.spec.variants]
    if len(declared) < 2:
        raise UserError(
            f"bakeoff run {ref.run_id} has {len(declared)} variant(s): darwin compares at least two"
        )
    ranking = rank(manifest.spec, load_graded(paths))
    if not any(r.attempts for r in ranking.ranking):
        raise UserError(f"no outcomes: no attempt of bakeoff run {ref.run_id} finished")
    outcome = RunOutcomes(
        run=ref.run_id,
        arms=[
            ArmOutcome(
                id=r.variant,
                experiments=r.attempts,
                keeps=r.passed,
                errors=r.errors + r.timeouts,
                cost_usd=r.cost_usd,
                agent_s=(r.duration_s or 0.0) * r.attempts,
            )
            for r in ranking.ranking
        ],
    )
    w = ranking.winner
    plan = Plan(
        source=Source(kind="bakeoff", name=manifest.name, runs=[ref.run_id]),
        unit=None,
        ranking=ranking.ranking,
        winner=Verdict(arm=w.variant, significant=w.significant, reason=w.reason),
        comparison=ranking.comparison,
        current_arms=declared,
        next_arms=None,
        notes=[ranking.why_first] if ranking.why_first else [],
    )
    owner = BakeoffPaths(Path(manifest.repo), manifest.name)
    before = _read_toml(owner.toml) if owner.toml.is_file() else {}
    repo = Path(manifest.repo)
    return Subject("bakeoff", manifest.name, repo, owner.toml, before, declared, plan, [outcome])


# --------------------------------------------------------------------------- the next generation


def _check_names(subject: Subject, winner: str | None, kept: list[str] | None) -> None:
    """`--winner` and every `--arm` must name a declared arm, exactly as given (never split)."""
    declared = ", ".join(subject.declared)
    for flag, value in [("--winner", winner), *(("--arm", a) for a in kept or [])]:
        if value is not None and value not in subject.declared:
            raise UserError(f"{flag}: unknown {subject.what} {value!r} (declared: {declared})")


def _promote(subject: Subject, ids: list[str]) -> Promotion:
    tables = subject.before.get(subject.list_key)
    if not isinstance(tables, list):
        raise UserError(f"{subject.toml} has no [[{subject.list_key}]] tables")
    written = {str(t.get("id")) for t in tables if isinstance(t, dict)}
    gone = [i for i in ids if i not in written]
    if gone:
        raise UserError(f"{subject.what} {gone[0]!r} is no longer in {subject.toml}")
    agent = subject.before.get("agent", {})
    if not isinstance(agent, dict):
        raise UserError(f"{subject.toml}: [agent] must be a table")
    if subject.kind == "program":
        return promote(agent, tables, ids)
    return promote(agent, tables, ids, own_keys=VARIANT_KEYS, min_arms=1, what="variant")


def _generation(subject: Subject, promotion: Promotion) -> Generation:
    plan = subject.plan
    tables = subject.before.get(subject.list_key, [])
    return Generation(
        source=plan.source,
        unit=plan.unit,
        ranking=codec.to_builtins(plan.ranking),
        outcomes=subject.outcomes,
        winner=plan.winner.arm,
        significant=plan.winner.significant,
        forced=plan.winner.forced,
        reason=plan.winner.reason,
        evidence=codec.to_builtins(plan.comparison),
        current_arms=tables,
        current_agent=subject.before.get("agent", {}),
        next_ids=plan.next_arms or [],
        next_arms=promotion.tables,
        next_agent=promotion.agent,
        notes=plan.notes,
    )
